"""Which VirtualKey made a key: metadata written on every key, read back on a conflict.

- `stamp(namespace, name, policy)`: the metadata the function adds to each key
  it makes or updates: the owning VirtualKey's namespace and name, and the
  TenancyPolicy rule it was granted under.
- `owner(metadata)`: the (namespace, name) a key's metadata names, or None.

Tenants cannot write these keys (`function.model.PROVENANCE_PREFIX` is refused
in spec.metadata), so a key that names a VirtualKey was made for it. LiteLLM
keeps no raw key, so this is what lets a reinstalled control plane recognise
its own keys on the proxy (README, "Rotation, provenance and recovery").
"""

from __future__ import annotations

from typing import Any

from function.model import PROVENANCE_PREFIX

NAMESPACE = f"{PROVENANCE_PREFIX}namespace"
NAME = f"{PROVENANCE_PREFIX}virtualkey"
POLICY = f"{PROVENANCE_PREFIX}policy"
_MAX = 253


def stamp(namespace: str, name: str, policy: str) -> dict[str, str]:
    """The provenance metadata of a key owned by VirtualKey `namespace/name`."""
    stamped = {NAMESPACE: namespace, NAME: name}
    if policy:
        stamped[POLICY] = policy
    return stamped


def owner(metadata: Any) -> tuple[str, str] | None:
    """The VirtualKey (namespace, name) a key's metadata names, or None."""
    if not isinstance(metadata, dict):
        return None
    namespace, name = metadata.get(NAMESPACE), metadata.get(NAME)
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    if not 0 < len(namespace) <= _MAX or not 0 < len(name) <= _MAX:
        return None
    return namespace, name

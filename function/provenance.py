"""Which object made a key, user or team: metadata written on each, read back from LiteLLM.

- `stamp(namespace, name, policy)`: the metadata the function adds to each key
  it makes or updates: the owning VirtualKey's namespace and name, and the
  TenancyPolicy rule it was granted under. `account_stamp(kind, ...)` is the
  same for a User's user and a Team's team.
- `key_owner(key)`: the VirtualKey (namespace, name) a LiteLLM key object
  names, but only for a key the master key made and last changed.
- `owner(metadata, name_key)`: what a user's or team's metadata names.

Why a stamp can be believed:

- Tenants cannot write it through the function: `auth.litellm.ai/` keys are
  refused in every spec's metadata (`function.validation.PROVENANCE_PREFIX`).
- A key records who made it and who changed it last (`created_by`,
  `updated_by`). Only a key both made and last changed by the master key
  (LiteLLM's `default_user_id`) counts: a user whose role may call
  `/key/generate` or `/key/update` could otherwise mint a key, or rewrite
  its own, naming another tenant's VirtualKey (a squat the function would
  take for that VirtualKey's own and delete, carrying its spend over).
- Users and teams record no creator. Their stamp counts because no tenant
  role the platform grants by default (internal_user_viewer) can change a
  user's or team's metadata.
"""

from __future__ import annotations

from typing import Any

from function.validation import PROVENANCE_PREFIX

NAMESPACE = f"{PROVENANCE_PREFIX}namespace"
NAME = f"{PROVENANCE_PREFIX}virtualkey"
USER = f"{PROVENANCE_PREFIX}user"
TEAM = f"{PROVENANCE_PREFIX}team"
POLICY = f"{PROVENANCE_PREFIX}policy"
# LiteLLM's user for the master key: what it records as created_by and
# updated_by of whatever the master key makes and changes.
MASTER_KEY_USER = "default_user_id"
_MAX = 253


def stamp(namespace: str, name: str, policy: str) -> dict[str, str]:
    """The provenance metadata of a key owned by VirtualKey `namespace/name`."""
    stamped = {NAMESPACE: namespace, NAME: name}
    if policy:
        stamped[POLICY] = policy
    return stamped


def account_stamp(name_key: str, namespace: str, name: str) -> dict[str, str]:
    """The provenance metadata of a User's user (`USER`) or a Team's team (`TEAM`)."""
    return {NAMESPACE: namespace, name_key: name}


def owner(metadata: Any, name_key: str = NAME) -> tuple[str, str] | None:
    """The (namespace, name) that metadata names under `name_key`, or None."""
    if not isinstance(metadata, dict):
        return None
    namespace, name = metadata.get(NAMESPACE), metadata.get(name_key)
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    if not 0 < len(namespace) <= _MAX or not 0 < len(name) <= _MAX:
        return None
    return namespace, name


def by_master_key(key: Any) -> bool:
    """Whether a LiteLLM key object was made, and last changed, by the master key."""
    if not isinstance(key, dict):
        return False
    return key.get("created_by") == MASTER_KEY_USER and key.get("updated_by") in (
        None,
        MASTER_KEY_USER,
    )


def key_owner(key: Any) -> tuple[str, str] | None:
    """The VirtualKey a LiteLLM key object names, if the master key made and last changed it."""
    if not by_master_key(key):
        return None
    return owner(key.get("metadata") if isinstance(key, dict) else None)

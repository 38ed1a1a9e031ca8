"""What every kind composes, and where: the shapes the composers return. Pure.

- `Composed`: one run's desired resources, the status fields the function
  owns, one condition and results; `Desired`: one resource and whether it
  is ready.
- `Owner` / `owner_of(xr)`: the namespace the composed resources go to and
  the names they are built from, for a v2 namespaced XR or a legacy claim's
  XR; `base_name(name)`: the stem every composed name starts with.
- `MANAGED_BY`: the label on everything the function composes.
- `Given`: what one RunFunction call gives every kind's composer.

Every kind (VirtualKey, User, Team) and the poller build on this module; it
imports no kind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from function.provider_http.readiness import KeyState
from function.tenancy.policy import Policies
from function.validation import InvalidInputError

LEGACY_CLAIM_NAME = "crossplane.io/claim-name"
LEGACY_CLAIM_NAMESPACE = "crossplane.io/claim-namespace"
MANAGED_BY = {"app.kubernetes.io/managed-by": "function-litellm-keys"}
_MAX_BASE = 200  # leaves room for suffixes in a 253-character name
_HASHED_BASE = _MAX_BASE - 9  # a longer name keeps this much, then "-<8 hex of its SHA-256>"


@dataclass(frozen=True)
class Given:
    """What one RunFunction call gives a kind's composer, as Crossplane sent it.

    `policies` are the cluster's TenancyPolicies and `namespace_labels` the
    labels of the tenant's Namespace (None if it was not found). `users`,
    `teams` and their Requests are the ones the XR references or its Team
    joins, as Crossplane fetched them (empty if none exist); their stored
    answers say whether they exist on the proxy. `unmasked` names the
    observed key Requests whose mask Secret does not exist. `now` decides
    rotations and grace periods.
    """

    xr: dict[str, Any]
    observed: dict[str, dict[str, Any]]
    raw_input: Any
    policies: Policies
    namespace_labels: dict[str, str] | None
    users: list[dict[str, Any]] = field(default_factory=list)
    teams: list[dict[str, Any]] = field(default_factory=list)
    user_requests: list[dict[str, Any]] = field(default_factory=list)
    team_requests: list[dict[str, Any]] = field(default_factory=list)
    unmasked: frozenset[str] = frozenset()
    now: datetime | None = None


@dataclass(frozen=True)
class Desired:
    """One desired composed resource and whether it is ready."""

    body: dict[str, Any]
    ready: bool


@dataclass(frozen=True)
class Composed:
    """Everything the function returns for one XR."""

    resources: dict[str, Desired]
    status: dict[str, Any]
    state: KeyState
    condition: str  # the condition type `state` is written as
    warnings: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # Normal results: what changed
    revisit_at: datetime | None = None  # when time alone changes what is composed


@dataclass(frozen=True)
class Owner:
    """Where the composed resources go and what they are named after."""

    namespace: str
    base_name: str
    virtualkey: str  # the XR's (or its claim's) name


def base_name(name: str) -> str:
    """The stem of the names an object's composed resources get.

    The name, or for a long one a prefix and its hash: two long names that
    share their first 200 characters must not share a Secret.
    """
    if len(name) <= _MAX_BASE:
        return name.rstrip("-.")
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:_HASHED_BASE].rstrip('-.')}-{digest}"


def owner_of(xr: dict[str, Any]) -> Owner:
    """Namespace and names for a v2 namespaced XR or a legacy claim's XR."""
    meta = _mapping(xr.get("metadata"), "metadata")
    labels = _mapping(meta.get("labels"), "metadata.labels")
    name = str(meta.get("name") or "")
    if not name:
        msg = "metadata.name: the VirtualKey has no name"
        raise InvalidInputError(msg)
    if meta.get("namespace"):
        return Owner(str(meta["namespace"]), base_name(name), name)
    # A legacy (LegacyCluster) XR is cluster-scoped; its claim's namespace is
    # where the tenant looks for the Secret.
    spec = _mapping(xr.get("spec"), "spec")
    claim_ref = _mapping(spec.get("claimRef"), "spec.claimRef")
    namespace = labels.get(LEGACY_CLAIM_NAMESPACE) or claim_ref.get("namespace")
    claim = labels.get(LEGACY_CLAIM_NAME) or claim_ref.get("name")
    if not namespace or not claim:
        msg = (
            f"metadata: XVirtualKey {name!r} is cluster-scoped and has no claim, so there is "
            "no namespace for its key Secret; create a VirtualKey claim instead"
        )
        raise InvalidInputError(msg)
    return Owner(str(namespace), base_name(str(claim)), str(claim))


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        msg = f"{path}: must be an object, not {type(value).__name__}"
        raise InvalidInputError(msg)
    return value


def only_set(optional: dict[str, Any]) -> dict[str, Any]:
    """The fields of `optional` that are set: one left out (None) is not managed."""
    return {k: v for k, v in optional.items() if v is not None}

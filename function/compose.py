"""From a VirtualKey and what Crossplane observed to the desired state. Pure.

`compose(xr, observed, raw_input)` -> `Composed`: the desired resources with
their readiness, the XR status fields the function owns, one condition and
results. It raises `InvalidInputError` for input a person must fix; the gRPC
layer turns that into a Fatal result, so Crossplane applies nothing and
deletes nothing that run.

What it composes for each VirtualKey:

- `key` -> a Secret with the raw key (data key `key`) and the proxy URL;
  during a rotation also `next-key`, the Secret the new key waits in.
- `request-<token prefix>` -> the provider-http Request of each key: the
  current one, and a rotated-out one until its grace period ends.
- `reaper-<token prefix>` -> a Request that only deletes a key nothing else
  tracks (function.strays), or one that held this key's alias.

Where the key comes from (keeping it, replacing a lost or revoked one,
rotating it, recovering after a reinstall) is `function.keyflow`. Keeping
an unchanged key is what makes every run after the first byte-identical.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from function import identity, strays
from function.keyflow import (
    LOST,
    REVOKED,
    Desired,
    KeyContext,
    choose_key,
    key_flow,
    observed_requests,
    request_resource,
)
from function.model import Input, InvalidInputError, VirtualKeySpec, parse_input, parse_spec
from function.policy import Policies, Tenant
from function.readiness import KeyState, created_just_now
from function.request import (
    READ_INSTEAD_OF_CREATE,
    echo_secret_name,
    provider_has_it,
    token_in_request,
)
from function.tenancy import Authorization, authorize

__all__ = ["Composed", "Desired", "Owner", "compose", "mask_secrets", "owner_of"]

CONDITION_TYPE = "KeyReady"
LEGACY_CLAIM_NAME = "crossplane.io/claim-name"
LEGACY_CLAIM_NAMESPACE = "crossplane.io/claim-namespace"
MANAGED_BY = {"app.kubernetes.io/managed-by": "function-litellm-keys"}
_MAX_BASE = 200  # leaves room for suffixes in a 253-character name
_HASHED_BASE = _MAX_BASE - 9  # a longer name keeps this much, then "-<8 hex of its SHA-256>"


@dataclass(frozen=True)
class Composed:
    """Everything the function returns for one VirtualKey."""

    resources: dict[str, Desired]
    status: dict[str, Any]
    state: KeyState
    warnings: list[str] = field(default_factory=list)
    condition: str = CONDITION_TYPE  # the condition type `state` is written as
    events: list[str] = field(default_factory=list)  # Normal results: what changed
    revisit_at: datetime | None = None  # when time alone changes what is composed


@dataclass(frozen=True)
class Owner:
    """Where the composed resources go and what they are named after."""

    namespace: str
    base_name: str
    virtualkey: str


def owner_of(xr: dict[str, Any]) -> Owner:
    """Namespace and names for a v2 namespaced XR or a legacy claim's XR."""
    meta = _mapping(xr.get("metadata"), "metadata")
    labels = _mapping(meta.get("labels"), "metadata.labels")
    name = str(meta.get("name") or "")
    if not name:
        msg = "metadata.name: the VirtualKey has no name"
        raise InvalidInputError(msg)
    if meta.get("namespace"):
        return Owner(str(meta["namespace"]), _base(name), name)
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
    return Owner(str(namespace), _base(str(claim)), str(claim))


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        msg = f"{path}: must be an object, not {type(value).__name__}"
        raise InvalidInputError(msg)
    return value


def _base(name: str) -> str:
    """The stem of composed names: the name, or for a long one a prefix and its hash.

    Two long names that share their first 200 characters must not share a
    Secret; names of 200 characters or fewer are kept as they are.
    """
    if len(name) <= _MAX_BASE:
        return name.rstrip("-.")
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:_HASHED_BASE].rstrip('-.')}-{digest}"


def mask_secrets(observed: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Observed Request resource name -> the Secret provider-http masks its key with."""
    masks = {}
    for name, request in observed_requests(observed).items():
        meta = request.get("metadata")
        request_name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(request_name, str):
            masks[name] = echo_secret_name(request_name)
    return masks


def compose(  # noqa: PLR0913 - each argument is one independent fact.
    xr: dict[str, Any],
    observed: dict[str, dict[str, Any]],
    raw_input: Any,
    policies: Policies,
    namespace_labels: dict[str, str] | None,
    *,
    unmasked: frozenset[str] = frozenset(),
    users: list[dict[str, Any]] | None = None,
    teams: list[dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> Composed:
    """The desired state for one VirtualKey (raises InvalidInputError).

    `policies` are the cluster's TenancyPolicies and `namespace_labels` the
    labels of the tenant's Namespace (None if it was not found). `unmasked`
    names the observed Requests whose `<request>-generated` Secret does not
    exist: provider-http could not mask the key it created. `users` and
    `teams` are the User and Team that spec.userRef and spec.teamRef name,
    as Crossplane fetched them (empty if they do not exist). `now` decides
    rotations and grace periods (function.rotation).
    """
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    settings: Input = parse_input(raw_input)
    owner = owner_of(xr)
    spec: VirtualKeySpec = parse_spec(xr.get("spec"))
    own_user = identity.referenced_id("User", spec.user_ref, users, owner.namespace)
    own_team = identity.referenced_id("Team", spec.team_ref, teams, owner.namespace)
    granted: Authorization = authorize(
        spec,
        Tenant(owner.namespace, namespace_labels),
        policies,
        own_team=own_team,
        own_user=own_user,
    )
    ctx = KeyContext(
        xr=xr,
        observed=observed,
        owner=owner,
        spec=spec,
        granted=granted,
        settings=settings,
        now=now,
        labels={**MANAGED_BY, "auth.litellm.ai/virtualkey": owner.virtualkey[:63].rstrip("-.")},
    )
    key, replaced = choose_key(observed)
    flow = key_flow(ctx, key, replaced)
    token = flow.token
    state = flow.state
    reaper_for = functools.partial(strays.reaper, **ctx.sending)
    # A key in place whose mask Secret is missing was stored unmasked when it
    # was created, however briefly (provider-http writes that Secret first).
    unmasked_now = state.ready and request_resource(token) in unmasked
    reaping = _strays(
        xr,
        observed,
        token,
        owner.base_name,
        reaper_for,
        unmasked_now=unmasked_now,
        also=flow.replace_holder,
        deletable=functools.partial(
            strays.may_delete,
            alias=spec.key_alias,
            owner=(owner.namespace, owner.virtualkey),
            foreign_ok=granted.replace_foreign_keys,
        ),
    )
    warnings = list(reaping.warnings)
    secret_name = ctx.secret_name
    if replaced == LOST:
        warnings.append(
            "The key Secret was deleted or changed, and LiteLLM keeps no copy of a key: "
            "a new key is being issued and the old one deleted. Clients must read the "
            f"new key from Secret {owner.namespace}/{secret_name}."
        )
    elif replaced == REVOKED:
        warnings.append(
            "The key was deleted on the LiteLLM proxy (revoked), and a revoked key never "
            "comes back: a new key is being issued. Clients must read the new key from "
            f"Secret {owner.namespace}/{secret_name}."
        )
    if state.is_problem:
        warnings.append(f"{state.reason}: {state.message}")
    return Composed(
        resources={
            **flow.resources,
            **_lingering(observed, set(flow.resources)),
            **reaping.resources,
        },
        status={
            "keySecretRef": secret_name,
            "tokenHash": token,
            **reaping.status,
            **flow.status,
        },
        state=state,
        warnings=warnings,
        events=flow.events,
        revisit_at=flow.revisit_at,
    )


def _lingering(observed: dict[str, dict[str, Any]], desired: set[str]) -> dict[str, Desired]:
    """Replaced Requests that must stay, as they are, until provider-http observes again.

    Right after CREATE, provider-http's stored answer is /key/generate's, with
    the key masked as a placeholder for `<request>-generated`. Crossplane
    deletes a Request that is no longer desired in the foreground, so that
    Secret goes first, and the Request could then never template a call
    again: its REMOVE would never run. So a replaced Request is kept until
    its stored answer is another call's, with its CREATE only reading its key
    (it must not create anything from a Secret that now holds another key).
    """
    kept = {}
    for name, request in observed_requests(observed).items():
        if name in desired or not created_just_now(request):
            continue
        meta = request.get("metadata") or {}
        spec = copy.deepcopy(request.get("spec") or {})
        for_provider = spec.get("forProvider")
        if not isinstance(for_provider, dict) or not isinstance(for_provider.get("mappings"), list):
            continue  # not one of ours as we wrote it: let Crossplane delete it
        for_provider["mappings"] = [
            READ_INSTEAD_OF_CREATE if isinstance(m, dict) and m.get("action") == "CREATE" else m
            for m in for_provider["mappings"]
        ]
        body = {
            "apiVersion": request.get("apiVersion"),
            "kind": request.get("kind"),
            "metadata": {k: meta[k] for k in ("name", "namespace", "labels") if k in meta},
            "spec": spec,
        }
        kept[name] = Desired(body, ready=True)
    return kept


@dataclass(frozen=True)
class _Reaping:
    resources: dict[str, Desired]
    status: dict[str, Any]
    warnings: list[str]


_MAX_REAPED = 32  # remembered so that a stale stored answer never re-creates a reaper


def _strays(  # noqa: PLR0913 - each argument is one independent fact.
    xr: dict[str, Any],
    observed: dict[str, dict[str, Any]],
    current: str,
    base_name: str,
    reaper_for: Callable[..., dict[str, Any]],
    *,
    unmasked_now: bool,
    also: frozenset[str] = frozenset(),
    deletable: Callable[[dict[str, Any] | None], bool | None] = lambda _: True,
) -> _Reaping:
    """Reaper Requests for keys made from a changed Secret, and warnings of exposed keys."""
    status = xr.get("status")
    reaped = strays.remembered_reaped(status)
    pending = strays.remembered(status)
    # A replaced Request may have created the current key from the rewritten
    # Secret: a key one of our Requests names is never a stray.
    ours = {token_in_request(r) for r in observed_requests(observed).values()} | {current}
    warnings = []
    exposed = strays.remembered_exposed(status) | ({current} if unmasked_now else set())
    for request in observed_requests(observed).values():
        found = strays.stray_tokens(request, token_in_request(request)) - reaped - pending - ours
        if found:
            warnings.append(
                "A key was created from a key Secret changed after the function wrote it "
                f"(token {', '.join(sorted(t[:12] for t in found))}...); nothing tracks "
                "such a key, so it is being deleted."
            )
        pending |= found
        if strays.exposed(request) and (token := token_in_request(request)):
            exposed.add(token)
    # Another key holding this VirtualKey's alias, which it may replace (a reinstall).
    pending |= also - reaped - ours
    # provider-http replaces the unmasked answer at its next OBSERVE, often before
    # Crossplane composes again: remembered in status, the warning lasts until
    # the key is rotated, not for one poll.
    exposed &= ours
    if exposed:
        warnings.append(
            "provider-http stored a raw key unmasked in a Request's status (token "
            f"{', '.join(sorted(t[:12] for t in exposed))}...): it could not write the "
            "Secret that masks it (a quota, admission or RBAC). Anyone who could read "
            "that Request could read the key. Fix provider-http's access, then rotate "
            "the key by deleting the key Secret."
        )
    resources: dict[str, Desired] = {}
    done = set()
    for token in sorted(pending):
        name = f"{strays.REAPER_PREFIX}{token[:10]}"
        seen = observed.get(name)
        verdict = deletable(seen) if provider_has_it(seen) else None
        if verdict is True and not strays.observes_only(seen):
            done.add(token)  # dropping it makes Crossplane delete it, and its REMOVE the key
            continue
        if verdict is False and strays.observes_only(seen):
            done.add(token)  # dropped, it deletes nothing: the key was not this one's to delete
            continue
        if verdict is False:
            warnings.append(
                f"Token {token[:12]}... in this VirtualKey's status names a key that is not "
                "its own (another alias or provenance): it is not deleted."
            )
        body = reaper_for(
            name=f"{base_name}-stray-{token[:8]}", token=token, only_observe=verdict is False
        )
        resources[name] = Desired(body, ready=True)
    left = sorted(pending - done)
    remembered = sorted(reaped | done)[-_MAX_REAPED:]
    return _Reaping(
        resources,
        {
            **({"strayTokens": left} if left else {}),
            **({"reapedTokens": remembered} if remembered else {}),
            **({"exposedTokens": sorted(exposed)} if exposed else {}),
        },
        warnings,
    )

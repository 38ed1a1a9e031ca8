"""From a VirtualKey and what Crossplane observed to the desired state. Pure.

`compose(given)` -> `Composed`: the desired resources with
their readiness, the XR status fields the function owns, one condition and
results. It raises `InvalidInputError` for input a person must fix; the gRPC
layer turns that into a Fatal result, so Crossplane applies nothing and
deletes nothing that run.

What it composes for each VirtualKey:

- `key` -> a Secret with the raw key (data key `key`) and the proxy URL;
  during a rotation also `next-key`, the Secret the new key waits in.
- `request-<token prefix>` -> the provider-http Request of each key: the
  current one, and a rotated-out one until its grace period ends.
- `stray-<token prefix>` -> a Request that observes, and once it proved the
  key is this VirtualKey's deletes, a key nothing else tracks
  (function.keys.strays), or one that held this key's alias.

Where the key comes from (keeping it, replacing a lost or revoked one,
rotating it, recovering after a reinstall) is `function.keys.flow`. Keeping
an unchanged key is what makes every run after the first byte-identical.

The XR's status is never read: it is the function's output, for people,
and Crossplane's edit roles let tenants write it (docs/tenancy.md, threat model).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from function.accounts import identity
from function.composed import MANAGED_BY, Composed, Given, owner_of
from function.input import Input, parse_input
from function.keys import strays
from function.keys.context import KeyContext, observed_requests
from function.keys.flow import LOST, REVOKED, choose_key, key_flow
from function.keys.memory import KeyMemory
from function.keys.reaping import lingering, reap
from function.keys.request import token_in_request
from function.keys.spec import VirtualKeySpec, parse_spec
from function.provider_http.answers import last_answer
from function.tenancy.decide import Authorization, authorize, user_roles
from function.tenancy.policy import Tenant

CONDITION_TYPE = "KeyReady"


def key_requests(observed: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Observed key Request resource name -> the Request's name (for its mask Secret)."""
    names = {}
    for resource, request in observed_requests(observed).items():
        meta = request.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(name, str):
            names[resource] = name
    return names


def compose(given: Given) -> Composed:
    """The desired state for one VirtualKey (raises InvalidInputError).

    `given.users` and `given.teams` are the User and Team that spec.userRef
    and spec.teamRef name; `given.unmasked` the key Requests provider-http
    could not mask the key of.
    """
    now = (given.now or datetime.now(UTC)).replace(microsecond=0)
    settings: Input = parse_input(given.raw_input)
    owner = owner_of(given.xr)
    spec: VirtualKeySpec = parse_spec(given.xr.get("spec"))
    observed, policies = given.observed, given.policies
    account_requests = given.user_requests + given.team_requests
    tenant = Tenant(owner.namespace, given.namespace_labels)
    own_user = identity.referenced_id(
        "User",
        spec.user_ref,
        given.users,
        account_requests,
        owner.namespace,
        roles=user_roles(spec.connection_ref, tenant, policies) if spec.user_ref else None,
    )
    own_team = identity.referenced_id(
        "Team", spec.team_ref, given.teams, account_requests, owner.namespace
    )
    granted: Authorization = authorize(spec, tenant, policies, own_team=own_team, own_user=own_user)
    key, replaced = choose_key(observed)
    requests = observed_requests(observed)
    ctx = KeyContext(
        observed=observed,
        owner=owner,
        spec=spec,
        granted=granted,
        settings=settings,
        now=now,
        labels={**MANAGED_BY, "auth.litellm.ai/virtualkey": owner.virtualkey[:63].rstrip("-.")},
        exposed=_exposed(requests, given.unmasked),
    )
    flow = key_flow(ctx, key, replaced)
    token = flow.token
    state = flow.state
    reaping = reap(
        ctx,
        token,
        also=flow.replace_holder,
        judge=functools.partial(
            strays.judge,
            alias=spec.key_alias,
            owner=(owner.namespace, owner.virtualkey),
            foreign_ok=granted.replace_foreign_keys,
        ),
    )
    warnings = [
        *flow.warnings,
        *reaping.warnings,
        *_exposed_warnings(ctx, requests),
        *_replaced_warnings(replaced, f"{owner.namespace}/{ctx.secret_name}"),
        *([f"{state.reason}: {state.message}"] if state.is_problem else []),
    ]
    return Composed(
        condition=CONDITION_TYPE,
        resources={
            **flow.resources,
            **lingering(observed, set(flow.resources)),
            **reaping.resources,
        },
        status={"keySecretRef": ctx.secret_name, "tokenHash": token, **flow.status},
        state=state,
        warnings=warnings,
        events=flow.events,
        revisit_at=flow.revisit_at,
    )


def _replaced_warnings(replaced: str | None, secret: str) -> list[str]:
    """Why the key was replaced, when its Secret was lost or the key revoked."""
    if replaced == LOST:
        return [
            (
                "The key Secret was deleted or changed, and LiteLLM keeps no copy of a key: "
                "a new key is being issued and the old one deleted. Clients must read the "
                f"new key from Secret {secret}."
            )
        ]
    if replaced == REVOKED:
        return [
            (
                "The key was deleted on the LiteLLM proxy (revoked), and a revoked key never "
                "comes back: a new key is being issued. Clients must read the new key from "
                f"Secret {secret}."
            )
        ]
    return []


def _exposed(requests: dict[str, dict[str, Any]], unmasked: frozenset[str]) -> frozenset[str]:
    """Tokens of keys provider-http stored unmasked: seen now, remembered, or unmasked now."""
    exposed = {
        token
        for r in requests.values()
        if (token := token_in_request(r)) is not None
        and (strays.exposed(r) or KeyMemory.of(r).exposed)
    }
    return frozenset(exposed | _unmasked(requests, unmasked))


def _unmasked(requests: dict[str, dict[str, Any]], unmasked: frozenset[str]) -> set[str]:
    """Tokens of keys in place whose mask Secret is missing: stored unmasked, however briefly.

    Only a Request LiteLLM has answered with success counts: provider-http writes
    the mask Secret with every answer, so one not answered yet has none to miss.
    """
    found = set()
    for name, request in requests.items():
        code = last_answer(request)[0]
        token = token_in_request(request)
        if name in unmasked and token is not None and 200 <= code <= 299:  # noqa: PLR2004
            found.add(token)
    return found


def _tokens(requests: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    return [(n, t) for n, r in requests.items() if (t := token_in_request(r)) is not None]


def _exposed_warnings(ctx: KeyContext, requests: dict[str, dict[str, Any]]) -> list[str]:
    """A Warning while a key stored unmasked is still in use (until it is rotated)."""
    exposed = sorted(t[:12] for _, t in _tokens(requests) if t in ctx.exposed)
    if not exposed:
        return []
    message = (
        "provider-http stored a raw key unmasked in a Request's status (token "
        f"{', '.join(exposed)}...): it could not write the Secret that masks it (a quota, "
        "admission or RBAC). Anyone who could read that Request could read the key. Fix "
        "provider-http's access, then rotate the key (spec.rotation.trigger)."
    )
    return [message]

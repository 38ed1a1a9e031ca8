"""A rotation under way, and rotated-out keys until their grace period ends. Pure.

`rotating(ctx, key, next_key, reason)` -> `Flow`, in the order of
`function.keys.rotation`'s steps, each read back from what Crossplane observed:

1. the new key waits in the next-key Secret, and the old key's Request
   remembers its token (`function.keys.memory`);
2. the old key moves to its retired alias, capped (`charge`), and loses its
   budget period;
3. once LiteLLM answered with that alias, the new key's Request is composed,
   carrying the charged spend;
4. once the new key exists, the key Secret switches to it (`_switch`), and the
   old key's Request is marked to retire and given an expiry on the proxy.

`retiring(ctx, current)`: rotated-out keys' Requests, kept until then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from function.composed import Desired
from function.keys import rotation
from function.keys.context import (
    Flow,
    KeyContext,
    observed_requests,
    request_resource,
)
from function.keys.memory import KeyMemory, remember
from function.keys.request import token_in_request
from function.keys.secrets import NEXT_SECRET_RESOURCE, SECRET_RESOURCE, token_of
from function.provider_http.readiness import KeyState
from function.provider_http.request import as_observed
from function.units import duration, money, rfc3339


@dataclass(frozen=True)
class Charge:
    """What a rotation charges: the old key's cap and the new key's starting spend."""

    old_key_budget: Decimal | None
    carried: Decimal


def charge(ctx: KeyContext, token: str, new_token: str) -> Charge:
    """The cap and carried spend of a rotation, fixed when it starts.

    Once the old key's Request carries its cap (with the retired alias), that
    cap is what the rotation charges: the old key's spend has moved on since.
    Before that it is computed from provider-http's last answer for the old
    key. Both are written only by Crossplane and provider-http.
    """
    old = ctx.memory(token)
    kept = ctx.memory(new_token).created_with or Decimal(0)
    spent = rotation.answered_spend(ctx.observed_request(token)) or Decimal(0)
    if ctx.spec.max_budget is None:
        return Charge(None, max(spent, kept))
    retired = rotation.retired_alias(ctx.spec.key_alias, token)
    if old.alias == retired and old.max_budget is not None:
        return Charge(old.max_budget, max(old.max_budget, kept))
    spec_rotation = ctx.spec.rotation
    carried = rotation.carry(
        spent,
        ctx.spec.max_budget,
        spec_rotation.grace_period_budget if spec_rotation else None,
    )
    return Charge(carried.old_key_budget, carried.spend)


def rotating(ctx: KeyContext, key: str, next_key: str, *, reason: str) -> Flow:
    """A rotation under way: the new key waits in the next-key Secret (see the module)."""
    token, new_token = token_of(key), token_of(next_key)
    charged = charge(ctx, token, new_token)
    overrides = _retired_fields(ctx, token, charged)
    notes = remember(trigger=ctx.handled_trigger(token), next_token=new_token, reason=reason)
    moved = rotation.answered_alias(ctx.observed_request(token)) == overrides["key_alias"]
    new_state = ctx.state_of(new_token)
    resources = {
        SECRET_RESOURCE: Desired(ctx.secret(ctx.secret_name, key), ready=True),
        NEXT_SECRET_RESOURCE: Desired(
            ctx.secret(ctx.next_secret_name, next_key),
            ready=NEXT_SECRET_RESOURCE in ctx.observed,
        ),
    }
    if moved:
        # Only now is the alias free: the new key's CREATE would fail before.
        resources[request_resource(new_token)] = _new_key_request(
            ctx, new_token, charged, reason, new_state
        )
    kept, retiring_until = retiring(ctx, {request_resource(token), request_resource(new_token)})
    resources.update(kept)
    if moved and new_state.ready:
        return _switch(
            ctx,
            tokens=(token, new_token, next_key),
            resources=resources,
            overrides=overrides,
            notes=notes,
            outcome=(reason, charged, new_state, retiring_until),
        )
    resources[request_resource(token)] = Desired(
        ctx.request(
            token, key_secret=ctx.secret_name, ready=True, overrides=overrides, annotations=notes
        ),
        ready=ctx.state_of(token).ready,
    )
    state = _rotating_state(ctx, token, reason, new_state if moved else None)
    schedule: dict[str, Any] = {"pending": _pending(new_token, reason, charged)}
    if retiring_until is not None:
        schedule["oldKeyExpiresAt"] = rfc3339(retiring_until)
    return Flow(token, state, resources, {"rotation": schedule}, revisit_at=retiring_until)


def _retired_fields(ctx: KeyContext, token: str, charged: Charge) -> dict[str, Any]:
    """What the old key's Request changes: its alias, its cap, and no budget period."""
    overrides: dict[str, Any] = {"key_alias": rotation.retired_alias(ctx.spec.key_alias, token)}
    if charged.old_key_budget is not None:
        overrides["max_budget"] = float(charged.old_key_budget)
    if ctx.spec.budget_duration is not None:
        # A budget reset would give the old key its cap again: it loses the period.
        overrides["budget_duration"] = None
    return overrides


def _pending(new_token: str, reason: str, charged: Charge) -> dict[str, Any]:
    """`status.rotation.pending`, for people."""
    pending: dict[str, Any] = {
        "tokenHash": new_token,
        "reason": reason,
        "carriedSpend": money(charged.carried),
    }
    if charged.old_key_budget is not None:
        pending["oldKeyBudget"] = money(charged.old_key_budget)
    return pending


def _new_key_request(
    ctx: KeyContext, new_token: str, charged: Charge, reason: str, state: KeyState
) -> Desired:
    """The new key's Request: created from the next-key Secret, with the charged spend."""
    spec_rotation = ctx.spec.rotation
    trigger = spec_rotation.trigger if spec_rotation is not None else None
    body = ctx.request(
        new_token,
        key_secret=ctx.next_secret_name,
        ready=state.ready,
        carried=charged.carried,
        annotations=remember(reason=reason, trigger=trigger),
    )
    return Desired(body, ready=state.ready)


def _rotating_state(
    ctx: KeyContext, token: str, reason: str, new_state: KeyState | None
) -> KeyState:
    """What KeyReady says while the Secret still holds the old key."""
    state = new_state if new_state is not None and new_state.is_problem else ctx.state_of(token)
    if not state.ready:
        return state
    return KeyState(
        ready=True,
        reason="Rotating",
        message=f"Key {ctx.spec.key_alias} is in place and being rotated "
        f"({reason}); Secret {ctx.owner.namespace}/{ctx.secret_name} "
        "keeps the current key until the new one exists.",
    )


def _switch(  # noqa: PLR0913 - the parts of one rotation, grouped.
    ctx: KeyContext,
    *,
    tokens: tuple[str, str, str],
    resources: dict[str, Desired],
    overrides: dict[str, Any],
    notes: dict[str, str],
    outcome: tuple[str, Charge, KeyState, datetime | None],
) -> Flow:
    """The new key exists: the Secret switches to it, and the old key retires.

    The old key also expires on the proxy at the end of its grace period,
    should its Request's REMOVE never run.
    """
    token, new_token, next_key = tokens
    reason, charged, new_state, retiring_until = outcome
    spec_rotation = ctx.spec.rotation
    grace = duration(spec_rotation.grace_period if spec_rotation else "1h")
    until = ctx.now + grace
    resources[SECRET_RESOURCE] = Desired(ctx.secret(ctx.secret_name, next_key), ready=True)
    resources[request_resource(token)] = Desired(
        ctx.request(
            token,
            key_secret=ctx.secret_name,
            ready=True,
            overrides=overrides,
            annotations={**notes, **remember(retire_at=until)},
            update_only={"duration": f"{int(grace.total_seconds())}s"},
        ),
        ready=True,
    )
    done: dict[str, Any] = {"lastRotatedAt": rfc3339(ctx.now), "oldKeyExpiresAt": rfc3339(until)}
    if spec_rotation is not None and spec_rotation.every is not None:
        done["nextRotationAt"] = rfc3339(ctx.now + duration(spec_rotation.every))
    event = (
        f"Rotated the key ({reason}): Secret {ctx.owner.namespace}/"
        f"{ctx.secret_name} now holds a new key (token {new_token[:12]}...), which starts "
        f"at ${money(charged.carried)} spent. The old key (token {token[:12]}...) "
        f"keeps working until {rfc3339(until)}, then it is deleted."
    )
    return Flow(
        new_token,
        new_state,
        resources,
        {"rotation": done},
        events=[event],
        revisit_at=min(until, retiring_until or until),
    )


def retiring(ctx: KeyContext, current: set[str]) -> tuple[dict[str, Desired], datetime | None]:
    """Rotated-out keys' Requests kept until their retire-at, and the earliest of those."""
    kept: dict[str, Desired] = {}
    earliest: datetime | None = None
    for name, request in observed_requests(ctx.observed).items():
        at = KeyMemory.of(request).retire_at
        if name in current or at is None or ctx.now >= at:
            continue  # past it: dropped, and Crossplane deleting it deletes the key
        notes = remember(retire_at=at, exposed=token_in_request(request) in ctx.exposed)
        kept[name] = Desired(as_observed(request, annotations=notes), ready=True)
        earliest = at if earliest is None else min(earliest, at)
    return kept, earliest

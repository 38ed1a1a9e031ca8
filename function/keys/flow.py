"""Where a VirtualKey's key comes from on this run, rotation included. Pure.

`key_flow(ctx, key, replaced)` -> `Flow`: the key Secret(s), the key's
Request(s), the status fields of rotation, and events. `function.keys.compose`
adds what every VirtualKey gets around it (stray keys, warnings). The
phases, each read back from what Crossplane observed:

- **Steady.** The key Secret holds the key; its Request keeps it in step.
  A key that is new because the Secret was lost, the key was revoked, or
  another key held the alias (a reinstall, `_holder`, which lists the
  holders with `function.keys.holders`) starts with the spend of the key it
  replaces, read from provider-http's answers and kept in the new key's
  own Request (`createOnly.spend`), so losing a Secret resets no budget.
- **Rotating** (`_rotating`), once `function.keys.rotation.due`: the new key
  waits in a second Secret; the old key moves to a derived alias and is
  capped; the new key is created under the alias with the carried spend;
  then the key Secret switches to it.
- **Retiring** (`_retiring`): a rotated-out key's Request stays until its
  `auth.litellm.ai/retire-at`, then is dropped, and Crossplane deleting it
  deletes the old key on the proxy.

Memory. Whatever the function must remember between runs lives on the key
Requests it composes, as the annotations below or in their payload, never
in the XR's status: Crossplane's edit roles let tenants write the status,
while a Request is written only by Crossplane and provider-http (the
tenant role examples/install/tenant-rbac.yaml ships grants no write on Requests). The Secrets are
the tenant's to write, so a key read from one is used only where its
token is what a Request already names.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from function.composed import Desired
from function.keys import holders, rotation
from function.keys.context import (
    Flow,
    KeyContext,
    observed_requests,
    request_resource,
    secret_key,
)
from function.keys.memory import EXPOSED, NEXT_KEY, ROTATION, TRIGGER, remember
from function.keys.request import created_once, token_in_request
from function.keys.rotating import retiring, rotating
from function.keys.secrets import NEXT_SECRET_RESOURCE, SECRET_RESOURCE, new_key, token_of
from function.provider_http.readiness import KeyState, revoked
from function.units import money, rfc3339

__all__ = [
    "EXPOSED",
    "LOST",
    "NEXT_KEY",
    "REVOKED",
    "ROTATION",
    "TRIGGER",
    "choose_key",
    "key_flow",
]

LOST = "lost"
REVOKED = "revoked"
REPLACING = "ReplacingOldKey"


def choose_key(observed: dict[str, dict[str, Any]]) -> tuple[str, str | None]:
    """The raw key to use, and why it replaces another: None, LOST or REVOKED.

    The key Secret is the tenant's to write, so its key is kept only while
    its token is one a Request names (or before any Request exists): a key
    written there by hand is a lost Secret, and replaced.
    """
    requests = observed_requests(observed)
    gone = {token_in_request(r) for r in requests.values() if revoked(r)}
    kept = secret_key(observed, SECRET_RESOURCE)
    if kept is not None:
        token = token_of(kept)
        tokens = {token_in_request(r) for r in requests.values()}
        if token in gone:
            return new_key(), REVOKED
        if not requests or token in tokens:
            return kept, None
    return new_key(), LOST if requests else None


def key_flow(ctx: KeyContext, key: str, replaced: str | None) -> Flow:
    """The key Secret, Requests and rotation status for the key `key` (see the module)."""
    token = token_of(key)
    memory = ctx.memory(token)
    if replaced is None and memory.next_token is not None:
        # A rotation is under way: its new key must be the one the Request names.
        waiting = secret_key(ctx.observed, NEXT_SECRET_RESOURCE)
        warnings = []
        if waiting is not None and token_of(waiting) == memory.next_token:
            next_key = waiting
        else:
            next_key = new_key()
            if waiting is not None:
                warnings.append(
                    f"Secret {ctx.owner.namespace}/{ctx.next_secret_name} no longer holds the "
                    "key this rotation made (it was changed): a key someone else chose is never "
                    "used, so the rotation goes on with a new one."
                )
        flow = rotating(ctx, key, next_key, reason=memory.reason or "requested")
        return Flow(
            flow.token,
            flow.state,
            flow.resources,
            flow.status,
            flow.events,
            flow.revisit_at,
            flow.replace_holder,
            warnings + flow.warnings,
        )
    return _steady(ctx, key, replaced)


def _steady(ctx: KeyContext, key: str, replaced: str | None) -> Flow:
    """The key Secret holds the key; its Request keeps it in step (and a rotation may start)."""
    token = token_of(key)
    observed_request = ctx.observed_request(token)
    memory = ctx.memory(token)
    state = ctx.state_of(token)
    created = created_once(observed_request) or state.ready
    carried = None if created else _carried(ctx, token, replaced)
    holder: frozenset[str] = frozenset()
    checking: dict[str, Desired] = {}
    if not created and state.reason == "AliasConflict" and replaced is None:
        state, holder, carried, checking = _holder(ctx, token, state, carried)
    notes = remember(trigger=ctx.handled_trigger(token), reason=memory.reason)
    resources = {
        **checking,
        SECRET_RESOURCE: Desired(
            ctx.secret(ctx.secret_name, key), ready=SECRET_RESOURCE in ctx.observed
        ),
        request_resource(token): Desired(
            ctx.request(
                token,
                key_secret=ctx.secret_name,
                ready=state.ready,
                carried=carried,
                annotations=notes,
            ),
            ready=state.ready,
        ),
    }
    kept, retiring_until = retiring(ctx, {request_resource(token)})
    resources.update(kept)
    schedule, reason, next_at = _schedule(ctx, token)
    if retiring_until is not None:
        schedule["oldKeyExpiresAt"] = rfc3339(retiring_until)
    status: dict[str, Any] = {"rotation": schedule} if schedule else {}
    # With a budget, what the key spent must come from provider-http's answer.
    answered = rotation.answered_spend(observed_request)
    if (
        reason is not None
        and replaced is None
        and state.ready
        and not kept
        and (answered is not None or ctx.spec.max_budget is None)
    ):
        return rotating(ctx, key, new_key(), reason=reason)
    revisit = min((t for t in (next_at, retiring_until) if t is not None), default=None)
    return Flow(token, state, resources, status, revisit_at=revisit, replace_holder=holder)


def _schedule(ctx: KeyContext, token: str) -> tuple[dict[str, Any], str | None, Any]:
    """`status.rotation` of a key in place, why a rotation is due now, and when the next is.

    A key's age is its Request's `creationTimestamp` (the API server's), and
    the platform's keys.minRotationInterval counts from then, for rotations on
    demand too.
    """
    memory = ctx.memory(token)
    born = memory.born or ctx.now
    schedule: dict[str, Any] = {}
    if memory.reason is not None:
        schedule["lastRotatedAt"] = rfc3339(born)
    spec_rotation = ctx.spec.rotation
    reason = rotation.due(spec_rotation, ctx.handled_trigger(token), born, ctx.now)
    next_at = rotation.next_rotation(spec_rotation, born)
    allowed_at = born + ctx.granted.min_rotation
    if reason is not None and ctx.now < allowed_at:
        reason, next_at = None, allowed_at if next_at is None else max(next_at, allowed_at)
    if next_at is not None:
        schedule["nextRotationAt"] = rfc3339(next_at)
    return schedule, reason, next_at


def _carried(ctx: KeyContext, token: str, replaced: str | None) -> Decimal | None:
    """The spend a key not created yet starts with: the most any replaced key had spent.

    Read from provider-http's answers for the keys it replaces, on the run
    that replaces them, and kept from then on in the new key's own Request.
    """
    own = ctx.memory(token).created_with
    found: list[Decimal] = [] if own is None else [own]
    if replaced is not None:
        for request in observed_requests(ctx.observed).values():
            spend = rotation.answered_spend(request)
            if token_in_request(request) != token and spend is not None:
                found.append(spend)
    return max(found) if found else None


def _holder(
    ctx: KeyContext, token: str, state: KeyState, carried: Decimal | None
) -> tuple[KeyState, frozenset[str], Decimal | None, dict[str, Desired]]:
    """What to do about other keys holding the alias, as the alias check lists them.

    A key this VirtualKey made (its provenance names it, and the master key
    made it: a reinstall) is replaced: deleted, its spend carried over. A key
    without provenance, or made for another VirtualKey of the same
    namespace, only if a granting TenancyPolicy rule sets
    keys.replaceForeignKeys. A key made for another namespace never. The
    check's answer is provider-http's (function.keys.holders).
    """
    alias = ctx.spec.key_alias
    check = holders.alias_check(
        name=f"{ctx.owner.base_name}-alias-check", alias=alias, place=ctx.place
    )
    resources = {holders.CHECK_RESOURCE: Desired(check, ready=True)}
    found = holders.holders(ctx.observed.get(holders.CHECK_RESOURCE), alias, token)
    if not found:  # no answer yet, or the alias was freed meanwhile: CREATE retries
        return state, frozenset(), carried, resources
    mine = (ctx.owner.namespace, ctx.owner.virtualkey)
    foreign = [h for h in found if h.owner != mine]
    replaceable = ctx.granted.replace_foreign_keys and all(
        h.owner is None or h.owner[0] == ctx.owner.namespace for h in foreign
    )
    if not foreign or replaceable:
        replacing, spend = _replacing(ctx, found, foreign=bool(foreign))
        kept = max([*spend, *([carried] if carried is not None else [])], default=None)
        return replacing, frozenset(h.token for h in found), kept, resources
    return _refused(ctx, foreign), frozenset(), carried, resources


def _replacing(
    ctx: KeyContext, found: list[holders.Holder], *, foreign: bool
) -> tuple[KeyState, list[Decimal]]:
    """The state while the alias's holders are replaced, and the spend they carry over.

    Only this VirtualKey's own keys carry their spend: a foreign key's spend is
    whatever its maker chose, and must not eat into this key's budget.
    """
    alias, where = ctx.spec.key_alias, ctx.granted.connection.base_url
    own = [h.spend for h in found if h.owner == (ctx.owner.namespace, ctx.owner.virtualkey)]
    spend = max(own, default=Decimal(0))
    whose = (
        "that this VirtualKey made earlier (a reinstall)"
        if not foreign
        else "that this VirtualKey did not make, which its TenancyPolicy allows it to replace"
    )
    carried_over = (
        f"its spend (${money(spend)}) carried over to the new one"
        if not foreign
        else "its spend, not this VirtualKey's, is not carried over"
    )
    message = (
        f"keyAlias {alias!r} is held on {where} by a key {whose}. LiteLLM keeps no raw "
        f"key, so a new key is being made: the old key is deleted and {carried_over}."
    )
    return KeyState(ready=False, reason=REPLACING, message=message), own


def _refused(ctx: KeyContext, foreign: list[holders.Holder]) -> KeyState:
    """AliasConflict: a holder this VirtualKey may not replace, and how to release it."""
    alias, where = ctx.spec.key_alias, ctx.granted.connection.base_url
    if any(h.owner is not None and h.owner[0] != ctx.owner.namespace for h in foreign):
        held = "by a key made for another namespace, which this function never touches"
    elif any(h.owner is not None for h in foreign):
        held = "by a key that another VirtualKey of this namespace made"
    else:
        held = "by a key made outside this function (no VirtualKey's provenance)"
    release = (
        "Aliases are unique per proxy. Use another keyAlias, or ask the platform team to "
        f"release the alias: delete that key (POST {where}/key/delete with "
        f"{json.dumps({'key_aliases': [alias]})}), or, for a key made outside this function "
        "or by this namespace, let keys of this namespace replace it with "
        "keys.replaceForeignKeys: true in the TenancyPolicy rule that grants it."
    )
    return KeyState(
        ready=False,
        reason="AliasConflict",
        message=f"keyAlias {alias!r} is already held on {where} {held}. {release}",
    )

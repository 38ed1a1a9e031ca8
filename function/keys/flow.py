"""Where a VirtualKey's key comes from on this run, rotation included. Pure.

`key_flow(ctx, key, replaced)` -> `Flow`: the key Secret(s), the key's
Request(s), the status fields of rotation, and events. `function.compose`
adds what every VirtualKey gets around it (stray keys, warnings). The
phases, each read back from what Crossplane observed:

- **Steady.** The key Secret holds the key; its Request keeps it in step.
  A key that is new because the Secret was lost, the key was revoked, or
  another key held the alias (a reinstall, `_holder`, which lists the
  holders with `function.holders`) starts with the spend of the key it
  replaces, read from provider-http's answers and kept in the new key's
  own Request (`createOnly.spend`), so losing a Secret resets no budget.
- **Rotating** (`_rotating`), once `function.rotation.due`: the new key
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
tenant role the README ships grants no write on Requests). The Secrets are
the tenant's to write, so a key read from one is used only where its
token is what a Request already names.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from function import provenance
from function.composed import Desired
from function.keys import holders, rotation
from function.keys.request import build_request, created_once, key_payload, token_in_request
from function.keys.secrets import key_from_secret_data, new_key, token_of
from function.provider_http.answers import TOKEN, annotations_of, created_at, is_request, payload_of
from function.provider_http.readiness import (
    CREATE_FAILED,
    CREATE_SETTLED,
    KeyState,
    key_state,
    revoked,
    unsettled_create,
)
from function.provider_http.request import Place
from function.units import dollars, duration, money, rfc3339

if TYPE_CHECKING:
    from function.composed import Owner
    from function.input import Input
    from function.keys.spec import VirtualKeySpec
    from function.tenancy.decide import Authorization

SECRET_RESOURCE = "key"  # noqa: S105 - a resource name, not a secret.
NEXT_SECRET_RESOURCE = "next-key"  # noqa: S105 - a resource name, not a secret.
REQUEST_RESOURCE_PREFIX = "request-"
LOST = "lost"
REVOKED = "revoked"
REPLACING = "ReplacingOldKey"
# The memory the function keeps on a key's Request (see the module docstring).
NEXT_KEY = "auth.litellm.ai/next-key"  # the token of the key a rotation replaces this one with
ROTATION = "auth.litellm.ai/rotation"  # why: on the key being rotated, and on the key it made
TRIGGER = "auth.litellm.ai/rotation-trigger"  # the spec.rotation.trigger this key has handled
EXPOSED = "auth.litellm.ai/exposed"  # provider-http stored this key unmasked once
_REASONS = ("requested", "scheduled")  # why a rotation started
# A VirtualKey has at most three key Requests at once (current, new, retiring);
# only the function composes them, and this bounds what a run reads anyway.
MAX_KEY_REQUESTS = 16


@dataclass(frozen=True)
class Flow:
    """The key part of one VirtualKey's desired state."""

    token: str  # the key the key Secret holds after this run
    state: KeyState
    resources: dict[str, Desired]
    status: dict[str, Any]
    events: list[str] = field(default_factory=list)
    revisit_at: datetime | None = None
    replace_holder: frozenset[str] = frozenset()  # tokens of keys to delete for the alias
    warnings: list[str] = field(default_factory=list)


def request_resource(token: str) -> str:
    """The composed resource name of the Request of key `token`."""
    return f"{REQUEST_RESOURCE_PREFIX}{token[:10]}"


def observed_requests(observed: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The observed key Requests, by composed resource name (kind-checked, bounded)."""
    found = {
        n: r for n, r in observed.items() if n.startswith(REQUEST_RESOURCE_PREFIX) and is_request(r)
    }
    return dict(sorted(found.items())[:MAX_KEY_REQUESTS])


def _secret_key(observed: dict[str, dict[str, Any]], name: str) -> str | None:
    secret = observed.get(name)
    if not isinstance(secret, dict) or secret.get("kind") != "Secret":
        return None
    return key_from_secret_data(secret.get("data"))


def choose_key(observed: dict[str, dict[str, Any]]) -> tuple[str, str | None]:
    """The raw key to use, and why it replaces another: None, LOST or REVOKED.

    The key Secret is the tenant's to write, so its key is kept only while
    its token is one a Request names (or before any Request exists): a key
    written there by hand is a lost Secret, and replaced.
    """
    requests = observed_requests(observed)
    gone = {token_in_request(r) for r in requests.values() if revoked(r)}
    kept = _secret_key(observed, SECRET_RESOURCE)
    if kept is not None:
        token = token_of(kept)
        tokens = {token_in_request(r) for r in requests.values()}
        if token in gone:
            return new_key(), REVOKED
        if not requests or token in tokens:
            return kept, None
    return new_key(), LOST if requests else None


@dataclass(frozen=True)
class KeyContext:
    """What every step of composing one VirtualKey reads."""

    observed: dict[str, dict[str, Any]]
    owner: Owner
    spec: VirtualKeySpec
    granted: Authorization
    settings: Input
    now: datetime
    labels: dict[str, str]
    exposed: frozenset[str] = frozenset()  # tokens of keys once stored unmasked

    @property
    def secret_name(self) -> str:
        """The key Secret the tenant's clients read."""
        return f"{self.owner.base_name}-litellm-key"

    @property
    def next_secret_name(self) -> str:
        """Where a rotation's new key waits until it exists on the proxy."""
        return f"{self.owner.base_name}-litellm-key-next"

    @property
    def place(self) -> Place:
        """Where every Request of this VirtualKey goes and how it reaches the proxy."""
        return Place(
            self.owner.namespace,
            self.granted.connection,
            self.settings.provider_config_ref.model_dump(),
            self.settings.request_timeout,
            self.labels,
        )

    def observed_request(self, token: str) -> dict[str, Any] | None:
        """The observed Request of key `token`, if it is one of ours."""
        found = self.observed.get(request_resource(token))
        return found if is_request(found) else None

    def secret(self, name: str, key: str) -> dict[str, Any]:
        """A Secret holding `key` and the proxy's URL."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.owner.namespace, "labels": self.labels},
            "type": "Opaque",
            "data": {
                "key": base64.b64encode(key.encode()).decode(),
                "baseUrl": base64.b64encode(self.granted.connection.base_url.encode()).decode(),
            },
        }

    def state_of(self, token: str) -> KeyState:
        """The state of key `token`, read from its observed Request."""
        return key_state(self.observed_request(token), self.granted.connection, self.spec.key_alias)

    def request(  # noqa: PLR0913 - each argument is one independent fact.
        self,
        token: str,
        *,
        key_secret: str,
        ready: bool,
        carried: Decimal | None = None,
        overrides: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
        update_only: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The Request of the key `token`, as build_request makes it for this VirtualKey."""
        observed_request = self.observed_request(token)
        payload = key_payload(
            self.spec,
            self.granted,
            token,
            # Once LiteLLM has the key, provider-http may never create it again.
            created=created_once(observed_request) or ready,
            provenance=provenance.stamp(
                self.owner.namespace, self.owner.virtualkey, self.granted.policy
            ),
            carried_spend=None if carried is None else money(carried),
            overrides=overrides,
            update_only=update_only,
        )
        body = build_request(
            name=f"{self.owner.base_name}-{token[:8]}",
            place=self.place,
            payload=payload,
            key_secret=key_secret,
            mask_namespace=self.settings.mask_secret_namespace,
        )
        notes = dict(annotations or {})
        if token in self.exposed:
            notes[EXPOSED] = "true"
        settled = unsettled_create(observed_request)
        if settled is not None:
            notes[CREATE_FAILED] = notes[CREATE_SETTLED] = settled
        if notes:
            body["metadata"]["annotations"] = notes
        return body

    def handled_trigger(self, token: str) -> int | None:
        """The spec.rotation.trigger key `token` was made for (its Request remembers it).

        A Request that remembers none (a new key, or one made before triggers
        were remembered there) takes the spec's: a trigger starts no rotation
        of a key just made.
        """
        remembered = rotation.whole(annotations_of(self.observed_request(token)).get(TRIGGER))
        if remembered is not None:
            return remembered
        return self.spec.rotation.trigger if self.spec.rotation is not None else None

    def trigger_note(self, token: str) -> dict[str, str]:
        """The annotation remembering the trigger key `token` has handled, if any."""
        handled = self.handled_trigger(token)
        return {} if handled is None else {TRIGGER: str(handled)}


def key_flow(ctx: KeyContext, key: str, replaced: str | None) -> Flow:
    """The key Secret, Requests and rotation status for the key `key` (see the module)."""
    token = token_of(key)
    notes = annotations_of(ctx.observed_request(token))
    next_token = notes.get(NEXT_KEY)
    if replaced is None and isinstance(next_token, str) and TOKEN.fullmatch(next_token):
        # A rotation is under way: its new key must be the one the Request names.
        waiting = _secret_key(ctx.observed, NEXT_SECRET_RESOURCE)
        warnings = []
        if waiting is not None and token_of(waiting) == next_token:
            next_key = waiting
        else:
            next_key = new_key()
            if waiting is not None:
                warnings.append(
                    f"Secret {ctx.owner.namespace}/{ctx.next_secret_name} no longer holds the "
                    "key this rotation made (it was changed): a key someone else chose is never "
                    "used, so the rotation goes on with a new one."
                )
        reason = notes.get(ROTATION)
        flow = _rotating(ctx, key, next_key, reason=reason if reason in _REASONS else "requested")
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
    token = token_of(key)
    observed_request = ctx.observed_request(token)
    state = ctx.state_of(token)
    created = created_once(observed_request) or state.ready
    carried = None if created else _carried(ctx, token, replaced)
    holder: frozenset[str] = frozenset()
    checking: dict[str, Desired] = {}
    if not created and state.reason == "AliasConflict" and replaced is None:
        state, holder, carried, checking = _holder(ctx, token, state, carried)
    notes = ctx.trigger_note(token)
    made_by = annotations_of(observed_request).get(ROTATION)
    if made_by in _REASONS:
        notes[ROTATION] = made_by
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
    kept, retiring_until = _retiring(ctx, {request_resource(token)})
    resources.update(kept)
    born = created_at(observed_request) or ctx.now
    status: dict[str, Any] = {}
    schedule: dict[str, Any] = {}
    if made_by in _REASONS:
        schedule["lastRotatedAt"] = rfc3339(born)
    spec_rotation = ctx.spec.rotation
    reason = rotation.due(spec_rotation, ctx.handled_trigger(token), born, ctx.now)
    next_at = rotation.next_rotation(spec_rotation, born)
    # The platform's keys.minRotationInterval holds for rotations on demand too,
    # counted from when the current key's Request was made.
    allowed_at = born + ctx.granted.min_rotation
    if reason is not None and ctx.now < allowed_at:
        reason, next_at = None, allowed_at if next_at is None else max(next_at, allowed_at)
    if next_at is not None:
        schedule["nextRotationAt"] = rfc3339(next_at)
    if retiring_until is not None:
        schedule["oldKeyExpiresAt"] = rfc3339(retiring_until)
    if schedule:
        status["rotation"] = schedule
    # With a budget, what the key spent must come from provider-http's answer.
    answered = rotation.answered_spend(observed_request)
    if (
        reason is not None
        and replaced is None
        and state.ready
        and not kept
        and (answered is not None or ctx.spec.max_budget is None)
    ):
        return _rotating(ctx, key, new_key(), reason=reason)
    revisit = min((t for t in (next_at, retiring_until) if t is not None), default=None)
    return Flow(token, state, resources, status, revisit_at=revisit, replace_holder=holder)


@dataclass(frozen=True)
class _Charge:
    """What a rotation charges: the old key's cap and the new key's starting spend."""

    old_key_budget: Decimal | None
    carried: Decimal


def _charge(ctx: KeyContext, token: str, new_token: str) -> _Charge:
    """The cap and carried spend of a rotation, fixed when it starts.

    Once the old key's Request carries its cap (with the retired alias), that
    cap is what the rotation charges: the old key's spend has moved on since.
    Before that it is computed from provider-http's last answer for the old
    key. Both are written only by Crossplane and provider-http.
    """
    old = ctx.observed_request(token)
    fields = payload_of(old).get("fields")
    fields = fields if isinstance(fields, dict) else {}
    retired = rotation.retired_alias(ctx.spec.key_alias, token)
    new_payload = payload_of(ctx.observed_request(new_token)).get("createOnly")
    kept = dollars(new_payload.get("spend")) if isinstance(new_payload, dict) else None
    spent = rotation.answered_spend(old) or Decimal(0)
    if ctx.spec.max_budget is None:
        return _Charge(None, max(spent, kept or Decimal(0)))
    applied = dollars(fields.get("max_budget"))
    if fields.get("key_alias") == retired and applied is not None:
        return _Charge(applied, max(applied, kept or Decimal(0)))
    spec_rotation = ctx.spec.rotation
    charge = rotation.carry(
        spent,
        ctx.spec.max_budget,
        spec_rotation.grace_period_budget if spec_rotation else None,
    )
    return _Charge(charge.old_key_budget, charge.spend)


def _rotating(ctx: KeyContext, key: str, next_key: str, *, reason: str) -> Flow:
    """A rotation under way: the new key waits in the next-key Secret."""
    token, new_token = token_of(key), token_of(next_key)
    spec_rotation = ctx.spec.rotation
    charge = _charge(ctx, token, new_token)
    retired = rotation.retired_alias(ctx.spec.key_alias, token)
    overrides: dict[str, Any] = {"key_alias": retired}
    if charge.old_key_budget is not None:
        overrides["max_budget"] = float(charge.old_key_budget)
    if ctx.spec.budget_duration is not None:
        # A budget reset would give the old key its cap again: it loses the period.
        overrides["budget_duration"] = None
    notes = {**ctx.trigger_note(token), NEXT_KEY: new_token, ROTATION: reason}
    old_state = ctx.state_of(token)
    moved = rotation.answered_alias(ctx.observed_request(token)) == retired
    new_state = ctx.state_of(new_token)
    pending: dict[str, Any] = {
        "tokenHash": new_token,
        "reason": reason,
        "carriedSpend": money(charge.carried),
    }
    if charge.old_key_budget is not None:
        pending["oldKeyBudget"] = money(charge.old_key_budget)
    resources = {
        SECRET_RESOURCE: Desired(ctx.secret(ctx.secret_name, key), ready=True),
        NEXT_SECRET_RESOURCE: Desired(
            ctx.secret(ctx.next_secret_name, next_key),
            ready=NEXT_SECRET_RESOURCE in ctx.observed,
        ),
    }
    if moved:
        # Only now is the alias free: the new key's CREATE would fail before.
        new_notes = {ROTATION: reason}
        if spec_rotation is not None and spec_rotation.trigger is not None:
            new_notes[TRIGGER] = str(spec_rotation.trigger)
        resources[request_resource(new_token)] = Desired(
            ctx.request(
                new_token,
                key_secret=ctx.next_secret_name,
                ready=new_state.ready,
                carried=charge.carried,
                annotations=new_notes,
            ),
            ready=new_state.ready,
        )
    kept, retiring_until = _retiring(ctx, {request_resource(token), request_resource(new_token)})
    resources.update(kept)
    if not (moved and new_state.ready):
        resources[request_resource(token)] = Desired(
            ctx.request(
                token,
                key_secret=ctx.secret_name,
                ready=True,
                overrides=overrides,
                annotations=notes,
            ),
            ready=old_state.ready,
        )
        state = new_state if moved and new_state.is_problem else old_state
        if state.ready:
            state = KeyState(
                ready=True,
                reason="Rotating",
                message=f"Key {ctx.spec.key_alias} is in place and being rotated "
                f"({reason}); Secret {ctx.owner.namespace}/{ctx.secret_name} "
                "keeps the current key until the new one exists.",
            )
        schedule: dict[str, Any] = {"pending": pending}
        if retiring_until is not None:
            schedule["oldKeyExpiresAt"] = rfc3339(retiring_until)
        return Flow(token, state, resources, {"rotation": schedule}, revisit_at=retiring_until)
    # The new key exists: switch the Secret to it, and retire the old key, which
    # also expires on the proxy then, should its Request's REMOVE never run.
    grace = duration(spec_rotation.grace_period if spec_rotation else "1h")
    until = ctx.now + grace
    resources[SECRET_RESOURCE] = Desired(ctx.secret(ctx.secret_name, next_key), ready=True)
    resources[request_resource(token)] = Desired(
        ctx.request(
            token,
            key_secret=ctx.secret_name,
            ready=True,
            overrides=overrides,
            annotations={**notes, rotation.RETIRE_AT: rfc3339(until)},
            update_only={"duration": f"{int(grace.total_seconds())}s"},
        ),
        ready=True,
    )
    done: dict[str, Any] = {
        "lastRotatedAt": rfc3339(ctx.now),
        "oldKeyExpiresAt": rfc3339(until),
    }
    if spec_rotation is not None and spec_rotation.every is not None:
        done["nextRotationAt"] = rfc3339(ctx.now + duration(spec_rotation.every))
    event = (
        f"Rotated the key ({reason}): Secret {ctx.owner.namespace}/"
        f"{ctx.secret_name} now holds a new key (token {new_token[:12]}...), which starts "
        f"at ${money(charge.carried)} spent. The old key (token {token[:12]}...) "
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


def _retiring(ctx: KeyContext, current: set[str]) -> tuple[dict[str, Desired], datetime | None]:
    """Rotated-out keys' Requests kept until their retire-at, and the earliest of those."""
    kept: dict[str, Desired] = {}
    earliest: datetime | None = None
    for name, request in observed_requests(ctx.observed).items():
        at = rotation.retire_at(request)
        if name in current or at is None or ctx.now >= at:
            continue  # past it: dropped, and Crossplane deleting it deletes the key
        meta = request.get("metadata") or {}
        notes = {rotation.RETIRE_AT: rfc3339(at)}
        if token_in_request(request) in ctx.exposed:
            notes[EXPOSED] = "true"
        kept[name] = Desired(
            {
                "apiVersion": request.get("apiVersion"),
                "kind": request.get("kind"),
                "metadata": {
                    **{k: meta[k] for k in ("name", "namespace", "labels") if k in meta},
                    "annotations": notes,
                },
                "spec": request.get("spec") or {},
            },
            ready=True,
        )
        earliest = at if earliest is None else min(earliest, at)
    return kept, earliest


def _carried(ctx: KeyContext, token: str, replaced: str | None) -> Decimal | None:
    """The spend a key not created yet starts with: the most any replaced key had spent.

    Read from provider-http's answers for the keys it replaces, on the run
    that replaces them, and kept from then on in the new key's own Request.
    """
    found: list[Decimal] = []
    create_only = payload_of(ctx.observed_request(token)).get("createOnly")
    if isinstance(create_only, dict):
        found += [s for s in (dollars(create_only.get("spend")),) if s is not None]
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
    check's answer is provider-http's (function.holders).
    """
    alias, where = ctx.spec.key_alias, ctx.granted.connection.base_url
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
        # Only this VirtualKey's own keys carry their spend: a foreign key's spend is
        # whatever its maker chose, and must not eat into this key's budget.
        own = [h.spend for h in found if h.owner == mine]
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
        return (
            KeyState(ready=False, reason=REPLACING, message=message),
            frozenset(h.token for h in found),
            max([*own, *([carried] if carried is not None else [])], default=None),
            resources,
        )
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
    refused = KeyState(
        ready=False,
        reason="AliasConflict",
        message=f"keyAlias {alias!r} is already held on {where} {held}. {release}",
    )
    return refused, frozenset(), carried, resources

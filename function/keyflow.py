"""Where a VirtualKey's key comes from on this run, rotation included. Pure.

`key_flow(ctx, key, replaced)` -> `Flow`: the key Secret(s), the key's
Request(s), the status fields of rotation and carried spend, and events.
`function.compose` adds what every VirtualKey gets around it (stray keys,
warnings). The phases, each read back from what Crossplane observed:

- **Steady.** The key Secret holds the key; its Request keeps it in step.
  A key that is new because the Secret was lost, the key was revoked, or
  another key held the alias (a reinstall, `_holder`, which lists the
  holders with `function.holders`) starts with the spend of the key it
  replaces (`status.carry`), so losing a Secret resets no budget.
- **Rotating** (`_rotating`), once `function.rotation.due`: the new key
  waits in a second Secret; the old key moves to a derived alias and is
  capped; the new key is created under the alias with the carried spend;
  then the key Secret switches to it.
- **Retiring** (`_retiring`): a rotated-out key's Request stays until its
  `auth.litellm.ai/retire-at`, then is dropped, and Crossplane deleting it
  deletes the old key on the proxy.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from function import holders, provenance, rotation
from function.keys import key_from_secret_data, new_key, token_of
from function.readiness import (
    CREATE_FAILED,
    CREATE_SETTLED,
    KeyState,
    key_state,
    revoked,
    unsettled_create,
)
from function.request import build_request, created_once, payload_of, token_in_request

if TYPE_CHECKING:
    from function.compose import Owner
    from function.model import Input, VirtualKeySpec
    from function.tenancy import Authorization

SECRET_RESOURCE = "key"  # noqa: S105 - a resource name, not a secret.
NEXT_SECRET_RESOURCE = "next-key"  # noqa: S105 - a resource name, not a secret.
REQUEST_RESOURCE_PREFIX = "request-"
LOST = "lost"
REVOKED = "revoked"
REPLACING = "ReplacingOldKey"
_REASONS = ("requested", "scheduled", "resumed")  # why a rotation started


@dataclass(frozen=True)
class Desired:
    """One desired composed resource and whether it is ready."""

    body: dict[str, Any]
    ready: bool


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


def request_resource(token: str) -> str:
    """The composed resource name of the Request of key `token`."""
    return f"{REQUEST_RESOURCE_PREFIX}{token[:10]}"


def observed_requests(observed: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The observed key Requests, by composed resource name."""
    return {n: r for n, r in observed.items() if n.startswith(REQUEST_RESOURCE_PREFIX)}


def choose_key(observed: dict[str, dict[str, Any]]) -> tuple[str, str | None]:
    """The raw key to use, and why it replaces another: None, LOST or REVOKED."""
    requests = observed_requests(observed)
    gone = {token_in_request(r) for r in requests.values() if revoked(r)}
    secret = observed.get(SECRET_RESOURCE)
    kept = key_from_secret_data(secret.get("data")) if secret else None
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

    xr: dict[str, Any]
    observed: dict[str, dict[str, Any]]
    owner: Owner
    spec: VirtualKeySpec
    granted: Authorization
    settings: Input
    now: datetime
    labels: dict[str, str]

    @property
    def secret_name(self) -> str:
        """The key Secret the tenant's clients read."""
        return f"{self.owner.base_name}-litellm-key"

    @property
    def next_secret_name(self) -> str:
        """Where a rotation's new key waits until it exists on the proxy."""
        return f"{self.owner.base_name}-litellm-key-next"

    @property
    def status(self) -> dict[str, Any]:
        """The XR's observed status."""
        status = self.xr.get("status")
        return status if isinstance(status, dict) else {}

    @property
    def sending(self) -> dict[str, Any]:
        """What every Request of this VirtualKey shares: where it lives and how it is sent."""
        return {
            "namespace": self.owner.namespace,
            "connection": self.granted.connection,
            "provider_config": self.settings.provider_config_ref.model_dump(),
            "wait_timeout": self.settings.request_timeout,
            "labels": self.labels,
        }

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
        return key_state(
            self.observed.get(request_resource(token)),
            self.granted.connection,
            self.spec.key_alias,
        )

    def request(  # noqa: PLR0913 - each argument is one independent fact.
        self,
        token: str,
        *,
        key_secret: str,
        ready: bool,
        carried: Decimal | None = None,
        overrides: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The Request of the key `token`, as build_request makes it for this VirtualKey."""
        observed_request = self.observed.get(request_resource(token))
        body = build_request(
            name=f"{self.owner.base_name}-{token[:8]}",
            namespace=self.owner.namespace,
            spec=self.spec,
            granted=self.granted,
            token=token,
            key_secret=key_secret,
            provider_config=self.settings.provider_config_ref.model_dump(),
            wait_timeout=self.settings.request_timeout,
            labels=self.labels,
            # Once LiteLLM has the key, provider-http may never create it again.
            created=created_once(observed_request) or ready,
            provenance=provenance.stamp(
                self.owner.namespace, self.owner.virtualkey, self.granted.policy
            ),
            carried_spend=None if carried is None else rotation.money(carried),
            overrides=overrides,
        )
        notes = dict(annotations or {})
        settled = unsettled_create(observed_request)
        if settled is not None:
            notes[CREATE_FAILED] = notes[CREATE_SETTLED] = settled
        if notes:
            body["metadata"]["annotations"] = notes
        return body


def key_flow(ctx: KeyContext, key: str, replaced: str | None) -> Flow:
    """The key Secret, Requests and rotation status for the key `key` (see the module)."""
    token = token_of(key)
    waiting = ctx.observed.get(NEXT_SECRET_RESOURCE)
    next_key = key_from_secret_data(waiting.get("data")) if waiting else None
    if replaced is None and next_key is not None and token_of(next_key) != token:
        if not _made_here(ctx, token_of(next_key)):
            # Rewritten since the function wrote it: a key someone else chose
            # must not become the key, so the rotation goes on with a new one.
            next_key = new_key()
        return _rotating(ctx, key, next_key, reason=None)
    return _steady(ctx, key, replaced, switched=next_key is not None and replaced is None)


def _made_here(ctx: KeyContext, token: str) -> bool:
    """Whether the next-key Secret holds the key the function put there."""
    pending = rotation.remembered_rotation(ctx.status).get("pending")
    return (isinstance(pending, dict) and pending.get("tokenHash") == token) or request_resource(
        token
    ) in ctx.observed


def _steady(ctx: KeyContext, key: str, replaced: str | None, *, switched: bool) -> Flow:
    token = token_of(key)
    observed_request = ctx.observed.get(request_resource(token))
    state = ctx.state_of(token)
    created = created_once(observed_request) or state.ready
    carried = None if created else _carried(ctx, token, replaced)
    holder: frozenset[str] = frozenset()
    checking: dict[str, Desired] = {}
    if not created and state.reason == "AliasConflict" and replaced is None:
        state, holder, carried, checking = _holder(ctx, token, state, carried)
    resources = {
        **checking,
        SECRET_RESOURCE: Desired(
            ctx.secret(ctx.secret_name, key), ready=SECRET_RESOURCE in ctx.observed
        ),
        request_resource(token): Desired(
            ctx.request(token, key_secret=ctx.secret_name, ready=state.ready, carried=carried),
            ready=state.ready,
        ),
    }
    kept, retiring_until = _retiring(ctx, {request_resource(token)})
    resources.update(kept)
    status: dict[str, Any] = {}
    if carried is not None:
        status["carry"] = {"tokenHash": token, "spend": rotation.money(carried)}
    schedule, reason, next_at = _schedule(ctx, switched=switched)
    if schedule:
        status["rotation"] = schedule
    if retiring_until is not None:
        status.setdefault("rotation", {})["oldKeyExpiresAt"] = rotation.rfc3339(retiring_until)
    # With a budget, what the key spent must come from provider-http's answer,
    # not only from the status, which the tenant may be able to write.
    answered = rotation.answered_spend(observed_request)
    # The platform's keys.minRotationInterval holds for rotations on demand too.
    last = rotation.parse_time(schedule.get("lastRotatedAt"))
    allowed_at = last + ctx.granted.min_rotation if last is not None else None
    if reason is not None and allowed_at is not None and ctx.now < allowed_at:
        reason, next_at = None, allowed_at if next_at is None else max(next_at, allowed_at)
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


def _schedule(
    ctx: KeyContext, *, switched: bool
) -> tuple[dict[str, Any], str | None, datetime | None]:
    """`status.rotation` in the steady phase, why a rotation is due, and when the next is."""
    remembered = rotation.remembered_rotation(ctx.status)
    pending = remembered.get("pending")
    if isinstance(pending, dict) and switched:
        # The switch happened but its status write was lost: finish it now.
        remembered = rotation.finished(remembered, pending, ctx.now)
    out = {k: remembered[k] for k in ("lastRotatedAt",) if k in remembered}
    spec = ctx.spec.rotation
    if spec is None:
        return out, None, None
    since = rotation.schedule_start(remembered, ctx.now)
    handled = rotation.handled_trigger(spec, remembered)
    out["since"] = rotation.rfc3339(since)
    if handled is not None:
        out["trigger"] = handled
    next_at = rotation.next_rotation(spec, out, ctx.now)
    if next_at is not None:
        out["nextRotationAt"] = rotation.rfc3339(next_at)
    return out, rotation.due(spec, out, ctx.now), next_at


def _rotating(ctx: KeyContext, key: str, next_key: str, *, reason: str | None) -> Flow:
    """A rotation under way: the new key waits in the next-key Secret."""
    token, new_token = token_of(key), token_of(next_key)
    spec_rotation = ctx.spec.rotation
    remembered = rotation.remembered_rotation(ctx.status)
    pending = _pending(ctx, token, new_token, remembered, reason)
    retired = rotation.retired_alias(ctx.spec.key_alias, token)
    overrides: dict[str, Any] = {"key_alias": retired}
    old_budget = rotation.dollars(pending.get("oldKeyBudget"))
    if old_budget is not None:
        overrides["max_budget"] = float(old_budget)
    old_state = ctx.state_of(token)
    moved = rotation.answered_alias(ctx.observed.get(request_resource(token))) == retired
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
        resources[request_resource(new_token)] = Desired(
            ctx.request(
                new_token,
                key_secret=ctx.next_secret_name,
                ready=new_state.ready,
                carried=rotation.dollars(pending.get("carriedSpend")),
            ),
            ready=new_state.ready,
        )
    kept, retiring_until = _retiring(ctx, {request_resource(token), request_resource(new_token)})
    resources.update(kept)
    if not (moved and new_state.ready):
        resources[request_resource(token)] = Desired(
            ctx.request(token, key_secret=ctx.secret_name, ready=True, overrides=overrides),
            ready=old_state.ready,
        )
        base = {k: v for k, v in remembered.items() if k != "pending"}
        state = new_state if moved and new_state.is_problem else old_state
        if state.ready:
            state = KeyState(
                ready=True,
                reason="Rotating",
                message=f"Key {ctx.spec.key_alias} is in place and being rotated "
                f"({pending.get('reason')}); Secret {ctx.owner.namespace}/{ctx.secret_name} "
                "keeps the current key until the new one exists.",
            )
        return Flow(
            token,
            state,
            resources,
            {"rotation": {**base, "pending": pending}},
            revisit_at=retiring_until,
        )
    # The new key exists: switch the Secret to it, and retire the old key.
    grace = rotation.duration(spec_rotation.grace_period if spec_rotation else "1h")
    until = ctx.now + grace
    resources[SECRET_RESOURCE] = Desired(ctx.secret(ctx.secret_name, next_key), ready=True)
    resources[request_resource(token)] = Desired(
        ctx.request(
            token,
            key_secret=ctx.secret_name,
            ready=True,
            overrides=overrides,
            annotations={rotation.RETIRE_AT: rotation.rfc3339(until)},
        ),
        ready=True,
    )
    done = rotation.finished(remembered, pending, ctx.now)
    if spec_rotation is not None and spec_rotation.every is not None:
        done["nextRotationAt"] = rotation.rfc3339(ctx.now + rotation.duration(spec_rotation.every))
    done["oldKeyExpiresAt"] = rotation.rfc3339(until)
    carried = pending.get("carriedSpend")
    event = (
        f"Rotated the key ({pending.get('reason')}): Secret {ctx.owner.namespace}/"
        f"{ctx.secret_name} now holds a new key (token {new_token[:12]}...), which starts "
        f"at ${carried} spent. The old key (token {token[:12]}...) keeps working until "
        f"{rotation.rfc3339(until)}, then it is deleted."
    )
    return Flow(
        new_token,
        new_state,
        resources,
        {"rotation": done},
        events=[event],
        revisit_at=min(until, retiring_until or until),
    )


def _pending(
    ctx: KeyContext,
    token: str,
    new_token: str,
    remembered: dict[str, Any],
    reason: str | None,
) -> dict[str, Any]:
    """`status.rotation.pending`: fixed when the rotation starts, recomputed if lost.

    The money in it is not taken from the status alone, which someone who may
    edit the VirtualKey may be able to write: once the old key's cap is
    applied, its Request (which only Crossplane writes) says what it is, and
    the new key carries at least that.
    """
    pending = _remembered_pending(remembered, new_token)
    if pending is None:
        spent = _spent(ctx, token) or Decimal(0)
        spec_rotation = ctx.spec.rotation
        charge = rotation.carry(
            spent,
            ctx.spec.max_budget,
            spec_rotation.grace_period_budget if spec_rotation else None,
        )
        pending = {
            "tokenHash": new_token,
            "reason": reason or "resumed",
            "startedAt": rotation.rfc3339(ctx.now),
            "carriedSpend": rotation.money(charge.spend),
        }
        if spec_rotation is not None and spec_rotation.trigger is not None:
            pending["trigger"] = spec_rotation.trigger
        if charge.old_key_budget is not None:
            pending["oldKeyBudget"] = rotation.money(charge.old_key_budget)
    applied = _applied_cap(ctx, token)
    if applied is None or ctx.spec.max_budget is None:
        return dict(pending)
    carried = rotation.dollars(pending.get("carriedSpend")) or Decimal(0)
    return {
        **pending,
        "oldKeyBudget": rotation.money(applied),
        "carriedSpend": rotation.money(max(carried, applied)),
    }


def _remembered_pending(remembered: dict[str, Any], new_token: str) -> dict[str, Any] | None:
    """The status's pending rotation of `new_token`, rebuilt from values that parse.

    Its text reaches the KeyReady message and an Event, so nothing in it is
    copied as written: a reason that is not one of ours, or money that does
    not read as money, makes the pending rotation count as lost (recomputed).
    """
    pending = remembered.get("pending")
    if not isinstance(pending, dict) or pending.get("tokenHash") != new_token:
        return None
    carried = rotation.dollars(pending.get("carriedSpend"))
    cap = pending.get("oldKeyBudget")
    if carried is None or pending.get("reason") not in _REASONS:
        return None
    if cap is not None and rotation.dollars(cap) is None:
        return None
    started = rotation.parse_time(pending.get("startedAt"))
    clean: dict[str, Any] = {
        "tokenHash": new_token,
        "reason": pending["reason"],
        "carriedSpend": rotation.money(carried),
    }
    if started is not None:
        clean["startedAt"] = rotation.rfc3339(started)
    trigger = rotation.whole(pending.get("trigger"))
    if trigger is not None:
        clean["trigger"] = trigger
    if cap is not None:
        clean["oldKeyBudget"] = rotation.money(rotation.dollars(cap) or Decimal(0))
    return clean


def _applied_cap(ctx: KeyContext, token: str) -> Decimal | None:
    """The max budget the old key's observed Request sets, once it moved the alias."""
    fields = payload_of(ctx.observed.get(request_resource(token))).get("fields")
    if not isinstance(fields, dict):
        return None
    if fields.get("key_alias") != rotation.retired_alias(ctx.spec.key_alias, token):
        return None
    return rotation.dollars(fields.get("max_budget"))


def _retiring(ctx: KeyContext, current: set[str]) -> tuple[dict[str, Desired], datetime | None]:
    """Rotated-out keys' Requests kept until their retire-at, and the earliest of those."""
    kept: dict[str, Desired] = {}
    earliest: datetime | None = None
    for name, request in observed_requests(ctx.observed).items():
        at = rotation.retire_at(request)
        if name in current or at is None or ctx.now >= at:
            continue  # past it: dropped, and Crossplane deleting it deletes the key
        meta = request.get("metadata") or {}
        kept[name] = Desired(
            {
                "apiVersion": request.get("apiVersion"),
                "kind": request.get("kind"),
                "metadata": {
                    **{k: meta[k] for k in ("name", "namespace", "labels") if k in meta},
                    "annotations": {rotation.RETIRE_AT: rotation.rfc3339(at)},
                },
                "spec": request.get("spec") or {},
            },
            ready=True,
        )
        earliest = at if earliest is None else min(earliest, at)
    return kept, earliest


def _spent(ctx: KeyContext, token: str) -> Decimal | None:
    """What key `token` has spent: the most its Request's last answer or the poller saw."""
    answered = rotation.answered_spend(ctx.observed.get(request_resource(token)))
    polled = (
        rotation.dollars(ctx.status.get("currentSpend"))
        if ctx.status.get("tokenHash") == token
        else None
    )
    known = [s for s in (answered, polled) if s is not None]
    return max(known) if known else None


def _carried(ctx: KeyContext, token: str, replaced: str | None) -> Decimal | None:
    """The spend a key not created yet starts with: the most any replaced key had spent."""
    found: list[Decimal] = []
    remembered = ctx.status.get("carry")
    if isinstance(remembered, dict) and remembered.get("tokenHash") == token:
        found += [s for s in (rotation.dollars(remembered.get("spend")),) if s is not None]
    if replaced is not None:
        for request in observed_requests(ctx.observed).values():
            spend = rotation.answered_spend(request)
            if token_in_request(request) != token and spend is not None:
                found.append(spend)
        polled = rotation.dollars(ctx.status.get("currentSpend"))
        if polled is not None:
            found.append(polled)
    return max(found) if found else None


def _holder(
    ctx: KeyContext, token: str, state: KeyState, carried: Decimal | None
) -> tuple[KeyState, frozenset[str], Decimal | None, dict[str, Desired]]:
    """What to do about other keys holding the alias, as the alias check lists them.

    A key this VirtualKey made (its provenance names it: a reinstall) is
    replaced: deleted, its spend carried over. Any other key only if a
    granting TenancyPolicy rule sets keys.replaceForeignKeys. The check's
    answer is provider-http's, never the XR's status (function.holders).
    """
    alias, where = ctx.spec.key_alias, ctx.granted.connection.base_url
    check = holders.alias_check(
        name=f"{ctx.owner.base_name}-alias-check", alias=alias, **ctx.sending
    )
    resources = {holders.CHECK_RESOURCE: Desired(check, ready=True)}
    found = holders.holders(ctx.observed.get(holders.CHECK_RESOURCE), alias, token)
    if not found:  # no answer yet, or the alias was freed meanwhile: CREATE retries
        return state, frozenset(), carried, resources
    mine = (ctx.owner.namespace, ctx.owner.virtualkey)
    foreign = [h for h in found if h.owner != mine]
    if not foreign or ctx.granted.replace_foreign_keys:
        spend = max(h.spend for h in found)
        whose = (
            "that this VirtualKey made earlier (a reinstall)"
            if not foreign
            else "that this VirtualKey did not make, which its TenancyPolicy allows it to replace"
        )
        message = (
            f"keyAlias {alias!r} is held on {where} by a key {whose}. LiteLLM keeps no raw "
            "key, so a new key is being made: the old key is deleted and its spend "
            f"(${rotation.money(spend)}) carried over to the new one."
        )
        return (
            KeyState(ready=False, reason=REPLACING, message=message),
            frozenset(h.token for h in found),
            max(spend, carried or Decimal(0)),
            resources,
        )
    if any(h.owner is not None for h in foreign):
        held = "by a key that another VirtualKey made, which this function never touches"
    else:
        held = "by a key made outside this function (it names no VirtualKey)"
    release = (
        "Aliases are unique per proxy. Use another keyAlias, or ask the platform team to "
        f"release the alias: delete that key (POST {where}/key/delete with "
        f"{json.dumps({'key_aliases': [alias]})}), or let keys of this namespace replace it "
        "with keys.replaceForeignKeys: true in the TenancyPolicy rule that grants it."
    )
    refused = KeyState(
        ready=False,
        reason="AliasConflict",
        message=f"keyAlias {alias!r} is already held on {where} {held}. {release}",
    )
    return refused, frozenset(), carried, resources

"""From a LiteLLM key record and the time to status fields and events. Pure.

- `observe(record, now)` -> `Observation`: the reason (`Reason`), a message
  for a person and the status fields to set (`currentSpend`, `isActive`,
  `expiryDate`, `budgetResetAt`; None removes a field).
- `alias_holder(record, tenant)` -> `status.aliasHolder`, the key that
  holds the alias of a key not found (whose, and where the platform opted
  in to replacing it, its token and spend).
- `unavailable(message)` -> `Observation` that sets no field: the last known
  values stay, only the condition says LiteLLMUnavailable.
- `too_many_proxies(limit)` -> the same for a VirtualKey on a tenant-owned
  proxy beyond its namespace's `tenantProxies.maxInstances`.
- `status_patch(status, observation, now, generation)` -> the `status` part
  of a merge patch, or None when nothing would change. It carries the whole
  `conditions` list (a merge patch replaces lists) with only the
  `SpendSynced` entry replaced, and moves `lastTransitionTime` only when
  the condition's status or reason changes.
- `events(status, record, observation)` -> the `Event`s of a transition:
  80% and 100% of the max budget, soft budget crossed, expired, blocked,
  not found. Levels are compared with the spend in the old status, so a
  restarted poller does not repeat them.

Why a key is not active, in order: it is missing or deleted (KeyNotFound),
blocked, expired, or its spend reached the max budget (LiteLLM refuses a
request when spend >= max_budget; it does not mark such keys blocked).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from function.poller.records import KeyRecord
from function.units import money, rfc3339

CONDITION_TYPE = "SpendSynced"
OWNED_FIELDS = ("currentSpend", "isActive", "expiryDate", "budgetResetAt", "aliasHolder")
ALERT_FRACTION = Decimal("0.8")


class Reason(enum.StrEnum):
    """The reason of the SpendSynced condition."""

    ACTIVE = "Active"
    BUDGET_EXCEEDED = "BudgetExceeded"
    EXPIRED = "Expired"
    BLOCKED = "Blocked"
    KEY_NOT_FOUND = "KeyNotFound"
    UNAVAILABLE = "LiteLLMUnavailable"
    UNREADABLE = "LiteLLMAnswerUnreadable"
    TOO_MANY_PROXIES = "TooManyTenantProxies"


FOUND = frozenset({Reason.ACTIVE, Reason.BUDGET_EXCEEDED, Reason.EXPIRED, Reason.BLOCKED})
# Reasons that say nothing new about the key: its last known values stay.
KEEPS_LAST = frozenset({Reason.UNAVAILABLE, Reason.UNREADABLE, Reason.TOO_MANY_PROXIES})


@dataclass(frozen=True)
class Observation:
    """What one cycle learnt about one key."""

    reason: Reason
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to emit on the VirtualKey."""

    type: str
    reason: str
    message: str


def _budget_text(record: KeyRecord) -> str:
    spent = f"${money(record.spend)} spent"
    if record.max_budget is None:
        return f"{spent}, no max budget"
    return f"{spent} of a ${money(record.max_budget)} max budget"


def observe(record: KeyRecord | None, now: datetime) -> Observation:
    """The reason, message and status fields for a key (None: not found)."""
    if record is not None and record.problem is not None:
        # Our own words for what is wrong, never the proxy's text; last values stay.
        return Observation(
            Reason.UNREADABLE,
            f"LiteLLM's answer for this key cannot be read ({record.problem}); showing the "
            "last known values. The platform team should check the proxy",
        )
    if record is None or record.deleted:
        return Observation(
            Reason.KEY_NOT_FOUND,
            "LiteLLM has no live key with this VirtualKey's alias that the function made for "
            "it: it was deleted, is not created yet, or the alias is held by another key "
            "(see aliasHolder and the KeyReady condition)",
            {"isActive": False},
        )
    fields: dict[str, Any] = {
        "currentSpend": money(record.spend),
        "expiryDate": rfc3339(record.expires) if record.expires else None,
        "budgetResetAt": rfc3339(record.budget_reset_at) if record.budget_reset_at else None,
    }
    over = record.max_budget is not None and record.spend >= record.max_budget
    if record.blocked:
        reason = Reason.BLOCKED
        message = (
            f"The key is blocked in LiteLLM, which refuses its requests; {_budget_text(record)}"
        )
    elif record.expires is not None and record.expires <= now:
        reason = Reason.EXPIRED
        message = f"The key expired at {rfc3339(record.expires)}; LiteLLM refuses its requests"
    elif over:
        reason = Reason.BUDGET_EXCEEDED
        reset = (
            f"until the budget resets at {rfc3339(record.budget_reset_at)}"
            if record.budget_reset_at
            else "until the max budget is raised"
        )
        message = (
            f"The key reached its max budget ({_budget_text(record)}); "
            f"LiteLLM refuses its requests {reset}"
        )
    else:
        reason = Reason.ACTIVE
        message = f"The key is active: {_budget_text(record)}"
    fields["isActive"] = reason is Reason.ACTIVE
    return Observation(reason, message, fields)


def alias_holder(
    holder: KeyRecord | None, tenant: tuple[str, str], *, replace_foreign: bool
) -> dict[str, Any] | None:
    """`status.aliasHolder`: who holds the alias of a key LiteLLM does not have (None: nobody).

    `owner` is the holder's provenance as `KeyRecord.owner` counts it (made
    and last changed by the master key): `other` for another VirtualKey's,
    `unknown` for a key without provenance or not made by the master key
    (a key made before provenance existed, or minted by a user with a forged
    stamp). A key whose provenance names this VirtualKey and that holds its
    alias is its current key, so `this` is only seen where two keys claim
    one alias. Only when the platform's TenancyPolicy opts in to replacing
    such keys (`replaceForeignKeys`) does the status get the holder's token
    and spend; otherwise another key is only ever named.
    """
    if holder is None:
        return None
    if holder.owner is None:
        owner = "unknown"
    else:
        owner = "this" if holder.owner == tenant else "other"
    found: dict[str, Any] = {"owner": owner}
    if (owner == "this" or replace_foreign) and holder.token and holder.problem is None:
        found["tokenHash"] = holder.token
        found["spend"] = money(holder.spend)
    return found


def unavailable(message: str) -> Observation:
    """An observation that keeps every last known value."""
    return Observation(Reason.UNAVAILABLE, message)


def too_many_proxies(limit: int) -> Observation:
    """A VirtualKey whose tenant proxy the poller does not read: last values stay."""
    return Observation(
        Reason.TOO_MANY_PROXIES,
        f"This namespace's VirtualKeys, Users and Teams use more tenant-owned proxies than "
        f"the poller reads for one namespace ({limit}, the TenancyPolicy's "
        "tenantProxies.maxInstances); the proxies read are the first ones in sorted order of "
        "URL and master-key Secret, and this VirtualKey's is not one of them, so its status "
        "shows the last known values. Move it to a proxy that is read, or ask the platform "
        "team to raise tenantProxies.maxInstances",
    )


def condition_of(status: dict[str, Any]) -> dict[str, Any] | None:
    """The SpendSynced condition in a status, if any."""
    for item in status.get("conditions") or []:
        if isinstance(item, dict) and item.get("type") == CONDITION_TYPE:
            return item
    return None


def status_patch(
    status: dict[str, Any],
    observation: Observation,
    now: datetime,
    generation: int | None = None,
) -> dict[str, Any] | None:
    """The `status` of a merge patch that brings `status` up to date, or None."""
    patch: dict[str, Any] = {}
    for name, value in observation.fields.items():
        if value is None:
            if name in status:
                patch[name] = None
        elif status.get(name) != value:
            patch[name] = value
    old = condition_of(status)
    wanted_status = "True" if observation.reason is Reason.ACTIVE else "False"
    transition = rfc3339(now)
    if old and old.get("status") == wanted_status and old.get("reason") == observation.reason:
        transition = str(old.get("lastTransitionTime") or transition)
    condition: dict[str, Any] = {
        "type": CONDITION_TYPE,
        "status": wanted_status,
        "reason": str(observation.reason),
        "message": observation.message,
        "lastTransitionTime": transition,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    if condition != old:
        conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
        for index, item in enumerate(conditions):
            if item.get("type") == CONDITION_TYPE:
                conditions[index] = condition
                break
        else:
            conditions.append(condition)
        patch["conditions"] = conditions
    return patch or None


def _spend_of(status: dict[str, Any]) -> Decimal:
    # Not function.units.dollars: what `dollars` wrote is read back as it is, a
    # negative key spend included (LiteLLM allows one), and anything else is 0.
    try:
        return Decimal(str(status.get("currentSpend", "0")))
    except InvalidOperation:
        return Decimal(0)


def _level(spend: Decimal, max_budget: Decimal) -> int:
    if spend >= max_budget:
        return 100
    if spend >= max_budget * ALERT_FRACTION:
        return 80
    return 0


def _budget_events(
    before: Decimal, record: KeyRecord, observation: Observation, *, changed: bool
) -> list[Event]:
    found: list[Event] = []
    budget = record.max_budget
    spent = f"Spend ${money(record.spend)}"
    if budget is not None and budget > 0:
        old_level, new_level = _level(before, budget), _level(record.spend, budget)
        newly_over = changed and observation.reason is Reason.BUDGET_EXCEEDED
        if new_level == 100 and (old_level < 100 or newly_over):  # noqa: PLR2004
            found.append(
                Event(
                    "Warning",
                    "BudgetExceeded",
                    f"{spent} reached the max budget ${money(budget)}; "
                    "LiteLLM refuses the key's requests",
                )
            )
        elif new_level == 80 and old_level < 80:  # noqa: PLR2004
            found.append(
                Event(
                    "Normal",
                    "BudgetAlmostSpent",
                    f"{spent} passed 80% of the max budget ${money(budget)}",
                )
            )
    soft = record.soft_budget
    if soft is not None and before < soft <= record.spend:
        found.append(
            Event("Warning", "SoftBudgetExceeded", f"{spent} passed the soft budget ${money(soft)}")
        )
    return found


def events(
    status: dict[str, Any], record: KeyRecord | None, observation: Observation
) -> list[Event]:
    """The events for the change from `status` to `observation`."""
    if observation.reason in KEEPS_LAST:
        return []
    old = condition_of(status) or {}
    old_reason = old.get("reason")
    changed = old_reason != observation.reason
    found: list[Event] = []
    if record is not None and not record.deleted:
        found.extend(_budget_events(_spend_of(status), record, observation, changed=changed))
    if changed and observation.reason is Reason.EXPIRED:
        found.append(Event("Warning", "KeyExpired", observation.message))
    if changed and observation.reason is Reason.BLOCKED:
        found.append(Event("Warning", "KeyBlocked", observation.message))
    if changed and observation.reason is Reason.KEY_NOT_FOUND and old_reason in FOUND:
        found.append(Event("Warning", "KeyNotFound", observation.message))
    return found

"""Rotation with a grace period, and the spend a new key carries over. Pure.

A rotation replaces the key without a moment in which the Secret holds a key
that does not work, and without resetting the budget (docs/rotation.md):

1. Due (`due`): `spec.rotation.every` has passed since the current key's
   Request was created, or `spec.rotation.trigger` differs from the one
   that Request was made for. The new key goes into a second Secret,
   `<name>-litellm-key-next`, and its token onto the current key's Request.
2. The current key's Request renames the key to a derived alias
   (`retired_alias`), since LiteLLM aliases are unique, and with maxBudget
   caps what it may still spend. Only once LiteLLM answered with that alias
   is the new key's Request composed; its CREATE carries the old key's
   spend plus the old key's grace allowance (`Carry`), so both keys
   together never spend more than maxBudget.
3. Once the new key exists, the key Secret switches to it and the old
   key's Request is marked `auth.litellm.ai/retire-at`: it is kept until
   then and dropped after, and Crossplane deleting it runs its REMOVE,
   which deletes the old key on the proxy.

Time is an argument (`now`): the function stays a function of its input.
`revisit_at` says when a decision made here changes by time alone, so the
gRPC layer neither caches the response past it nor lets Crossplane wait
longer than it to call again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from function.keys.spec import Rotation
from function.provider_http.answers import annotations_of, answer_body
from function.units import MICRO, dollars, duration, parse_time

RETIRE_AT = "auth.litellm.ai/retire-at"
_ALIAS_ROOM = 255 - len(".rotated-12345678")
# Without spec.rotation.gracePeriodBudget, the old key may spend this share of
# maxBudget during its grace period (never more than what is left).
DEFAULT_GRACE_SHARE = Decimal("0.1")


def retired_alias(alias: str, token: str) -> str:
    """The alias a rotated-out key moves to, freeing its own for the new key.

    Valid for LiteLLM (KEY_ALIAS_PATTERN, no `..`) for every valid alias.
    """
    stem = alias[:_ALIAS_ROOM].rstrip("-_/.@")
    return f"{stem}.rotated-{token[:8]}"


@dataclass(frozen=True)
class Carry:
    """What a rotation charges: the new key's starting spend, the old key's cap."""

    spend: Decimal
    old_key_budget: Decimal | None


def carry(spent: Decimal, max_budget: str | None, grace_budget: str | None) -> Carry:
    """Spend for the new key, and the old key's budget during its grace period.

    Without maxBudget there is no budget to protect: the spend is carried so
    that it keeps being reported. With it, the old key keeps an allowance
    (gracePeriodBudget, or a tenth of maxBudget, at most what is left) and
    the new key starts with the old spend plus that allowance: old and new
    together never pass maxBudget, however often the key is rotated.
    """
    if max_budget is None:
        return Carry(spent, None)
    most = Decimal(max_budget)
    allowance = Decimal(grace_budget) if grace_budget is not None else most * DEFAULT_GRACE_SHARE
    allowance = max(Decimal(0), min(allowance, most - spent)).quantize(MICRO)
    return Carry(spent + allowance, spent + allowance)


def due(
    rotation: Rotation | None, handled: int | None, born: datetime, now: datetime
) -> str | None:
    """Why the key is to be rotated now ("requested" or "scheduled"), or None.

    `handled` is the trigger the current key was made for, and `born` when
    its Request was created: both read from that Request, which only
    Crossplane writes, never from the XR's status.
    """
    if rotation is None:
        return None
    if rotation.trigger is not None and rotation.trigger != handled:
        return "requested"
    next_at = next_rotation(rotation, born)
    if next_at is not None and now >= next_at:
        return "scheduled"
    return None


def next_rotation(rotation: Rotation | None, born: datetime) -> datetime | None:
    """When the next scheduled rotation of a key made at `born` is due, if there is a schedule."""
    if rotation is None or rotation.every is None:
        return None
    return born + duration(rotation.every)


def whole(value: Any) -> int | None:
    """A whole number written as digits (an annotation), or None."""
    if not isinstance(value, str) or not value.isdigit() or len(value) > 16:  # noqa: PLR2004
        return None
    return int(value)


def retire_at(request: dict[str, Any]) -> datetime | None:
    """When an observed Request of a rotated-out key is to be dropped (its annotation)."""
    return parse_time(annotations_of(request).get(RETIRE_AT))


def answered_alias(request: dict[str, Any] | None) -> str | None:
    """The key alias in LiteLLM's last 200 answer stored on a Request, or None."""
    body = answer_body(request)
    if body is None:
        return None
    info = body.get("info")
    alias = (info if isinstance(info, dict) else body).get("key_alias")
    return alias if isinstance(alias, str) else None


def answered_spend(request: dict[str, Any] | None) -> Decimal | None:
    """The key's spend in LiteLLM's last 200 answer stored on a Request, or None."""
    body = answer_body(request)
    if body is None:
        return None
    info = body.get("info")
    return dollars((info if isinstance(info, dict) else body).get("spend"))

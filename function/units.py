"""Durations, times and money: one reading and one writing of each. Pure.

- `duration("30d")` -> timedelta: LiteLLM's durations (`mo` is 30 days).
- `rfc3339(moment)` / `parse_time(text)`: times as Kubernetes writes them
  (whole seconds, UTC, `Z`).
- `dollars(value)` -> Decimal or None: money from a spec, a status or a
  proxy's answer, to the micro-dollar, rounded up (a charge is never
  under-counted); None for anything that is not a plausible amount.
  `money(amount)`: as the spec and status write it, to the nearest
  micro-dollar (half up). `litellm_float(text)`: the float LiteLLM keeps,
  from a dollar string exact until then. The poller reads LiteLLM's amounts
  exactly (`function.poller.records.amount`) and shows them with `money`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

_RFC3339 = "%Y-%m-%dT%H:%M:%SZ"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 2592000}
_DURATION = re.compile(r"^([1-9][0-9]*)(mo|[smhdw])$")
MICRO = Decimal("0.000001")  # money is kept to the micro-dollar
_MAX_MONEY = Decimal(10) ** 12


def duration(value: str) -> timedelta:
    """A LiteLLM duration (`30d`, `1mo` = 30 days) as a timedelta; the model checked it."""
    match = _DURATION.fullmatch(value)
    if match is None:
        msg = f"not a duration: {value!r}"
        raise ValueError(msg)
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def rfc3339(moment: datetime) -> str:
    """A moment as Kubernetes writes times: whole seconds, UTC, `Z`."""
    return moment.astimezone(UTC).strftime(_RFC3339)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time written as `rfc3339` writes it, or None for anything else."""
    if not isinstance(value, str) or len(value) != len("2026-01-01T00:00:00Z"):
        return None
    try:
        return datetime.strptime(value, _RFC3339).replace(tzinfo=UTC)
    except ValueError:
        return None


def dollars(value: Any) -> Decimal | None:
    """A non-negative amount of money from a spec, a status or an answer, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0 or amount > _MAX_MONEY:
        return None
    return amount.quantize(MICRO, rounding=ROUND_CEILING)


def money(amount: Decimal) -> str:
    """Dollars as the status and the spec write them: to the micro-dollar, half up.

    The one rule for money shown: LiteLLM's spend shown to people is the
    nearest micro-dollar ($0.0000001 shows as 0). An amount the function
    charges against a budget was rounded up already, by `dollars`, where
    never under-counting matters.
    """
    text = format(amount.quantize(MICRO, rounding=ROUND_HALF_UP), "f").rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def litellm_float(value: str) -> float:
    """LiteLLM's float for a dollar string; Decimal keeps "0.1" exact until then."""
    return float(Decimal(value))

"""Durations, times and money, as `function.units` reads and writes them.

Named cases for each: money from a spec, a status or a proxy's answer is kept to
the micro-dollar and rounded up (a charge is never under-counted), and whatever
is not a plausible amount is None; times are whole seconds in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from function import units


@pytest.mark.parametrize(
    ("value", "want"),
    [
        pytest.param(10, Decimal(10), id="a whole number"),
        pytest.param("10.123456", Decimal("10.123456"), id="six decimals"),
        pytest.param(0.1, Decimal("0.1"), id="a float as it is written"),
        pytest.param("0.0000001", Decimal("0.000001"), id="less than a micro-dollar rounds up"),
        pytest.param(1.0000001, Decimal("1.000001"), id="a float's seventh decimal rounds up"),
        pytest.param("0", Decimal(0), id="nothing spent"),
        pytest.param(-1, None, id="negative"),
        pytest.param("NaN", None, id="not a number"),
        pytest.param(float("inf"), None, id="infinite"),
        pytest.param(10**13, None, id="more than a trillion"),
        pytest.param(True, None, id="a boolean"),
        pytest.param("ten", None, id="words"),
        pytest.param(None, None, id="nothing"),
    ],
)
def test_dollars(value: Any, want: Decimal | None) -> None:
    assert units.dollars(value) == want


@pytest.mark.parametrize(
    ("amount", "want"),
    [
        pytest.param(Decimal(3), "3", id="whole dollars"),
        pytest.param(Decimal("2.50"), "2.5", id="no trailing zeros"),
        pytest.param(Decimal(0), "0", id="zero"),
        pytest.param(Decimal("0.000001"), "0.000001", id="a micro-dollar"),
        pytest.param(Decimal("1E+2"), "100", id="never an exponent"),
    ],
)
def test_money_round_trips(amount: Decimal, want: str) -> None:
    assert units.money(amount) == want
    assert units.dollars(want) == amount


@pytest.mark.parametrize(
    ("value", "want"),
    [
        pytest.param("90s", timedelta(seconds=90), id="seconds"),
        pytest.param("30d", timedelta(days=30), id="days"),
        pytest.param("2w", timedelta(days=14), id="weeks"),
        pytest.param("1mo", timedelta(days=30), id="a month is 30 days"),
    ],
)
def test_duration(value: str, want: timedelta) -> None:
    assert units.duration(value) == want


@pytest.mark.parametrize("value", ["0d", "1y", "30", "-1h", "1.5h"])
def test_what_is_not_a_duration_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        units.duration(value)


def test_times_are_whole_seconds_in_utc() -> None:
    moment = datetime(2026, 12, 5, 14, 0, 30, 999_999, tzinfo=timezone(timedelta(hours=2)))
    written = units.rfc3339(moment)
    assert written == "2026-12-05T12:00:30Z"
    assert units.parse_time(written) == datetime(2026, 12, 5, 12, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", ["2026-12-05T12:00:30.5Z", "2026-12-05 12:00:30Z", "2026-13-05T12:00:30Z", 5, None]
)
def test_a_time_written_otherwise_is_none(value: Any) -> None:
    assert units.parse_time(value) is None


@pytest.mark.parametrize(
    ("amount", "want"),
    [
        pytest.param(Decimal("0.0000005"), "0.000001", id="half a micro-dollar rounds up"),
        pytest.param(Decimal("0.0000015"), "0.000002", id="half up, not to even"),
        pytest.param(Decimal("0.00000049"), "0", id="less than half rounds down"),
        pytest.param(Decimal("-0.0000001"), "0", id="never a negative zero"),
    ],
)
def test_money_shown_rounds_half_up(amount: Decimal, want: str) -> None:
    assert units.money(amount) == want

"""The pure part: records to status fields, reasons, patches and events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from function.poller.records import KeyRecord
from function.poller.state import (
    Reason,
    alias_holder,
    events,
    observe,
    status_patch,
    unavailable,
)
from function.units import money

NOW = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
BASE = KeyRecord(
    token="t" * 64,
    alias="svc",
    spend=Decimal("0.0048"),
    max_budget=Decimal(10),
    soft_budget=None,
    expires=None,
    budget_reset_at=None,
    blocked=False,
    deleted=False,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.00480000000000014"), "0.0048"),
        (Decimal("0.0"), "0"),
        (Decimal("200.0"), "200"),
        (Decimal("1E-6"), "0.000001"),
        (Decimal("1E-7"), "0"),
        (Decimal("12.3456789"), "12.345679"),
        (Decimal("0.1"), "0.1"),
    ],
)
def test_status_money(value: Decimal, text: str) -> None:
    assert money(value) == text


def test_reason_precedence() -> None:
    everything = replace(
        BASE, blocked=True, expires=datetime(2020, 1, 1, tzinfo=UTC), spend=Decimal(20)
    )
    assert observe(everything, NOW).reason is Reason.BLOCKED
    assert observe(replace(everything, blocked=False), NOW).reason is Reason.EXPIRED
    assert (
        observe(replace(everything, blocked=False, expires=None), NOW).reason
        is Reason.BUDGET_EXCEEDED
    )
    assert observe(None, NOW).fields == {"isActive": False}
    assert observe(replace(BASE, spend=Decimal(10)), NOW).fields["isActive"] is False


def test_patch_keeps_other_conditions_and_is_none_when_current() -> None:
    status = {
        "tokenHash": "t" * 64,
        "conditions": [{"type": "KeyReady", "status": "True", "reason": "Available"}],
    }
    obs = observe(BASE, NOW)
    patch = status_patch(status, obs, NOW, generation=3)
    assert patch is not None
    assert "tokenHash" not in patch
    assert [c["type"] for c in patch["conditions"]] == ["KeyReady", "SpendSynced"]
    assert patch["conditions"][1]["observedGeneration"] == 3
    applied = {**status, **patch}
    assert status_patch(applied, obs, NOW.replace(hour=22), generation=3) is None


def test_unavailable_changes_only_the_condition() -> None:
    status = {"currentSpend": "1", "isActive": True, "expiryDate": "2999-01-01T00:00:00Z"}
    patch = status_patch(status, unavailable("down"), NOW)
    assert patch is not None
    assert set(patch) == {"conditions"}
    assert patch["conditions"][0]["reason"] == "LiteLLMUnavailable"


def test_fields_that_went_away_are_removed() -> None:
    status = {"currentSpend": "0.0048", "isActive": True, "expiryDate": "2030-01-01T00:00:00Z"}
    patch = status_patch(status, observe(BASE, NOW), NOW)
    assert patch is not None
    assert patch["expiryDate"] is None
    assert "budgetResetAt" not in patch


def test_transition_time_moves_only_with_status_or_reason() -> None:
    first = status_patch({}, observe(BASE, NOW), NOW)
    assert first is not None
    later = NOW.replace(hour=23)
    second = status_patch(first, observe(replace(BASE, spend=Decimal(1)), later), later)
    assert second is not None
    assert second["conditions"][0]["lastTransitionTime"] == "2026-11-28T21:00:00Z"
    third = status_patch(first, observe(replace(BASE, blocked=True), later), later)
    assert third is not None
    assert third["conditions"][0]["lastTransitionTime"] == "2026-11-28T23:00:00Z"


def _reasons(status: dict[str, Any], record: KeyRecord | None) -> list[str]:
    return [e.reason for e in events(status, record, observe(record, NOW))]


def test_budget_events_fire_once_per_crossing() -> None:
    record = replace(BASE, max_budget=Decimal(10), soft_budget=Decimal(5))
    active = {"conditions": [{"type": "SpendSynced", "reason": "Active"}]}
    assert _reasons({**active, "currentSpend": "1"}, replace(record, spend=Decimal(2))) == []
    assert _reasons({**active, "currentSpend": "4"}, replace(record, spend=Decimal(6))) == [
        "SoftBudgetExceeded"
    ]
    assert _reasons({**active, "currentSpend": "6"}, replace(record, spend=Decimal(8))) == [
        "BudgetAlmostSpent"
    ]
    assert _reasons({**active, "currentSpend": "8"}, replace(record, spend=Decimal(9))) == []
    assert _reasons({**active, "currentSpend": "9"}, replace(record, spend=Decimal(10))) == [
        "BudgetExceeded"
    ]
    over = {
        "currentSpend": "10",
        "conditions": [{"type": "SpendSynced", "reason": "BudgetExceeded"}],
    }
    assert _reasons(over, replace(record, spend=Decimal(11))) == []


def test_state_events() -> None:
    active = {"currentSpend": "0.0048", "conditions": [{"type": "SpendSynced", "reason": "Active"}]}
    assert _reasons(active, replace(BASE, blocked=True)) == ["KeyBlocked"]
    assert _reasons(active, replace(BASE, expires=datetime(2020, 1, 1, tzinfo=UTC))) == [
        "KeyExpired"
    ]
    assert _reasons(active, None) == ["KeyNotFound"]
    # A key not created yet is not news.
    assert _reasons({}, None) == []
    assert events(active, None, unavailable("down")) == []


@pytest.mark.parametrize(
    ("owner", "replace_foreign", "want"),
    [
        (("team-a", "svc"), False, {"owner": "this", "tokenHash": "t" * 64, "spend": "0.0048"}),
        (("team-b", "svc"), False, {"owner": "other"}),
        (("team-a", "other-svc"), False, {"owner": "other"}),
        (None, False, {"owner": "unknown"}),
        (("team-b", "svc"), True, {"owner": "other", "tokenHash": "t" * 64, "spend": "0.0048"}),
        (None, True, {"owner": "unknown", "tokenHash": "t" * 64, "spend": "0.0048"}),
    ],
)
def test_alias_holder_tells_token_and_spend_only_for_a_key_the_function_may_replace(
    owner: tuple[str, str] | None, replace_foreign: bool, want: dict[str, Any]
) -> None:
    holder = replace(BASE, owner=owner)
    assert alias_holder(holder, ("team-a", "svc"), replace_foreign=replace_foreign) == want
    assert alias_holder(None, ("team-a", "svc"), replace_foreign=True) is None

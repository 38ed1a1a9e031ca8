"""LiteLLM's key objects to records: the real samples, the soft budget, provenance."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from function.poller.records import parse_key, parse_keys
from function.poller.state import Reason, observe
from tests.poller.samples import sample

NOW = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)


def test_samples_parse_into_records() -> None:
    listed = sample("08-key-list-full.json")["body"]["keys"][1]
    record = parse_key(listed)
    assert record.token == listed["token"]
    assert (record.spend, record.max_budget, record.blocked) == (
        Decimal("0.0048"),
        Decimal(200),
        False,
    )
    assert record.budget_reset_at == datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    deleted = parse_key(sample("17-key-info-after-delete.json")["body"]["info"])
    assert deleted.deleted
    assert observe(deleted, NOW).reason is Reason.KEY_NOT_FOUND
    expired = parse_key(sample("27-expired-key-generate.json")["body"])
    assert observe(expired, NOW).reason is Reason.EXPIRED
    assert observe(expired, NOW).fields["expiryDate"] == "2026-11-28T20:42:46Z"
    blocked = parse_key(sample("23-key-block.json")["body"])
    assert observe(blocked, NOW).reason is Reason.BLOCKED
    over = parse_key(
        {**sample("19-budget-key-generate.json")["body"], "spend": 0.00480000000000014}
    )
    obs = observe(over, NOW)
    assert (obs.reason, obs.fields["isActive"], obs.fields["currentSpend"]) == (
        Reason.BUDGET_EXCEEDED,
        False,
        "0.0048",
    )


def test_soft_budget_comes_from_the_budget_table() -> None:
    record = parse_key(
        {"spend": 1.0, "soft_budget": None, "litellm_budget_table": {"soft_budget": 0.5}}
    )
    assert record.soft_budget == Decimal("0.5")


def test_provenance_counts_only_on_a_key_the_master_key_made_and_last_changed() -> None:
    obj: dict[str, Any] = {
        "token": "t" * 64,
        "spend": 0,
        "created_by": "default_user_id",
        "updated_by": "default_user_id",
        "metadata": {"auth.litellm.ai/namespace": "a"},
    }
    assert parse_key(obj).owner is None  # half a stamp names nobody
    obj["metadata"]["auth.litellm.ai/virtualkey"] = "svc"
    assert parse_key(obj).owner == ("a", "svc")
    assert parse_key({**obj, "updated_by": None}).owner == ("a", "svc")
    assert parse_key({**obj, "metadata": "not an object"}).owner is None
    # A user who may call /key/generate writes any metadata, but not these two.
    assert parse_key({**obj, "created_by": "team-a.mallory"}).owner is None
    assert parse_key({**obj, "updated_by": "team-a.mallory"}).owner is None
    assert parse_key({k: v for k, v in obj.items() if k != "created_by"}).owner is None
    assert parse_key({**obj, "created_by": ["default_user_id"]}).owner is None
    record = parse_key({**obj, "created_by": "team-a.mallory"})
    assert (record.created_by, record.updated_by) == ("team-a.mallory", "default_user_id")
    # An unreadable key is still its VirtualKey's, so that one says it is unreadable.
    [bad] = parse_keys([{**obj, "spend": 1e300}])
    assert (bad.problem is not None, bad.owner) == (True, ("a", "svc"))

"""LiteLLM's key objects, reduced to what the status needs. Pure.

- `KeyRecord`: spend, budgets, expiry, blocked and deleted, as exact values.
- `parse_key(obj)`: one full object from `/key/list?return_full_object=true`,
  or `MalformedKeyError`.
- `parse_keys(objs)`: a whole list, where one malformed key becomes an
  `unreadable` record (with its token, alias and owner, where they can be
  read) instead of failing the others, so only its VirtualKey says so.

Whose key it is (`owner`) is `function.provenance.key_owner`: the VirtualKey
the key's metadata names, counted only for a key the master key made and
last changed (`created_by`, `updated_by`). A user who may call
`/key/generate` can write any metadata, but not those two fields.

Values are range-checked, since a proxy's answer can be anything: money
beyond $10^15, or a time that cannot be written in UTC, is malformed.

`/key/list` leaves deleted keys out; a key object saying `status: "deleted"`
or carrying `deleted_at` counts as deleted all the same. The soft budget is
in `litellm_budget_table.soft_budget` (the top-level `soft_budget` of
`/key/list` is the caller's, not the key's). Money is read as `Decimal`
through the float's shortest repr, so 0.0048 stays 0.0048.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from function import provenance


class MalformedKeyError(ValueError):
    """A key object whose fields do not have the expected types."""


# Far beyond any budget; also what `dollars()` can quantize exactly.
MAX_MONEY = Decimal(10) ** 15


@dataclass(frozen=True)
class KeyRecord:
    """One LiteLLM key as the poller sees it."""

    token: str | None
    alias: str | None
    # The defaults: what is known of a key whose object could not be read.
    spend: Decimal = Decimal(0)
    max_budget: Decimal | None = None
    soft_budget: Decimal | None = None
    expires: datetime | None = None
    budget_reset_at: datetime | None = None
    blocked: bool = False
    deleted: bool = False
    # Why LiteLLM's object for this key could not be read (None: it could).
    problem: str | None = None
    key_name: str | None = None
    # The VirtualKey (namespace, name) its provenance names, counted only for a
    # key the master key made and last changed (`provenance.key_owner`).
    owner: tuple[str, str] | None = None
    # Who made and who last changed the key (LiteLLM user IDs), as it says.
    created_by: str | None = None
    updated_by: str | None = None

    @classmethod
    def unreadable(
        cls,
        token: str | None,
        alias: str | None,
        problem: str,
        owner: tuple[str, str] | None = None,
    ) -> KeyRecord:
        """A key LiteLLM listed but whose object is malformed."""
        return cls(token=token, alias=alias, owner=owner, problem=problem)


def amount(value: Any, field: str, *, signed: bool = True) -> Decimal:
    """An exact amount from a proxy's answer, or MalformedKeyError naming `field`.

    Not `function.units.dollars`: the poller keeps LiteLLM's amount exact
    (compared with budgets, then rounded for people by `function.units.money`), up to
    $10^15 rather than $10^12, and says in its own words what is wrong with an
    amount, for the condition or the log. A key's spend may be negative
    (`signed`); a user's or team's may not.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        msg = f"{field} is not a number"
        raise MalformedKeyError(msg)
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):  # a string, or an int too long to convert
        msg = f"{field} is not a number"
        raise MalformedKeyError(msg) from None
    if signed and not (amount.is_finite() and abs(amount) <= MAX_MONEY):
        msg = f"{field} is not a finite amount below $10^15"
        raise MalformedKeyError(msg)
    if not signed and not (amount.is_finite() and 0 <= amount <= MAX_MONEY):
        msg = f"{field} is not a finite amount between $0 and $10^15"
        raise MalformedKeyError(msg)
    return amount


def _optional_money(value: Any, field: str) -> Decimal | None:
    return None if value is None else amount(value, field)


def parse_time(value: Any, field: str) -> datetime | None:
    """An ISO 8601 time from LiteLLM (`...Z` or `...+00:00`), in UTC.

    Not `function.units.parse_time`, which reads only the times Kubernetes
    writes: LiteLLM writes offsets and fractions of a second, and a time that
    is not one is this key's problem, named (MalformedKeyError), not None.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"{field} is not a time"
        raise MalformedKeyError(msg)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # 9999-12-31T23:59:59-05:00 is past year 9999 in UTC
        msg = f"{field} is not a time that can be written in UTC"
        raise MalformedKeyError(msg) from None


def _optional_str(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    msg = f"{field} is not a string"
    raise MalformedKeyError(msg)


def parse_key(obj: Any) -> KeyRecord:
    """A `KeyRecord` from one LiteLLM key object."""
    if not isinstance(obj, dict):
        msg = "a key entry is not an object"
        raise MalformedKeyError(msg)
    table = obj.get("litellm_budget_table")
    soft = table.get("soft_budget") if isinstance(table, dict) else None
    blocked = obj.get("blocked")
    if blocked is not None and not isinstance(blocked, bool):
        msg = "blocked is not a boolean"
        raise MalformedKeyError(msg)
    listed_spend = obj.get("spend")
    spend = Decimal(0) if listed_spend is None else amount(listed_spend, "spend")
    return KeyRecord(
        token=_optional_str(obj.get("token"), "token"),
        alias=_optional_str(obj.get("key_alias"), "key_alias"),
        spend=spend,
        max_budget=_optional_money(obj.get("max_budget"), "max_budget"),
        soft_budget=_optional_money(soft, "soft_budget"),
        expires=parse_time(obj.get("expires"), "expires"),
        budget_reset_at=parse_time(obj.get("budget_reset_at"), "budget_reset_at"),
        # LiteLLM answers `blocked: null` for keys never blocked.
        blocked=blocked is True,
        deleted=obj.get("status") == "deleted" or obj.get("deleted_at") is not None,
        key_name=_optional_str(obj.get("key_name"), "key_name"),
        owner=provenance.key_owner(obj),
        created_by=_text(obj.get("created_by")),
        updated_by=_text(obj.get("updated_by")),
    )


def _text(value: Any) -> str | None:
    """A string field that only ever decides a match: anything else counts as absent."""
    return value if isinstance(value, str) else None


def parse_keys(objs: list[Any]) -> list[KeyRecord]:
    """Every key of a list; a malformed one is `unreadable`."""
    records = []
    for obj in objs:
        try:
            records.append(parse_key(obj))
        except MalformedKeyError as e:
            token = obj.get("token") if isinstance(obj, dict) else None
            alias = obj.get("key_alias") if isinstance(obj, dict) else None
            records.append(
                KeyRecord.unreadable(
                    token if isinstance(token, str) else None,
                    alias if isinstance(alias, str) else None,
                    str(e),
                    # Whose key it is still counts: its VirtualKey says it is unreadable.
                    provenance.key_owner(obj),
                )
            )
    return records

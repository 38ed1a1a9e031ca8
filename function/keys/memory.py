"""What the function remembers about one key between runs, read once from its Request. Pure.

The function keeps no memory in the XR's status, which tenants may write: it
keeps it on the key Requests it composes, which only Crossplane and
provider-http write (docs/tenancy.md, threat model), as the annotations below and in
the payload. `KeyMemory.of(request)` parses all of it once into typed values;
whatever does not parse (a token that is not 64 hex digits, a reason that is
not ours, a trigger that is not a whole number) counts as not remembered.
`remember(...)` writes it back as annotations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from function.provider_http.answers import (
    TOKEN,
    annotations_of,
    created_at,
    mapping,
    payload_of,
)
from function.units import dollars, parse_time, rfc3339

NEXT_KEY = "auth.litellm.ai/next-key"  # the token of the key a rotation replaces this one with
ROTATION = "auth.litellm.ai/rotation"  # why: on the key being rotated, and on the key it made
TRIGGER = "auth.litellm.ai/rotation-trigger"  # the spec.rotation.trigger this key has handled
EXPOSED = "auth.litellm.ai/exposed"  # provider-http stored this key unmasked once
RETIRE_AT = "auth.litellm.ai/retire-at"  # a rotated-out key's Request is dropped then
REASONS = ("requested", "scheduled")  # why a rotation started
_MAX_TRIGGER_DIGITS = 16


@dataclass(frozen=True)
class KeyMemory:
    """One key's memory, as its observed Request holds it (all None: nothing remembered)."""

    next_token: str | None = None  # a rotation under way will replace this key with it
    reason: str | None = None  # why this key is being rotated, or why a rotation made it
    trigger: int | None = None  # the spec.rotation.trigger this key has handled
    retire_at: datetime | None = None  # when this rotated-out key's Request is dropped
    exposed: bool = False  # provider-http stored this key unmasked once
    born: datetime | None = None  # when the API server made the Request
    created_with: Decimal | None = None  # the spend this key was (to be) created with
    alias: str | None = None  # the alias its Request keeps it under
    max_budget: Decimal | None = None  # the budget its Request keeps it at

    @classmethod
    def of(cls, request: dict[str, Any] | None) -> KeyMemory:
        """Everything `request` remembers, parsed; an empty memory for no Request."""
        if request is None:
            return cls()
        notes = annotations_of(request)
        payload = payload_of(request)
        fields = mapping(payload.get("fields"))
        next_token = notes.get(NEXT_KEY)
        reason = notes.get(ROTATION)
        alias = fields.get("key_alias")
        return cls(
            next_token=next_token if next_token and TOKEN.fullmatch(next_token) else None,
            reason=reason if reason in REASONS else None,
            trigger=_whole(notes.get(TRIGGER)),
            retire_at=parse_time(notes.get(RETIRE_AT)),
            exposed=notes.get(EXPOSED) == "true",
            born=created_at(request),
            created_with=dollars(mapping(payload.get("createOnly")).get("spend")),
            alias=alias if isinstance(alias, str) else None,
            max_budget=dollars(fields.get("max_budget")),
        )


def remember(
    *,
    trigger: int | None = None,
    reason: str | None = None,
    next_token: str | None = None,
    retire_at: datetime | None = None,
    exposed: bool = False,
) -> dict[str, str]:
    """The annotations that keep a key's memory on its Request."""
    notes: dict[str, str] = {}
    if trigger is not None:
        notes[TRIGGER] = str(trigger)
    if next_token is not None:
        notes[NEXT_KEY] = next_token
    if reason is not None:
        notes[ROTATION] = reason
    if retire_at is not None:
        notes[RETIRE_AT] = rfc3339(retire_at)
    if exposed:
        notes[EXPOSED] = "true"
    return notes


def _whole(value: str | None) -> int | None:
    """A whole number written as digits, or None."""
    if value is None or not value.isdigit() or len(value) > _MAX_TRIGGER_DIGITS:
        return None
    return int(value)

"""The VirtualKey's spec, validated with pydantic. Pure.

- `VirtualKeySpec`: the `spec` of a VirtualKey (v2 XR, legacy XR or claim);
  `parse_spec(spec)` validates it, or raises InvalidInputError naming each
  bad field.
- `Rotation`: `spec.rotation`.
- `RESERVED_METADATA_KEYS`: what LiteLLM keeps in a key's metadata itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from function.tenancy.connection import ConnectionRef
from function.validation import (
    KEY_ALIAS_PATTERN,
    Count,
    Dollars,
    Duration,
    LocalRef,
    Metadata,
    NonEmpty,
    Parallel,
    SpecModel,
    StrictModel,
    memoized_by_json,
    refuse_provenance,
    refuse_soft_over_max,
    refuse_templating,
    validated,
)

# Keys LiteLLM keeps in a key's metadata for itself; a spec that set them would
# never match what LiteLLM answers, so the function would UPDATE on every poll.
RESERVED_METADATA_KEYS = (
    "tags",
    "model_rpm_limit",
    "model_tpm_limit",
    "guardrails",
    "prompts",
    "logging",
)


class Rotation(StrictModel):
    """When the key is replaced by a new one, and how long the old one keeps working."""

    # Rotate this long after the last rotation (or after rotation was first set).
    every: Duration | None = None
    # Bump to rotate now: any value other than the last one handled rotates once.
    trigger: Count | None = None
    # How long the old key keeps working after the Secret holds the new one.
    grace_period: Duration = Field(default="1h", alias="gracePeriod")
    # What the old key may still spend during the grace period (with maxBudget);
    # it is charged to the new key up front, so both together stay in budget.
    grace_period_budget: Dollars | None = Field(default=None, alias="gracePeriodBudget")


class VirtualKeySpec(SpecModel):
    """The user-facing part of a VirtualKey's spec."""

    key_alias: Annotated[str, StringConstraints(pattern=KEY_ALIAS_PATTERN)] = Field(
        alias="keyAlias"
    )
    models: list[NonEmpty] = Field(default_factory=list, max_length=200)
    max_budget: Dollars | None = Field(default=None, alias="maxBudget")
    soft_budget: Dollars | None = Field(default=None, alias="softBudget")
    budget_duration: Duration | None = Field(default=None, alias="budgetDuration")
    duration: Duration | None = None
    blocked: StrictBool | None = None
    tpm_limit: Count | None = Field(default=None, alias="tpmLimit")
    rpm_limit: Count | None = Field(default=None, alias="rpmLimit")
    max_parallel_requests: Parallel | None = Field(default=None, alias="maxParallelRequests")
    metadata: Metadata = Field(default_factory=dict, max_length=64)
    tags: list[NonEmpty] = Field(default_factory=list, max_length=64)
    team_id: NonEmpty | None = Field(default=None, alias="teamID")
    user_id: NonEmpty | None = Field(default=None, alias="userID")
    team_ref: LocalRef | None = Field(default=None, alias="teamRef")
    user_ref: LocalRef | None = Field(default=None, alias="userRef")
    connection_ref: ConnectionRef = Field(alias="connectionRef")
    rotation: Rotation | None = None

    @field_validator("key_alias")
    @classmethod
    def _no_dot_segment(cls, value: str) -> str:
        # LiteLLM refuses ".." path segments (raise_if_unsafe_secret_name).
        if ".." in value:
            msg = "must not contain '..'"
            raise ValueError(msg)
        return value

    @field_validator("metadata")
    @classmethod
    def _not_litellms(cls, value: dict[str, str]) -> dict[str, str]:
        refuse_provenance(value)
        reserved = sorted(set(value) & set(RESERVED_METADATA_KEYS))
        if reserved:
            msg = (
                f"must not set {', '.join(repr(k) for k in reserved)}: LiteLLM keeps these "
                "keys in a key's metadata for itself (use spec.tags for tags)"
            )
            raise ValueError(msg)
        return value

    @field_validator("models", "tags")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            msg = "must not repeat an entry"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> VirtualKeySpec:
        for ref, raw in (("teamRef", "teamID"), ("userRef", "userID")):
            if getattr(self, _SNAKE[ref]) is not None and getattr(self, _SNAKE[raw]) is not None:
                msg = f"spec.{ref} and spec.{raw} name the same thing; set one of them"
                raise ValueError(msg)
        refuse_soft_over_max(self.soft_budget, self.max_budget)
        refuse_templating(self)
        return self


_SNAKE = {"teamRef": "team_ref", "teamID": "team_id", "userRef": "user_ref", "userID": "user_id"}


@memoized_by_json(max_bytes=16 * 1024 * 1024)
def parse_spec(spec: Any) -> VirtualKeySpec:
    """Validate a VirtualKey spec, or raise InvalidInputError naming each bad field."""
    return validated(
        VirtualKeySpec,
        spec,
        "spec",
        not_object="spec: is missing or not an object; a VirtualKey needs spec.keyAlias and "
        "spec.connectionRef",
    )

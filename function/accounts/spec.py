"""The specs of a User and a Team, validated with pydantic. Pure.

- `AccountSpec`: what both share: models, limits, metadata, connection.
- `UserSpec` / `parse_user_spec(spec)`; `TeamSpec`, `Member` /
  `parse_team_spec(spec)`: each raises InvalidInputError naming each bad field.
- `LocalID`: a user's or team's ID within its namespace.

The poller validates with these too: it imports the specs, never the composers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from function.tenancy.connection import ConnectionRef
from function.tenancy.policy import UserRole
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
    refuse_provenance,
    refuse_repeats,
    refuse_soft_over_max,
    refuse_templating,
    validated,
)

EMAIL_PATTERN = r"^[^@\s{}\"\\]{1,64}@[^@\s{}\"\\]{1,190}$"
# Letters, digits and . _ @ -: safe in a URL query and in any jq string.
LOCAL_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.@-]{0,127}$"
LocalID = Annotated[str, StringConstraints(pattern=LOCAL_ID_PATTERN)]


class AccountSpec(SpecModel):
    """What a User's and a Team's spec share: models, limits, metadata, connection."""

    models: list[NonEmpty] = Field(default_factory=list, max_length=200)
    max_budget: Dollars | None = Field(default=None, alias="maxBudget")
    budget_duration: Duration | None = Field(default=None, alias="budgetDuration")
    tpm_limit: Count | None = Field(default=None, alias="tpmLimit")
    rpm_limit: Count | None = Field(default=None, alias="rpmLimit")
    metadata: Metadata = Field(default_factory=dict, max_length=64)
    blocked: StrictBool | None = None
    connection_ref: ConnectionRef = Field(alias="connectionRef")

    @field_validator("metadata")
    @classmethod
    def _no_provenance(cls, value: dict[str, str]) -> dict[str, str]:
        refuse_provenance(value)
        return value

    @model_validator(mode="after")
    def _checked(self) -> AccountSpec:
        refuse_repeats("spec.models", list(self.models))
        refuse_templating(self)
        return self


class UserSpec(AccountSpec):
    """The user-facing part of a User's spec (Crossplane's own fields are ignored)."""

    user_email: Annotated[str, StringConstraints(pattern=EMAIL_PATTERN)] = Field(alias="userEmail")
    user_id: LocalID | None = Field(default=None, alias="userID")
    user_alias: NonEmpty | None = Field(default=None, alias="userAlias")
    # The default cannot call /key/generate (function.tenancy.policy.DEFAULT_USER_ROLES).
    user_role: UserRole = Field(default="internal_user_viewer", alias="userRole")
    soft_budget: Dollars | None = Field(default=None, alias="softBudget")
    max_parallel_requests: Parallel | None = Field(default=None, alias="maxParallelRequests")
    teams: list[LocalRef] = Field(default_factory=list, max_length=64)
    auto_create_key: StrictBool = Field(default=False, alias="autoCreateKey")
    key_alias: Annotated[str, StringConstraints(pattern=KEY_ALIAS_PATTERN)] | None = Field(
        default=None, alias="keyAlias"
    )
    duration: Duration | None = None

    @model_validator(mode="after")
    def _consistent(self) -> UserSpec:
        if self.auto_create_key and self.key_alias is None:
            msg = (
                "spec.keyAlias: is required with autoCreateKey: true, as the alias of the "
                'user\'s key, e.g. "alice-key"'
            )
            raise ValueError(msg)
        refuse_repeats("spec.teams", [t.name for t in self.teams])
        refuse_soft_over_max(self.soft_budget, self.max_budget)
        return self


def parse_user_spec(spec: Any) -> UserSpec:
    """Validate a User's spec, or raise InvalidInputError naming each bad field."""
    return validated(
        UserSpec,
        spec,
        "spec",
        not_object="spec: is missing or not an object; a User needs spec.userEmail and "
        "spec.connectionRef",
    )


class Member(BaseModel):
    """One member: a User of the namespace, its role in the team and its budget there."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    user_ref: LocalRef = Field(alias="userRef")
    role: Literal["admin", "user"] = "user"
    max_budget_in_team: Dollars | None = Field(default=None, alias="maxBudgetInTeam")


class TeamSpec(AccountSpec):
    """The user-facing part of a Team's spec (Crossplane's own fields are ignored)."""

    team_alias: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        alias="teamAlias"
    )
    team_id: LocalID | None = Field(default=None, alias="teamID")
    members: list[Member] = Field(default_factory=list, max_length=256)

    @model_validator(mode="after")
    def _consistent(self) -> TeamSpec:
        refuse_repeats("spec.members", [m.user_ref.name for m in self.members])
        return self


def parse_team_spec(spec: Any) -> TeamSpec:
    """Validate a Team's spec, or raise InvalidInputError naming each bad field."""
    return validated(
        TeamSpec,
        spec,
        "spec",
        not_object="spec: is missing or not an object; a Team needs spec.teamAlias and "
        "spec.connectionRef",
    )

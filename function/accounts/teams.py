"""A Team: one LiteLLM team and its members, reconciled as a complete set. Pure.

`compose_team(given)` -> `Composed`:

- `team` -> the provider-http Request of the team (`/team/new`, `info`,
  `update`, `delete`).
- `member-<hash>` -> one Request per member (`function.accounts.members`).
- `prune-<hash>` -> one Request per member the team has on the proxy but the
  spec does not want (`function.accounts.pruning`).

`users` are the namespace's User objects, which Crossplane fetches for the
function. The team's LiteLLM ID is `<namespace>.<teamID or metadata.name>`
(`function.accounts.identity`). LiteLLM makes the master key's user
(`default_user_id`) an admin of every team it creates; that member is the
proxy's own and is left alone.
"""

from __future__ import annotations

from typing import Any

from function.accounts.identity import KINDS, litellm_id
from function.accounts.members import compose_members, wanted_ids
from function.accounts.pruning import Pruning, prune
from function.accounts.requests import Account, account_fields
from function.accounts.spec import TeamSpec, parse_team_spec
from function.composed import MANAGED_BY, Composed, Desired, Given, owner_of
from function.input import parse_input
from function.provider_http.readiness import KeyState, state_of
from function.tenancy.decide import connect
from function.tenancy.policy import Tenant

CONDITION_TYPE = "TeamReady"
TEAM_RESOURCE = "team"


def team_fields(spec: TeamSpec) -> dict[str, Any]:
    """The fields LiteLLM keeps on the team."""
    return account_fields(
        spec,
        ("team_alias", "models", "metadata"),
        optional=("max_budget", "budget_duration", "tpm_limit", "rpm_limit", "blocked"),
    )


def compose_team(given: Given) -> Composed:
    """The desired state for one Team (raises InvalidInputError).

    `given.users` are the namespace's Users and `given.user_requests` their
    Requests, whose stored answers say which users exist on the proxy as theirs.
    """
    observed, users = given.observed, given.users
    settings = parse_input(given.raw_input)
    owner = owner_of(given.xr)
    spec = parse_team_spec(given.xr.get("spec"))
    tenant = Tenant(owner.namespace, given.namespace_labels)
    grant = connect(spec.connection_ref, tenant, given.policies)
    team_id = litellm_id(owner.namespace, spec.team_id or owner.virtualkey)
    labels = {**MANAGED_BY, "auth.litellm.ai/team": owner.virtualkey[:63].rstrip("-.")}
    place = settings.place(owner.namespace, grant.connection, labels)
    account = Account(KINDS["Team"], owner, team_id, place)
    subject = account.subject
    state = state_of(observed.get(TEAM_RESOURCE), grant.connection, subject)
    members = compose_members(
        spec,
        owner,
        team_id=team_id,
        team_ready=state.ready,
        observed=observed,
        users=users,
        user_requests=given.user_requests,
        place=place,
    )
    pruning = Pruning()
    if state.ready:
        wanted = wanted_ids(spec, owner, users)
        pruning = prune(
            observed,
            TEAM_RESOURCE,
            wanted=wanted,
            team_id=team_id,
            base_name=owner.base_name,
            place=place,
        )
    team = account.request(
        team_fields(spec), observed.get(TEAM_RESOURCE), annotations=pruning.annotations
    )
    problem = [f"{state.reason}: {state.message}"] if state.is_problem else []
    resources = {
        TEAM_RESOURCE: Desired(team, ready=state.ready),
        **members.resources,
        **pruning.resources,
    }
    if state.ready and members.pending:
        state = _members_pending(subject, members.pending)
    return Composed(
        resources=resources,
        status={"teamID": team_id} if state.ready or state.reason == "MembersPending" else {},
        state=state,
        warnings=[*problem, *members.problems, *pruning.warnings(team_id)],
        condition=CONDITION_TYPE,
    )


def _members_pending(subject: str, pending: list[str]) -> KeyState:
    return KeyState(
        ready=False,
        reason="MembersPending",
        message=f"{subject} is in place; members not yet as the spec says: "
        f"{', '.join(pending)}. A member joins once its User is ready; the Team's events "
        "say what holds the others.",
    )

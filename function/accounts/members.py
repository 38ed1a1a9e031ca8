"""A Team's members: one Request each, from the spec and the Users who join. Pure.

- `wanted_members(spec, team, users)`: `spec.members`, then the Users of the
  namespace whose `spec.teams` names the Team (role `user`; `spec.members`
  wins).
- `compose_members(...)` -> `Members`: `member-<hash>` -> one Request per
  member (`/team/member_add`, the team's `info`, `member_update`,
  `member_delete`). A member no longer wanted is a Request no longer
  desired: Crossplane deletes it, and its REMOVE takes the user out of the
  team. Members are composed once the team and the User exist on the proxy:
  LiteLLM's `member_add` would otherwise create a user that nothing manages.
- `stored_members(request)`: the members in the team Request's last info.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from function.accounts.identity import litellm_id, resolve
from function.accounts.requests import (
    MEMBER_IS_GONE,
    MEMBER_MATCHES,
    Calls,
    account_request,
    dollars,
)
from function.accounts.spec import Member, TeamSpec
from function.composed import Desired, Owner
from function.provider_http.answers import answer_body, is_request, mapping
from function.provider_http.readiness import state_of
from function.provider_http.request import Place, as_observed
from function.validation import LocalRef

MEMBER_PREFIX = "member-"
_MAX_BODY = 256 * 1024
_MAX_MEMBERS = 4096
_ROLES = ("admin", "user")


def wanted_members(spec: TeamSpec, team_name: str, users: list[dict[str, Any]]) -> list[Member]:
    """spec.members, then Users whose spec.teams names this Team (sorted by name)."""
    named = {m.user_ref.name for m in spec.members}
    joining = []
    for user in users:
        meta = user.get("metadata") if isinstance(user.get("metadata"), dict) else {}
        name = meta.get("name") if isinstance(meta, dict) else None
        teams = (user.get("spec") or {}).get("teams") if isinstance(user.get("spec"), dict) else []
        if not isinstance(name, str) or name in named or not isinstance(teams, list):
            continue
        if any(isinstance(t, dict) and t.get("name") == team_name for t in teams):
            joining.append(Member(user_ref=LocalRef(name=name)))
    return [*spec.members, *sorted(joining, key=lambda m: m.user_ref.name)]


def wanted_ids(spec: TeamSpec, owner: Owner, users: list[dict[str, Any]]) -> set[str]:
    """The LiteLLM IDs of every member the spec wants, resolved or not."""
    wanted = set()
    for member in wanted_members(spec, owner.virtualkey, users):
        name = member.user_ref.name
        local = name
        for user in users:
            meta = user.get("metadata") if isinstance(user.get("metadata"), dict) else {}
            user_spec = user.get("spec") if isinstance(user.get("spec"), dict) else {}
            if isinstance(meta, dict) and meta.get("name") == name and isinstance(user_spec, dict):
                local = str(user_spec.get("userID") or name)
        wanted.add(litellm_id(owner.namespace, local))
    return wanted


@dataclass(frozen=True)
class Members:
    """The members' Requests, and which members are not yet as the spec says."""

    resources: dict[str, Desired]
    waiting: list[str]  # members whose User, or the team, is not on the proxy yet
    problems: list[str]  # "<member>: <why>", for the Team's events

    @property
    def pending(self) -> list[str]:
        """Every member not yet in place, by name."""
        return self.waiting + [p.split(":")[0] for p in self.problems]


def compose_members(  # noqa: PLR0913 - each argument is one independent fact.
    spec: TeamSpec,
    owner: Owner,
    *,
    team_id: str,
    team_ready: bool,
    observed: dict[str, dict[str, Any]],
    users: list[dict[str, Any]],
    user_requests: list[dict[str, Any]],
    place: Place,
) -> Members:
    """One Request per wanted member whose User and team are on the proxy."""
    resources: dict[str, Desired] = {}
    waiting: list[str] = []
    problems: list[str] = []
    for member in wanted_members(spec, owner.virtualkey, users):
        name = member.user_ref.name
        user = resolve(users, user_requests, kind="User", name=name, namespace=owner.namespace)
        resource = f"{MEMBER_PREFIX}{digest(name)}"
        if user.litellm_id is None or not team_ready:
            # A member whose User still exists stays while its state is unknown;
            # one whose User is gone or going is dropped, and so removed.
            if resource in observed and user.exists and is_request(observed[resource]):
                resources[resource] = Desired(as_observed(observed[resource]), ready=False)
            waiting.append(name)
            continue
        body = _member_request(member, team_id, user.litellm_id, owner.base_name, place)
        state = state_of(observed.get(resource), place.connection, f"member {name}")
        drift = _drift(observed.get(resource), user.litellm_id, member)
        resources[resource] = Desired(body, ready=state.ready and drift is None)
        if state.is_problem:
            problems.append(f"{name}: {state.message}")
        elif drift is not None:
            problems.append(f"{name}: {drift}")
    return Members(resources, waiting, problems)


def stored_members(request: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The members in the Request's last stored answer, if it is a 200 team info."""
    info = mapping(mapping(answer_body(request, _MAX_BODY)).get("team_info"))
    members = info.get("members_with_roles")
    if not isinstance(members, list):
        return []
    return [m for m in members[:_MAX_MEMBERS] if isinstance(m, dict)]


def digest(text: str) -> str:
    """A short, stable stand-in for a name or ID in a resource's name."""
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _drift(request: dict[str, Any] | None, user_id: str, member: Member) -> str | None:
    """Why the member is not as wanted, read from the team's last stored info, or None.

    LiteLLM refuses some updates (an admin role without Enterprise); provider-http
    then retries every poll while its last stored answer, the team's info, says
    200. Only the role's value is shown, and only if it is one of LiteLLM's two.
    """
    found = [m for m in stored_members(request) if m.get("user_id") == user_id]
    if not found:
        return None  # not added yet (or no info stored): the Request's own state says so
    role = found[0].get("role")
    if role != member.role:
        shown = repr(role) if role in _ROLES else "another role"
        return (
            f"LiteLLM keeps the member's role at {shown}, not {member.role!r}, and refuses "
            "to change it (the admin role needs LiteLLM Enterprise); use role user, or "
            "enable Enterprise on the proxy"
        )
    return None


def _member_request(
    member: Member, team_id: str, user_id: str, base_name: str, place: Place
) -> dict[str, Any]:
    budget = dollars(member.max_budget_in_team)
    extra = {} if budget is None else {"max_budget_in_team": budget}
    return account_request(
        name=f"{base_name}-member-{digest(member.user_ref.name)[:8]}",
        ids={"teamId": team_id, "userId": user_id, "role": member.role, "maxBudgetInTeam": budget},
        fields={},
        calls=Calls(
            create="/team/member_add",
            info=f"/team/info?team_id={team_id}",
            update="/team/member_update",
            delete="/team/member_delete",
            create_body={
                "team_id": team_id,
                "member": [{"user_id": user_id, "role": member.role}],
                **extra,
            },
            update_body={"team_id": team_id, "user_id": user_id, "role": member.role, **extra},
            delete_body={"team_id": team_id, "user_id": user_id},
        ),
        is_removed=MEMBER_IS_GONE,
        expected=MEMBER_MATCHES,
        place=place,
    )

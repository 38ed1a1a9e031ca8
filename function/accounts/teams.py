"""A Team: one LiteLLM team and its members, reconciled as a complete set. Pure.

`compose_team(xr, observed, raw_input, policies, labels, users)` -> `Composed`:

- `team` -> the provider-http Request of the team (`/team/new`, `info`,
  `update`, `delete`).
- `member-<hash>` -> one Request per member (`/team/member_add`, the team's
  `info`, `member_update`, `member_delete`). A member is a User of the
  namespace named in `spec.members`, or a User whose `spec.teams` names this
  Team (role `user`; `spec.members` wins). A member no longer wanted is a
  Request no longer desired: Crossplane deletes it, and its REMOVE takes the
  user out of the team. Members are composed once the team and the User
  exist on the proxy: LiteLLM's `member_add` would otherwise create a user
  that nothing manages.

`users` are the namespace's User objects, which Crossplane fetches for the
function. The team's LiteLLM ID is `<namespace>.<teamID or metadata.name>`
(`function.identity`). LiteLLM makes the master key's user
(`default_user_id`) an admin of every team it creates; that member is the
proxy's own and is left alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from function import provenance
from function.accounts.identity import litellm_id, request_name, resolve
from function.accounts.requests import (
    MEMBER_IS_GONE,
    MEMBER_MATCHES,
    Calls,
    account_request,
    dollars,
    fields_match,
    gone_or_not_ours,
    ownership,
)
from function.accounts.spec import Member, TeamSpec, parse_team_spec
from function.composed import MANAGED_BY, Composed, Desired, Owner, owner_of
from function.input import parse_input
from function.provenance import MASTER_KEY_USER
from function.provider_http.answers import (
    annotations_of,
    answer_body,
    is_request,
    mapping,
    payload_of,
    provider_has_it,
)
from function.provider_http.readiness import KeyState, state_of
from function.provider_http.request import ONLY_REMOVE, Place, http_request, removal_mappings
from function.tenancy.decide import connect
from function.tenancy.policy import Policies, Tenant
from function.validation import LocalRef

CONDITION_TYPE = "TeamReady"
TEAM_RESOURCE = "team"
MEMBER_PREFIX = "member-"


def team_fields(spec: TeamSpec, stamp: dict[str, str]) -> dict[str, Any]:
    """The fields LiteLLM keeps on the team, by their LiteLLM names.

    `stamp` (function.provenance) joins the metadata, so the team always says
    which Team made it.
    """
    fields: dict[str, Any] = {
        "team_alias": spec.team_alias,
        "models": list(spec.models),
        "metadata": {**spec.metadata, **stamp},
    }
    optional: dict[str, Any] = {
        "max_budget": dollars(spec.max_budget),
        "budget_duration": spec.budget_duration,
        "tpm_limit": spec.tpm_limit,
        "rpm_limit": spec.rpm_limit,
        "blocked": spec.blocked,
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    return fields


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


def compose_team(  # noqa: PLR0913 - each argument is one independent fact.
    xr: dict[str, Any],
    observed: dict[str, dict[str, Any]],
    raw_input: Any,
    policies: Policies,
    namespace_labels: dict[str, str] | None,
    *,
    users: list[dict[str, Any]],
    user_requests: list[dict[str, Any]] | None = None,
) -> Composed:
    """The desired state for one Team (raises InvalidInputError).

    `users` are the namespace's Users and `user_requests` their Requests,
    whose stored answers say which users exist on the proxy as theirs.
    """
    settings = parse_input(raw_input)
    owner = owner_of(xr)
    spec = parse_team_spec(xr.get("spec"))
    grant = connect(spec.connection_ref, Tenant(owner.namespace, namespace_labels), policies)
    team_id = litellm_id(owner.namespace, spec.team_id or owner.virtualkey)
    labels = {**MANAGED_BY, "auth.litellm.ai/team": owner.virtualkey[:63].rstrip("-.")}
    place = Place(
        owner.namespace,
        grant.connection,
        settings.provider_config_ref.model_dump(),
        settings.request_timeout,
        labels,
    )
    fields = team_fields(
        spec, provenance.account_stamp(provenance.TEAM, owner.namespace, owner.virtualkey)
    )
    observed_team = observed.get(TEAM_RESOURCE)
    subject = f"Team {owner.namespace}/{owner.virtualkey} ({team_id})"
    state = state_of(observed_team, grant.connection, subject)
    warnings = [f"{state.reason}: {state.message}"] if state.is_problem else []
    waiting: list[str] = []
    member_problems: list[str] = []
    resources: dict[str, Desired] = {}
    for member in wanted_members(spec, owner.virtualkey, users):
        user = resolve(
            users,
            user_requests or [],
            kind="User",
            name=member.user_ref.name,
            namespace=owner.namespace,
        )
        resource = f"{MEMBER_PREFIX}{_digest(member.user_ref.name)}"
        if user.litellm_id is None or not state.ready:
            # A member whose User still exists stays while its state is unknown;
            # one whose User is gone or going is dropped, and so removed.
            if resource in observed and user.exists and is_request(observed[resource]):
                resources[resource] = Desired(_as_observed(observed[resource]), ready=False)
            waiting.append(member.user_ref.name)
            continue
        body = _member_request(member, team_id, user.litellm_id, owner.base_name, place)
        member_state = state_of(
            observed.get(resource), grant.connection, f"member {member.user_ref.name}"
        )
        drift = _drift(observed.get(resource), user.litellm_id, member)
        resources[resource] = Desired(body, ready=member_state.ready and drift is None)
        if member_state.is_problem:
            member_problems.append(f"{member.user_ref.name}: {member_state.message}")
        elif drift is not None:
            member_problems.append(f"{member.user_ref.name}: {drift}")
    warnings.extend(member_problems)
    pruning = _Pruning({}, [], 0)
    if state.ready:
        pruning = _prunes(
            observed,
            wanted=_wanted_ids(spec, owner, users),
            remembered=_remembered_pruned(observed_team),
            team_id=team_id,
            base_name=owner.base_name,
            place=place,
        )
        resources.update(pruning.resources)
        warnings.extend(pruning.warnings(team_id))
    team = account_request(
        # Stable across incarnations, on purpose (see users.py): a Team made again
        # waits for its old Request's REMOVE instead of being deleted by it.
        name=request_name("Team", owner.virtualkey),
        ids={
            "teamId": team_id,
            **ownership(
                provenance.TEAM, owner.namespace, owner.virtualkey, observed_team, "team_info"
            ),
        },
        fields=fields,
        calls=Calls(
            create="/team/new",
            info=f"/team/info?team_id={team_id}",
            update="/team/update",
            delete="/team/delete",
            create_body={**fields, "team_id": team_id},
            update_body={**fields, "team_id": team_id},
            delete_body={"team_ids": [team_id]},
        ),
        is_removed=gone_or_not_ours("team_info"),
        expected=fields_match("team_info"),
        place=place,
        annotations={PRUNED: ",".join(pruning.pruned)} if pruning.pruned else None,
    )
    resources = {TEAM_RESOURCE: Desired(team, ready=state.ready), **resources}
    if state.ready and (waiting or member_problems):
        state = KeyState(
            ready=False,
            reason="MembersPending",
            message=f"{subject} is in place; members not yet as the spec says: "
            f"{', '.join(waiting + [p.split(':')[0] for p in member_problems])}. A member "
            "joins once its User is ready; the Team's events say what holds the others.",
        )
    status: dict[str, Any] = {}
    if state.ready or state.reason == "MembersPending":
        status["teamID"] = team_id
    return Composed(
        resources=resources,
        status=status,
        state=state,
        warnings=warnings,
        condition=CONDITION_TYPE,
    )


PRUNE_PREFIX = "prune-"
# Members handed over for removal, remembered on the team's Request (its stored
# info lags by up to one poll); only the function writes that annotation.
PRUNED = "auth.litellm.ai/pruned-members"
_MAX_PRUNED = 64
# Prunes composed in one run; a team with thousands of strangers sheds them a
# few at a time, so no run, and no response, grows with what the proxy lists.
MAX_PRUNES = 8
_MAX_MEMBERS = 4096
# What a user ID read from a proxy's answer must look like before it goes into a
# Request: no braces (provider-http would resolve a placeholder) and no spaces.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._@:-]{1,256}$")


def _wanted_ids(spec: TeamSpec, owner: Owner, users: list[dict[str, Any]]) -> set[str]:
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
class _Pruning:
    resources: dict[str, Desired]
    pruned: list[str]  # handed to Crossplane to delete, still listed by the stored info
    unwanted: int  # how many members the spec does not want, this run's or not

    def warnings(self, team_id: str) -> list[str]:
        if not self.unwanted:
            return []
        message = (
            f"{self.unwanted} member(s) of LiteLLM team {team_id} are not in the Team's "
            "spec (added on the proxy directly); membership is a complete set, so they are "
            f"being removed, {MAX_PRUNES} at a time. Add them as Users of this namespace to "
            "keep them."
        )
        return [message]


def _remembered_pruned(team: dict[str, Any] | None) -> set[str]:
    listed = annotations_of(team).get(PRUNED, "")
    return {u for u in listed.split(",") if _SAFE_ID.fullmatch(u)}


def _prunes(  # noqa: PLR0913 - each argument is one independent fact.
    observed: dict[str, dict[str, Any]],
    *,
    wanted: set[str],
    remembered: set[str],
    team_id: str,
    base_name: str,
    place: Place,
) -> _Pruning:
    """Requests that remove members the team has on the proxy but the spec does not want.

    Like a stray key's reaper: composed while not observed, dropped once it
    exists, so that Crossplane deletes it and its REMOVE runs member_delete.
    The team's stored info lags by up to one poll, so a member whose removal
    is under way (its member Request is still observed, or its prune was
    handed over: `remembered`, kept on the team's Request) is not pruned again, which
    would only make Crossplane create and delete the same Request in a loop.
    """
    found = {m.get("user_id") for m in _stored_members(observed.get(TEAM_RESOURCE))}
    leaving = {
        payload_of(r).get("userId")
        for n, r in observed.items()
        if n.startswith(MEMBER_PREFIX) and is_request(r)
    }
    unwanted = sorted(
        u
        for u in found
        if isinstance(u, str)
        and _SAFE_ID.fullmatch(u)
        and u not in wanted
        and u not in leaving
        and u != MASTER_KEY_USER
    )
    pruning: dict[str, Desired] = {}
    pruned = sorted(remembered & set(unwanted))
    for user_id in unwanted:
        if len(pruning) >= MAX_PRUNES:
            break
        resource = f"{PRUNE_PREFIX}{_digest(user_id)}"
        if provider_has_it(observed.get(resource)):
            pruned.append(user_id)  # provider-http holds it: deleting it runs its REMOVE
            continue
        if user_id in remembered:
            continue
        body = http_request(
            name=f"{base_name}-prune-{_digest(user_id)[:8]}",
            place=place,
            payload={
                "userId": user_id,
                "info": f"/team/info?team_id={team_id}",
                "delete": {"team_id": team_id, "user_id": user_id},
            },
            mappings=removal_mappings(
                "(.payload.baseUrl + .payload.body.info)",
                '(.payload.baseUrl + "/team/member_delete")',
                "(.payload.body.delete)",
            ),
            is_removed=MEMBER_IS_GONE,
            expected="true",
            management_policies=ONLY_REMOVE,
        )
        pruning[resource] = Desired(body, ready=True)
    return _Pruning(pruning, sorted(set(pruned))[-_MAX_PRUNED:], len(unwanted))


_MAX_BODY = 256 * 1024
_ROLES = ("admin", "user")


def _stored_members(request: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The members in the Request's last stored answer, if it is a 200 team info."""
    info = mapping(mapping(answer_body(request, _MAX_BODY)).get("team_info"))
    members = info.get("members_with_roles")
    if not isinstance(members, list):
        return []
    return [m for m in members[:_MAX_MEMBERS] if isinstance(m, dict)]


def _drift(request: dict[str, Any] | None, user_id: str, member: Member) -> str | None:
    """Why the member is not as wanted, read from the team's last stored info, or None.

    LiteLLM refuses some updates (an admin role without Enterprise); provider-http
    then retries every poll while its last stored answer, the team's info, says
    200. Only the role's value is shown, and only if it is one of LiteLLM's two.
    """
    found = [m for m in _stored_members(request) if m.get("user_id") == user_id]
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


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _as_observed(request: dict[str, Any]) -> dict[str, Any]:
    meta = request.get("metadata") or {}
    return {
        "apiVersion": request.get("apiVersion"),
        "kind": request.get("kind"),
        "metadata": {k: meta[k] for k in ("name", "namespace", "labels") if k in meta},
        "spec": request.get("spec") or {},
    }


def _member_request(
    member: Member, team_id: str, user_id: str, base_name: str, place: Place
) -> dict[str, Any]:
    budget = dollars(member.max_budget_in_team)
    extra = {} if budget is None else {"max_budget_in_team": budget}
    return account_request(
        name=f"{base_name}-member-{_digest(member.user_ref.name)[:8]}",
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

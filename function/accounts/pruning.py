"""Members a team has on the proxy but its Team does not want: removed, a few a run. Pure.

Membership is a complete set. `prune(...)` -> `Pruning`: `prune-<hash>` ->
one Request per unwanted member, `[Observe, Delete]` only. Like a stray
key's reaper it is composed while not observed and dropped once it exists,
so that Crossplane deletes it and its REMOVE runs `member_delete`.

The team's stored info lags by up to one poll, so a member whose removal is
under way (its member Request is still observed, or its prune was handed
over) is not pruned again, which would only make Crossplane create and
delete the same Request in a loop. What was handed over is remembered on the
team's Request (`PRUNED`); only the function writes that annotation.
LiteLLM's own member, the master key's user, is left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from function.accounts.members import MEMBER_PREFIX, digest, stored_members
from function.accounts.requests import MEMBER_IS_GONE
from function.composed import Desired
from function.provenance import MASTER_KEY_USER
from function.provider_http.answers import annotations_of, is_request, payload_of, provider_has_it
from function.provider_http.request import ONLY_REMOVE, Place, http_request, removal_mappings

PRUNE_PREFIX = "prune-"
PRUNED = "auth.litellm.ai/pruned-members"
_MAX_PRUNED = 64
# Prunes composed in one run; a team with thousands of strangers sheds them a
# few at a time, so no run, and no response, grows with what the proxy lists.
MAX_PRUNES = 8
# What a user ID read from a proxy's answer must look like before it goes into a
# Request: no braces (provider-http would resolve a placeholder) and no spaces.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._@:-]{1,256}$")


@dataclass(frozen=True)
class Pruning:
    """This run's prune Requests, and what to remember and to say about them."""

    resources: dict[str, Desired] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)  # handed over, still in the stored info
    unwanted: int = 0  # how many members the spec does not want, this run's or not

    @property
    def annotations(self) -> dict[str, str] | None:
        """What the team's Request remembers: the members handed over for removal."""
        return {PRUNED: ",".join(self.pruned)} if self.pruned else None

    def warnings(self, team_id: str) -> list[str]:
        """The Team's event while members are being removed."""
        if not self.unwanted:
            return []
        message = (
            f"{self.unwanted} member(s) of LiteLLM team {team_id} are not in the Team's "
            "spec (added on the proxy directly); membership is a complete set, so they are "
            f"being removed, {MAX_PRUNES} at a time. Add them as Users of this namespace to "
            "keep them."
        )
        return [message]


def prune(  # noqa: PLR0913 - each argument is one independent fact.
    observed: dict[str, dict[str, Any]],
    team: str,
    *,
    wanted: set[str],
    team_id: str,
    base_name: str,
    place: Place,
) -> Pruning:
    """Requests that remove the members the team's Request `team` shows but `wanted` lacks."""
    remembered = _remembered(observed.get(team))
    unwanted = _unwanted(observed, team, wanted)
    resources: dict[str, Desired] = {}
    pruned = sorted(remembered & set(unwanted))
    for user_id in unwanted:
        if len(resources) >= MAX_PRUNES:
            break
        resource = f"{PRUNE_PREFIX}{digest(user_id)}"
        if provider_has_it(observed.get(resource)):
            pruned.append(user_id)  # provider-http holds it: deleting it runs its REMOVE
            continue
        if user_id in remembered:
            continue
        request = _prune_request(user_id, team_id, base_name, place)
        resources[resource] = Desired(request, ready=True)
    return Pruning(resources, sorted(set(pruned))[-_MAX_PRUNED:], len(unwanted))


def _remembered(team: dict[str, Any] | None) -> set[str]:
    listed = annotations_of(team).get(PRUNED, "")
    return {u for u in listed.split(",") if _SAFE_ID.fullmatch(u)}


def _unwanted(observed: dict[str, dict[str, Any]], team: str, wanted: set[str]) -> list[str]:
    """Members the stored info lists that nothing wants and nothing is removing yet."""
    found = {m.get("user_id") for m in stored_members(observed.get(team))}
    leaving = {
        payload_of(r).get("userId")
        for n, r in observed.items()
        if n.startswith(MEMBER_PREFIX) and is_request(r)
    }
    return sorted(
        u
        for u in found
        if isinstance(u, str)
        and _SAFE_ID.fullmatch(u)
        and u not in wanted
        and u not in leaving
        and u != MASTER_KEY_USER
    )


def _prune_request(user_id: str, team_id: str, base_name: str, place: Place) -> dict[str, Any]:
    return http_request(
        name=f"{base_name}-prune-{digest(user_id)[:8]}",
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

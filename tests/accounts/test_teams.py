"""A Team: one LiteLLM team and its members, reconciled as a complete set.

Named cases over the function's real gRPC server (`function.accounts.teams`):
what a Team composes, members joining and leaving, and members added on the
proxy directly. The same objects run on the real control plane against the
real proxy in tests/cluster/test_accounts_cluster.py.
"""

from __future__ import annotations

import copy
import json

import pytest
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from tests.accounts.objects import (
    TEAM_IN_PLACE,
    Case,
    answered,
    condition,
    desired,
    fatal,
    on_proxy,
    payload,
    run,
    status,
    team,
    user,
)
from tests.grpc_harness import FunctionServer

# --- Teams --------------------------------------------------------------------------------


def test_a_team_is_created_with_its_id_in_the_namespace(function_server: FunctionServer) -> None:
    rsp = run(function_server, Case(team()))
    body = payload(rsp, "team")
    assert body["create"] == {
        "team_id": "team-a.research",
        "team_alias": "team-a-research",
        "models": ["gpt-4o"],
        "max_budget": 20.0,
        "budget_duration": "30d",
        # Provenance: a team with this ID that does not say so is never changed or deleted.
        "metadata": {"auth.litellm.ai/namespace": "team-a", "auth.litellm.ai/team": "research"},
    }
    assert body["owner"] == {
        "namespace": "team-a",
        "key": "auth.litellm.ai/team",
        "name": "research",
    }
    assert body["delete"] == {"team_ids": ["team-a.research"]}
    assert condition(rsp, "TeamReady").reason == "Creating"
    assert "teamID" not in status(rsp)


def test_members_join_once_the_team_and_user_exist(function_server: FunctionServer) -> None:
    members = [{"userRef": {"name": "bob"}, "role": "user", "maxBudgetInTeam": "2"}]
    bob = user("bob", teams=None)
    alice_not_yet = user(teams=[{"name": "research"}], status={"userID": "team-a.alice"})
    case = Case(
        team(members=members),
        {"team": TEAM_IN_PLACE},
        users=[bob, alice_not_yet],
        requests=[on_proxy(bob), on_proxy(alice_not_yet, 500)],
    )
    rsp = run(function_server, case)
    names = sorted(n for n in rsp.desired.resources if n.startswith("member-"))
    assert len(names) == 1  # alice is not on the proxy yet
    body = payload(rsp, names[0])
    assert body["create"] == {
        "team_id": "team-a.research",
        "member": [{"user_id": "team-a.bob", "role": "user"}],
        "max_budget_in_team": 2.0,
    }
    assert body["delete"] == {"team_id": "team-a.research", "user_id": "team-a.bob"}
    reason = condition(rsp, "TeamReady")
    assert reason.reason == "MembersPending"
    assert "alice" in reason.message  # her forged status.userID proves nothing
    assert status(rsp) == {"teamID": "team-a.research"}
    # Once alice is on the proxy, her spec.teams makes her a member too.
    case.requests = [on_proxy(bob), on_proxy(alice_not_yet)]
    rsp = run(function_server, case)
    assert len([n for n in rsp.desired.resources if n.startswith("member-")]) == 2


def test_a_member_removed_or_deleted_is_no_longer_desired(
    function_server: FunctionServer,
) -> None:
    members = [{"userRef": {"name": "bob"}}]
    bob = user("bob", teams=None)
    case = Case(
        team(members=members), {"team": TEAM_IN_PLACE}, users=[bob], requests=[on_proxy(bob)]
    )
    rsp = run(function_server, case)
    (member,) = [n for n in rsp.desired.resources if n.startswith("member-")]
    case.observed[member] = desired(rsp, member)
    # bob is removed from the list: Crossplane deletes his Request, whose REMOVE runs.
    case.xr = team(members=[])
    assert member not in run(function_server, case).desired.resources
    # bob's User is being deleted: the same.
    case.xr = team(members=members)
    going = copy.deepcopy(bob)
    going["metadata"]["deletionTimestamp"] = "2026-12-04T00:00:00Z"
    case.users = [going]
    assert member not in run(function_server, case).desired.resources
    # bob's Request got a 500 for a moment (unknown for now): his membership stays.
    case.users = [bob]
    case.requests = [on_proxy(bob, 500, "/user/info?user_id=team-a.bob")]
    assert member in run(function_server, case).desired.resources


def test_a_team_member_twice_is_refused(function_server: FunctionServer) -> None:
    members = [{"userRef": {"name": "bob"}}, {"userRef": {"name": "bob"}, "role": "admin"}]
    message = fatal(run(function_server, Case(team(members=members))))
    assert "spec.members" in message


@pytest.mark.parametrize(
    ("live_role", "shown"),
    [
        pytest.param("user", "at 'user', not 'admin'", id="a-role-litellm-refused-to-change"),
        pytest.param("{{ a:b:c }} sk-hostile", "at another role", id="a-hostile-role-text"),
    ],
)
def test_a_member_litellm_will_not_change_is_reported(
    function_server: FunctionServer, live_role: str, shown: str
) -> None:
    """The admin role needs Enterprise: LiteLLM refuses each update, and its last stored
    answer (the team's info, 200) shows the old role; our words say so, never its text."""
    bob = user("bob", teams=None)
    case = Case(
        team(members=[{"userRef": {"name": "bob"}, "role": "admin"}]),
        users=[bob],
        requests=[on_proxy(bob)],
    )
    case.observed["team"] = TEAM_IN_PLACE
    rsp = run(function_server, case)
    (member,) = [n for n in rsp.desired.resources if n.startswith("member-")]
    info = {"team_info": {"members_with_roles": [{"user_id": "team-a.bob", "role": live_role}]}}
    case.observed[member] = answered(200, "/team/info?team_id=team-a.research", info)
    rsp = run(function_server, case)
    ready = condition(rsp, "TeamReady")
    assert ready.reason == "MembersPending"
    assert rsp.desired.resources[member].ready == fnv1.READY_FALSE
    message = " ".join([ready.message, *(r.message for r in rsp.results)])
    assert f"LiteLLM keeps the member's role {shown}" in message
    assert "{{" not in message
    assert "sk-hostile" not in message


def test_members_added_on_the_proxy_directly_are_removed(
    function_server: FunctionServer,
) -> None:
    """Membership is a complete set: a member the spec does not want is removed, except the
    master key's own user; an ID that could carry a placeholder is never put in a Request."""
    bob = user("bob", teams=None)
    hostile = "{{ team-b-secret:team-b:key }}"
    listed = ["default_user_id", "team-a.bob", "team-a.mallory", hostile]
    info = {"team_info": {"members_with_roles": [{"user_id": u, "role": "user"} for u in listed]}}
    team_answer = answered(200, "/team/info?team_id=team-a.research", info)
    case = Case(
        team(members=[{"userRef": {"name": "bob"}}]),
        {"team": team_answer},
        users=[bob],
        requests=[on_proxy(bob)],
    )
    rsp = run(function_server, case)
    prunes = [n for n in rsp.desired.resources if n.startswith("prune-")]
    assert len(prunes) == 1
    request = desired(rsp, prunes[0])
    assert request["spec"]["managementPolicies"] == ["Observe", "Delete"]
    assert payload(rsp, prunes[0])["delete"] == {
        "team_id": "team-a.research",
        "user_id": "team-a.mallory",
    }
    assert [m["action"] for m in request["spec"]["forProvider"]["mappings"]] == [
        "OBSERVE",
        "REMOVE",
    ]
    composed = [resource.struct_to_dict(r.resource) for r in rsp.desired.resources.values()]
    assert "team-b-secret" not in json.dumps(composed)
    messages = " ".join(r.message for r in rsp.results)
    assert "1 member(s)" in messages
    assert "mallory" not in messages  # the proxy's text stays out
    # Once it exists, it is dropped: Crossplane deletes it, and its REMOVE runs. It is
    # remembered, so the stored info (a poll behind) never brings it back in a loop.
    case.observed[prunes[0]] = request  # created; provider-http has not reconciled it yet
    assert prunes[0] in run(function_server, case).desired.resources
    case.observed[prunes[0]] = {**request, "status": {"response": {"statusCode": 200}}}
    rsp = run(function_server, case)
    assert prunes[0] not in rsp.desired.resources
    remembered = desired(rsp, "team")["metadata"]["annotations"]
    assert remembered == {"auth.litellm.ai/pruned-members": "team-a.mallory"}
    # The team's own Request remembers it (only Crossplane writes it, never the tenant).
    del case.observed[prunes[0]]
    case.observed["team"] = {**team_answer, "metadata": {"name": "x", "annotations": remembered}}
    rsp = run(function_server, case)
    assert not [n for n in rsp.desired.resources if n.startswith("prune-")]
    assert desired(rsp, "team")["metadata"]["annotations"] == remembered
    # Once the proxy no longer lists it, it is forgotten.
    info["team_info"]["members_with_roles"] = [{"user_id": "team-a.bob", "role": "user"}]
    case.observed["team"] = {
        **answered(200, "/team/info?team_id=team-a.research", info),
        "metadata": {"name": "x", "annotations": remembered},
    }
    assert "annotations" not in desired(run(function_server, case), "team")["metadata"]


def test_a_member_being_removed_is_not_pruned_too(function_server: FunctionServer) -> None:
    """bob left spec.members: his member Request, being deleted, removes him already."""
    bob = user("bob", teams=None)
    case = Case(
        team(members=[{"userRef": {"name": "bob"}}]),
        {"team": TEAM_IN_PLACE},
        users=[bob],
        requests=[on_proxy(bob)],
    )
    rsp = run(function_server, case)
    (member,) = [n for n in rsp.desired.resources if n.startswith("member-")]
    case.observed[member] = desired(rsp, member)
    info = {"team_info": {"members_with_roles": [{"user_id": "team-a.bob", "role": "user"}]}}
    case.observed["team"] = answered(200, "/team/info?team_id=team-a.research", info)
    case.xr = team(members=[])
    rsp = run(function_server, case)
    assert sorted(rsp.desired.resources) == ["team"]


def test_a_team_with_thousands_of_strangers_prunes_a_few_at_a_time(
    function_server: FunctionServer,
) -> None:
    listed = [{"user_id": f"team-a.stranger-{i}", "role": "user"} for i in range(4500)]
    info = {"team_info": {"members_with_roles": listed}}
    case = Case(team(), {"team": answered(200, "/team/info?team_id=team-a.research", info)})
    rsp = run(function_server, case)
    prunes = [n for n in rsp.desired.resources if n.startswith("prune-")]
    assert len(prunes) == 8
    assert rsp.ByteSize() < 256 * 1024
    assert any("4096 member(s)" in r.message for r in rsp.results)

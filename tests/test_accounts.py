"""Users and Teams, and VirtualKeys that reference them, over the function's real gRPC server.

Tables of named cases, as in tests/test_tenancy.py: what a User and a Team
compose, what the tenancy policy refuses, and how references resolve. The
same objects run on the real control plane against the real proxy in
tests/cluster/test_accounts_cluster.py.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from tests.conftest import load_example
from tests.grpc_harness import FunctionServer, example_policies, make_request, required_resources

Obj = dict[str, Any]
MASTER = "{{ litellm-example-secrets:litellm:masterkey }}"


def user(name: str = "alice", status: Obj | None = None, **spec: Any) -> Obj:
    """A User; `status` is what a tenant may have written there, which proves nothing."""
    xr = copy.deepcopy(load_example("accounts/user.yaml"))
    xr["metadata"]["name"] = name
    xr["metadata"]["uid"] = f"uid-user-{name}"
    xr["spec"].update(spec)
    xr["spec"] = {k: v for k, v in xr["spec"].items() if v is not None}
    if status is not None:
        xr["status"] = status
    return xr


def team(status: Obj | None = None, **spec: Any) -> Obj:
    xr = copy.deepcopy(load_example("accounts/team.yaml"))
    xr["metadata"]["uid"] = "uid-team-research"
    xr["spec"].update(spec)
    if status is not None:
        xr["status"] = status
    return xr


def on_proxy(xr: Obj, code: int = 200, path: str | None = None, body: Any = None) -> Obj:
    """The Request of a User or Team as provider-http left it once it made the user or team.

    What the function reads to know that the user or team exists on the proxy
    as that object's: LiteLLM's answer, never the object's status.
    """
    kind = xr["kind"].lower()
    name = xr["metadata"]["name"]
    local = xr["spec"].get(f"{kind}ID") or name
    litellm_id = f"{xr['metadata']['namespace']}.{local}"
    return {
        "apiVersion": "http.m.crossplane.io/v1alpha2",
        "kind": "Request",
        "metadata": {
            "name": f"{name}-{kind}",
            "namespace": xr["metadata"]["namespace"],
            "ownerReferences": [
                {"controller": True, "uid": xr["metadata"]["uid"], "kind": xr["kind"]}
            ],
        },
        "spec": {"forProvider": {"payload": {"body": json.dumps({f"{kind}Id": litellm_id})}}},
        "status": {
            "response": {"statusCode": code, "body": json.dumps(body or {})},
            "requestDetails": {"url": f"http://litellm:4000{path or f'/{kind}/new'}"},
        },
    }


def answered(code: int, path: str, body: Any = None) -> Obj:
    """A Request after LiteLLM answered `code` on `path`."""
    return {
        "apiVersion": "http.m.crossplane.io/v1alpha2",
        "kind": "Request",
        "metadata": {"name": "x", "namespace": "team-a"},
        "status": {
            "response": {"statusCode": code, "body": json.dumps(body or {})},
            "requestDetails": {"url": f"http://litellm:4000{path}", "method": "GET"},
        },
    }


def with_roles(*roles: str) -> list[Obj]:
    policies = copy.deepcopy(example_policies())
    policies[0]["spec"]["rules"][0]["users"] = {"roles": list(roles)}
    return policies


def bound(team_id: str) -> list[Obj]:
    policies = copy.deepcopy(example_policies())
    policies[0]["spec"]["rules"][0]["teams"] = {"bind": team_id}
    return policies


@dataclass
class Case:
    xr: Obj
    observed: dict[str, Obj] = field(default_factory=dict)
    policies: list[Obj] | None = None
    users: list[Obj] = field(default_factory=list)
    teams: list[Obj] = field(default_factory=list)
    requests: list[Obj] = field(default_factory=list)  # the Users' and Teams' Requests


def run(server: FunctionServer, case: Case) -> fnv1.RunFunctionResponse:
    required = required_resources(
        case.xr, case.policies, users=case.users, teams=case.teams, requests=case.requests
    )
    return server.run(make_request(case.xr, case.observed, required=required))


def desired(rsp: fnv1.RunFunctionResponse, name: str) -> Obj:
    found: Obj = resource.struct_to_dict(rsp.desired.resources[name].resource)
    return found


def payload(rsp: fnv1.RunFunctionResponse, name: str) -> Obj:
    body: Obj = json.loads(desired(rsp, name)["spec"]["forProvider"]["payload"]["body"])
    return body


def fatal(rsp: fnv1.RunFunctionResponse) -> str:
    messages: list[str] = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert messages, f"expected a Fatal result, got {rsp.results}"
    assert not rsp.desired.resources, "a Fatal result must compose nothing"
    return messages[0]


def status(rsp: fnv1.RunFunctionResponse) -> Obj:
    found: Obj = resource.struct_to_dict(rsp.desired.composite.resource).get("status") or {}
    return found


def condition(rsp: fnv1.RunFunctionResponse, kind: str) -> fnv1.Condition:
    found: fnv1.Condition = next(c for c in rsp.conditions if c.type == kind)
    return found


ALICE_READY = user()
ALICE_ON_PROXY = on_proxy(ALICE_READY)
USER_IN_PLACE = answered(200, "/user/info?user_id=team-a.alice", {"user_id": "team-a.alice"})
TEAM_IN_PLACE = answered(200, "/team/info?team_id=team-a.research", {"team_id": "x"})

# --- Users --------------------------------------------------------------------------------


def test_a_user_is_created_without_litellms_own_key(function_server: FunctionServer) -> None:
    rsp = run(function_server, Case(user()))
    body = payload(rsp, "user")
    assert body["userId"] == "team-a.alice"
    assert body["create"]["auto_create_key"] is False
    assert body["create"]["user_id"] == "team-a.alice"
    assert body["create"]["user_role"] == "internal_user_viewer"  # cannot mint keys
    assert body["create"]["max_budget"] == 5.0
    assert body["delete"] == {"user_ids": ["team-a.alice"]}
    request = desired(rsp, "user")
    headers = request["spec"]["forProvider"]["headers"]
    assert headers["Authorization"] == [f"Bearer {MASTER}"]
    mappings = request["spec"]["forProvider"]["mappings"]
    assert all(m.get("method") for m in mappings)
    # No key before the user exists on the proxy: its userRef would wait anyway.
    assert "virtualkey" not in rsp.desired.resources
    assert condition(rsp, "UserReady").reason == "Creating"


def test_the_users_key_is_an_ordinary_virtualkey(function_server: FunctionServer) -> None:
    rsp = run(function_server, Case(ALICE_READY, {"user": USER_IN_PLACE}))
    key = desired(rsp, "virtualkey")
    assert key["kind"] == "VirtualKey"
    assert key["metadata"] == {
        "name": "alice-key",
        "namespace": "team-a",
        "labels": {
            "app.kubernetes.io/managed-by": "function-litellm-keys",
            "auth.litellm.ai/user": "alice",
        },
    }
    assert key["spec"] == {
        "keyAlias": "alice-key",
        "models": ["gpt-4o"],
        "maxBudget": "5",
        "budgetDuration": "30d",
        "userRef": {"name": "alice"},
        "connectionRef": {"instanceRef": {"name": "litellm-example", "namespace": "litellm"}},
    }
    assert status(rsp) == {"userID": "team-a.alice", "virtualKeyRef": "alice-key"}
    assert condition(rsp, "UserReady").reason == "KeyCreating"


def test_a_users_key_is_kept_while_the_proxy_is_down(function_server: FunctionServer) -> None:
    down = {**USER_IN_PLACE, "status": {"error": "dial tcp: connection refused"}}
    rsp = run(function_server, Case(ALICE_READY, {"user": down, "virtualkey": {"kind": "X"}}))
    assert "virtualkey" in rsp.desired.resources
    assert "userID" not in status(rsp)  # status says what is known now, for people
    assert condition(rsp, "UserReady").reason == "ProxyUnreachable"


@pytest.mark.parametrize(
    ("spec", "policies", "says"),
    [
        pytest.param(
            {"userRole": "proxy_admin"},
            None,
            [
                "spec.userRole",
                "'proxy_admin' is not allowed",
                "roles they allow: internal_user_viewer)",
            ],
            id="proxy-admin-refused-by-default",
        ),
        pytest.param(
            {"userRole": "internal_user_viewer"},
            with_roles("internal_user"),
            ["spec.userRole", "users.roles"],
            id="a-role-the-rule-does-not-list",
        ),
        pytest.param(
            {"autoCreateKey": True, "keyAlias": None},
            None,
            ["spec.keyAlias", "autoCreateKey"],
            id="auto-create-key-without-alias",
        ),
        pytest.param(
            {"userAlias": "{{ litellm-example-secrets:litellm:masterkey }}"},
            None,
            ["spec.userAlias", "placeholder"],
            id="a-placeholder-in-a-field",
        ),
        pytest.param(
            {"userID": "../admin"},
            None,
            ["spec.userID", "wrong form"],
            id="a-user-id-with-a-path",
        ),
        pytest.param(
            {"connectionRef": {"instanceRef": {"name": "other", "namespace": "litellm"}}},
            None,
            ["spec.connectionRef.instanceRef", "not granted"],
            id="an-instance-not-granted",
        ),
        pytest.param({}, [], ["no TenancyPolicy"], id="no-policy-grants-nothing"),
    ],
)
def test_a_user_is_refused(
    function_server: FunctionServer, spec: Obj, policies: list[Obj] | None, says: list[str]
) -> None:
    message = fatal(run(function_server, Case(user(**spec), policies=policies)))
    assert message.startswith("User team-a/alice: ")
    for text in says:
        assert text in message
    assert "sk-master" not in message


def test_a_role_the_platform_grants(function_server: FunctionServer) -> None:
    rsp = run(
        function_server,
        Case(
            user(userRole="proxy_admin_viewer"),
            policies=with_roles("internal_user", "proxy_admin_viewer"),
        ),
    )
    assert payload(rsp, "user")["create"]["user_role"] == "proxy_admin_viewer"


def test_a_user_id_is_always_in_its_namespace(function_server: FunctionServer) -> None:
    rsp = run(function_server, Case(user(userID="default_user_id")))
    assert payload(rsp, "user")["userId"] == "team-a.default_user_id"
    info = desired(rsp, "user")["spec"]["forProvider"]["mappings"][1]
    assert info["action"] == "OBSERVE"
    assert payload(rsp, "user")["info"] == "/user/info?user_id=team-a.default_user_id"


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


# --- VirtualKeys that reference them ------------------------------------------------------


def key(**spec: Any) -> Obj:
    xr = copy.deepcopy(load_example("virtualkey/virtualkey.yaml"))
    xr["spec"].update(spec)
    return xr


def test_a_key_takes_its_users_id(function_server: FunctionServer) -> None:
    case = Case(key(userRef={"name": "alice"}), users=[ALICE_READY], requests=[ALICE_ON_PROXY])
    rsp = run(function_server, case)
    request = next(n for n in rsp.desired.resources if n.startswith("request-"))
    assert payload(rsp, request)["fields"]["user_id"] == "team-a.alice"


def test_a_key_takes_its_teams_id(function_server: FunctionServer) -> None:
    research = team()
    case = Case(key(teamRef={"name": "research"}), teams=[research], requests=[on_proxy(research)])
    rsp = run(function_server, case)
    request = next(n for n in rsp.desired.resources if n.startswith("request-"))
    assert payload(rsp, request)["fields"]["team_id"] == "team-a.research"


@pytest.mark.parametrize(
    ("spec", "users", "teams", "policies", "says"),
    [
        pytest.param(
            {"userRef": {"name": "alice"}},
            [],
            [],
            None,
            ["spec.userRef", "User team-a/alice does not exist"],
            id="a-user-that-does-not-exist",
        ),
        pytest.param(
            {"userRef": {"name": "alice"}},
            [user()],
            [],
            None,
            ["spec.userRef", "not on the proxy yet", "changes nothing"],
            id="a-user-not-on-the-proxy-yet",
        ),
        pytest.param(
            {"userRef": {"name": "alice"}},
            [user(status={"userID": "team-b.alice"})],
            [],
            None,
            ["spec.userRef", "not on the proxy yet"],
            id="a-status-naming-another-namespaces-user",
        ),
        pytest.param(
            {"teamRef": {"name": "research"}},
            [],
            [team()],
            bound("platform-team"),
            ["spec.teamRef", "bound to LiteLLM team(s) platform-team"],
            id="a-team-ref-where-the-platform-binds-a-team",
        ),
        pytest.param(
            {"teamRef": {"name": "research"}, "teamID": "x"},
            [],
            [],
            None,
            ["teamRef and spec.teamID"],
            id="team-ref-and-team-id",
        ),
    ],
)
def test_a_reference_is_refused(  # noqa: PLR0917 - one table column each.
    function_server: FunctionServer,
    spec: Obj,
    users: list[Obj],
    teams: list[Obj],
    policies: list[Obj] | None,
    says: list[str],
) -> None:
    case = Case(
        key(**spec),
        policies=policies,
        users=users,
        teams=teams,
        requests=[on_proxy(o) for o in users + teams],
    )
    if spec.get("userRef") and users:
        case.requests = []  # the User exists; its user is not on the proxy
    message = fatal(run(function_server, case))
    for text in says:
        assert text in message


def test_references_are_asked_of_crossplane(function_server: FunctionServer) -> None:
    xr = key(userRef={"name": "alice"}, teamRef={"name": "research"})
    rsp = function_server.run(make_request(xr, {}, required={}))
    users = rsp.requirements.resources["users"]
    assert (users.kind, users.match_name, users.namespace) == ("User", "alice", "team-a")
    teams = rsp.requirements.resources["teams"]
    assert (teams.kind, teams.match_name, teams.namespace) == ("Team", "research", "team-a")
    rsp = function_server.run(make_request(team(), {}, required={}))
    every = rsp.requirements.resources["users"]
    assert every.namespace == "team-a"
    assert every.HasField("match_labels")


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


def test_turning_auto_create_key_off_lets_its_virtualkey_go(
    function_server: FunctionServer,
) -> None:
    """No longer desired, the VirtualKey is deleted by Crossplane, and its key with it."""
    case = Case(ALICE_READY, {"user": USER_IN_PLACE})
    rsp = run(function_server, case)
    case.observed["virtualkey"] = desired(rsp, "virtualkey")
    case.xr = user(autoCreateKey=False)
    rsp = run(function_server, case)
    assert sorted(rsp.desired.resources) == ["user"]
    assert "virtualKeyRef" not in status(rsp)


def test_every_incarnation_has_the_same_request_names(function_server: FunctionServer) -> None:
    """The LiteLLM ID is the same for a User deleted and made again, so its Request name is
    too: the new one waits for the old one's REMOVE instead of being deleted by it."""
    names = []
    for uid in ("5e1f1c57-0000-4000-8000-000000000001", "9a8b7c6d-0000-4000-8000-000000000002"):
        xr = user()
        xr["metadata"]["uid"] = uid
        names.append(desired(run(function_server, Case(xr)), "user")["metadata"]["name"])
    assert names == ["alice-user", "alice-user"]


# --- Hostile tenants: IDs that collide with the platform's, forged statuses ----------------

PLATFORM_ADMIN = {
    "user_info": {"user_id": "team-a.alice", "user_role": "proxy_admin", "metadata": {}}
}


@pytest.mark.parametrize(
    ("users", "requests", "says"),
    [
        pytest.param(
            [user(status={"userID": "team-a.alice"})],
            [],
            "not on the proxy yet",
            id="a-forged-status-userID-without-a-request",
        ),
        pytest.param(
            [user()],
            [on_proxy(user(), 409, "/user/new", {"error": {"message": "already exists"}})],
            "not on the proxy yet",
            id="the-id-belongs-to-someone-else-create-refused",
        ),
        pytest.param(
            [user()],
            [on_proxy(user(), 200, "/user/info?user_id=team-a.alice", PLATFORM_ADMIN)],
            "not on the proxy yet",
            id="an-answer-for-a-user-without-this-users-provenance",
        ),
        pytest.param(
            [user()],
            [
                on_proxy(
                    user(),
                    200,
                    "/user/info?user_id=team-a.alice",
                    {
                        "user_info": {
                            "user_role": "proxy_admin",
                            "metadata": {
                                "auth.litellm.ai/namespace": "team-a",
                                "auth.litellm.ai/user": "alice",
                            },
                        }
                    },
                )
            ],
            "has role 'proxy_admin' on the proxy, which this namespace may not use",
            id="its-own-user-with-a-role-the-namespace-may-not-use",
        ),
        pytest.param(
            [user()],
            [
                {
                    **on_proxy(user()),
                    "metadata": {**on_proxy(user())["metadata"], "ownerReferences": []},
                }
            ],
            "not on the proxy yet",
            id="a-request-another-object-controls",
        ),
    ],
)
def test_a_key_is_bound_only_to_a_user_the_proxy_says_is_this_users(
    function_server: FunctionServer, users: list[Obj], requests: list[Obj], says: str
) -> None:
    """A tenant may write a User's status (Crossplane's edit roles include it) and pick a
    userID that spells a platform user's ID: neither binds a key to that user."""
    case = Case(key(userRef={"name": "alice"}), users=users, requests=requests)
    message = fatal(run(function_server, case))
    assert "spec.userRef" in message
    assert says in message


def test_an_id_that_exists_and_is_not_ours_is_never_updated_or_deleted(
    function_server: FunctionServer,
) -> None:
    """namespace `john` with userID `doe@corp.example` spells the platform's
    `john.doe@corp.example`: the Request's checks call that user removed, so provider-http
    never UPDATEs or REMOVEs it, and the User says why."""
    xr = user(userID="doe@corp.example")
    refused = answered(409, "/user/new", {"error": {"message": "User with id x already exists"}})
    rsp = run(function_server, Case(xr, {"user": refused}))
    body = payload(rsp, "user")
    assert body["owner"] == {"namespace": "team-a", "key": "auth.litellm.ai/user", "name": "alice"}
    assert "trustExisting" not in body
    ready = condition(rsp, "UserReady")
    assert ready.reason == "IDConflict"
    assert "never changed or deleted" in ready.message
    check = desired(rsp, "user")["spec"]["forProvider"]["isRemovedCheck"]["logic"]
    assert "auth.litellm.ai/namespace" in check


def test_a_user_made_before_provenance_is_trusted_until_stamped(
    function_server: FunctionServer,
) -> None:
    """An upgrade: a Request whose payload names no owner had made its user; it keeps it
    (trustExisting) until LiteLLM's answer shows the stamp its first UPDATE writes."""
    before = answered(200, "/user/info?user_id=team-a.alice", {"user_info": {"metadata": {}}})
    before["spec"] = {"forProvider": {"payload": {"body": json.dumps({"userId": "team-a.alice"})}}}
    rsp = run(function_server, Case(user(), {"user": before}))
    body = payload(rsp, "user")
    assert body["trustExisting"] is True
    stamped = {"auth.litellm.ai/namespace": "team-a", "auth.litellm.ai/user": "alice"}
    after = answered(200, "/user/info", {"user_info": {"metadata": stamped}})
    after["spec"] = {"forProvider": {"payload": {"body": json.dumps(body)}}}
    assert "trustExisting" not in payload(
        run(function_server, Case(user(), {"user": after})), "user"
    )
    # A new User never trusts what it finds.
    assert "trustExisting" not in payload(run(function_server, Case(user())), "user")


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


def test_a_legacy_claim_resolves_through_its_xr_and_an_old_incarnation_never(
    function_server: FunctionServer,
) -> None:
    """A claim's Requests belong to its XR (spec.resourceRef); a Request still being
    deleted belongs to an earlier incarnation, whose answer says nothing about this one."""
    claim = user()
    claim["spec"]["resourceRef"] = {"name": "alice-x7k2p", "kind": "XUser"}
    request = on_proxy(claim)
    request["metadata"]["ownerReferences"] = [
        {"controller": True, "uid": "uid-of-the-xr", "name": "alice-x7k2p", "kind": "XUser"}
    ]
    case = Case(key(userRef={"name": "alice"}), users=[claim], requests=[request])
    rsp = run(function_server, case)
    name = next(n for n in rsp.desired.resources if n.startswith("request-"))
    assert payload(rsp, name)["fields"]["user_id"] == "team-a.alice"
    request["metadata"]["deletionTimestamp"] = "2026-12-05T00:00:00Z"
    assert "not on the proxy yet" in fatal(run(function_server, case))

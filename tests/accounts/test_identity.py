"""VirtualKeys that reference a User or a Team, and how a reference resolves.

`function.accounts.identity`: a key takes its User's or Team's LiteLLM ID only
once the proxy says that user or team is that object's (its Request's answer,
never the object's status), and a reference that does not resolve is refused.
"""

from __future__ import annotations

import pytest

from tests.accounts.objects import (
    ALICE_ON_PROXY,
    ALICE_READY,
    Case,
    Obj,
    bound,
    fatal,
    key,
    on_proxy,
    payload,
    run,
    team,
    user,
)
from tests.grpc_harness import FunctionServer, make_request

# --- VirtualKeys that reference them ------------------------------------------------------


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

"""A User: one LiteLLM user in its namespace, and with autoCreateKey its VirtualKey.

Named cases over the function's real gRPC server (`function.accounts.users`):
what a User composes, what the tenancy policy refuses, and an ID that spells
someone else's. The same objects run on the real control plane against the
real proxy in tests/cluster/test_accounts_cluster.py.
"""

from __future__ import annotations

import json

import pytest

from tests.accounts.objects import (
    ALICE_READY,
    MASTER,
    USER_IN_PLACE,
    Case,
    Obj,
    answered,
    condition,
    desired,
    fatal,
    payload,
    run,
    status,
    user,
    with_roles,
)
from tests.grpc_harness import FunctionServer

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


# --- an ID that exists and is not ours ---------------------------------------------------


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

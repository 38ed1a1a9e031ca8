"""Readiness, from what LiteLLM last answered to a Request (`function.provider_http.readiness`).

A table of named cases, as function-template-python's tests/test_fn.py writes
them (`TestCase(reason, ...)`): each is one observed Request, and the condition
the object must then show.

- A key's (`key_state`), through the function's real gRPC server: the KeyReady
  condition, the Request's readiness and whether a person is warned.
- A user's, a team's and a team member's (`state_of`), called directly: the
  same reading with their own messages (an e-mail or ID someone else holds).
- Foreign text never reaches a message: LiteLLM's error text and
  provider-http's errors are only read to tell cases apart.
- A CREATE provider-http began and never finished is settled (`unsettled_create`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format

from function.provider_http.readiness import state_of
from function.tenancy.connection import Connection, MasterKeyRef
from tests.fixtures import observed_request, observed_secret, request_resource_name
from tests.grpc_harness import FunctionServer, make_request


@dataclass(frozen=True)
class TestCase:
    """One named case: an observed Request (None: not made yet) and what it must give."""

    __test__ = False  # a row of a table, not a class of tests

    reason: str
    request: dict[str, Any] | None
    ready: bool
    want: str  # the condition's reason
    says: str = ""  # a fragment its message holds


def _as_plain(rsp: fnv1.RunFunctionResponse) -> dict[str, Any]:
    plain: dict[str, Any] = json_format.MessageToDict(rsp, preserving_proto_field_name=True)
    return plain


# --- a key, through the function ------------------------------------------------------------

KEY_CASES = [
    TestCase(
        reason="no Request yet",
        request=None,
        ready=False,
        want="Creating",
    ),
    TestCase(
        reason="no answer yet",
        request=observed_request(code=None),
        ready=False,
        want="Creating",
    ),
    TestCase(
        reason="the key read",
        request=observed_request(code=200),
        ready=True,
        want="Available",
    ),
    TestCase(
        reason="the key created",
        request=observed_request(code=200, path="/key/generate"),
        ready=True,
        want="Available",
    ),
    TestCase(
        reason="the key updated",
        request=observed_request(code=200, path="/key/update"),
        ready=True,
        want="Available",
    ),
    TestCase(
        reason="the key being deleted",
        request=observed_request(code=200, path="/key/delete"),
        ready=False,
        want="Deleting",
    ),
    TestCase(
        reason="the master key refused",
        request=observed_request(code=401),
        ready=False,
        want="Unauthorized",
    ),
    TestCase(
        reason="a feature the proxy does not have",
        request=observed_request(
            code=403, body={"error": {"message": "only available for Enterprise: tags"}}
        ),
        ready=False,
        want="Forbidden",
    ),
    TestCase(
        reason="the alias held by another key",
        request=observed_request(
            code=400,
            path="/key/generate",
            body={"error": {"message": "Key with alias 'example-service' already exists."}},
        ),
        ready=False,
        want="AliasConflict",
    ),
    TestCase(
        reason="an update refused",
        request=observed_request(code=400, path="/key/update"),
        ready=False,
        want="Rejected",
    ),
    TestCase(
        reason="the key not found",
        request=observed_request(code=404),
        ready=False,
        want="KeyNotFound",
    ),
    TestCase(
        reason="a server error",
        request=observed_request(code=500),
        ready=False,
        want="ProxyError",
    ),
    TestCase(
        reason="unavailable while creating",
        request=observed_request(code=503, path="/key/generate"),
        ready=False,
        want="ProxyError",
    ),
    TestCase(
        reason="an update not processed",
        request=observed_request(code=422, path="/key/update"),
        ready=False,
        want="Rejected",
    ),
    TestCase(
        reason="no connection to the proxy",
        request=observed_request(code=200, error='Get "http://x/key/info": connection refused'),
        ready=False,
        want="ProxyUnreachable",
    ),
    TestCase(
        reason="provider-http cannot run the Request",
        request=observed_request(
            code=200, synced_error="cannot get secret litellm/litellm-example"
        ),
        ready=False,
        want="RequestFailing",
    ),
]


@pytest.mark.parametrize("case", KEY_CASES, ids=lambda case: case.reason)
def test_readiness_follows_litellms_last_answer(
    function_server: FunctionServer, seed_xr: dict[str, Any], case: TestCase
) -> None:
    observed = {"key": observed_secret()}
    if case.request is not None:
        observed[request_resource_name()] = case.request
    rsp = function_server.run(make_request(seed_xr, observed))
    (condition,) = rsp.conditions
    assert condition.type == "KeyReady"
    assert condition.reason == case.want
    want = fnv1.STATUS_CONDITION_TRUE if case.ready else fnv1.STATUS_CONDITION_FALSE
    assert condition.status == want
    assert rsp.desired.resources[request_resource_name()].ready == (
        fnv1.READY_TRUE if case.ready else fnv1.READY_FALSE
    )
    problems = [r for r in rsp.results if r.severity == fnv1.SEVERITY_WARNING]
    assert bool(problems) == (case.want not in ("Available", "Creating", "Deleting"))


# --- a user, a team, a team member, read directly ---------------------------------------------

CONNECTION = Connection(
    "http://litellm:4000", MasterKeyRef("litellm-example-secrets", "litellm", "masterkey")
)
# What LiteLLM's error text says; it is read to tell cases apart, and never shown.
HIDDEN = "canary-7d41-text-of-the-proxy"


def answered(code: int | None, path: str, message: str = HIDDEN, **status: Any) -> dict[str, Any]:
    """A user's, team's or member's Request after LiteLLM answered `code` on `path`."""
    found: dict[str, Any] = dict(status)
    if code is not None:
        found["response"] = {
            "statusCode": code,
            "body": json.dumps({"error": {"message": f"{message} ({HIDDEN})"}}),
        }
        found["requestDetails"] = {"url": f"http://litellm:4000{path}", "method": "POST"}
    return {
        "apiVersion": "http.m.crossplane.io/v1alpha2",
        "kind": "Request",
        "metadata": {"name": "alice-user", "namespace": "team-a"},
        "status": found,
    }


USER = "User team-a/alice (team-a.alice)"
TEAM = "Team team-a/research (team-a.research)"
MEMBER = "member team-a.bob"

ACCOUNT_CASES: dict[str, list[TestCase]] = {
    USER: [
        TestCase(
            reason="no Request yet",
            request=None,
            ready=False,
            want="Creating",
            says=f"Waiting for the Request that creates {USER}.",
        ),
        TestCase(
            reason="created",
            request=answered(200, "/user/new"),
            ready=True,
            want="Available",
            says=f"{USER} is in place on http://litellm:4000.",
        ),
        TestCase(
            reason="its e-mail another user's",
            request=answered(400, "/user/new", "User with email alice@example.com exists"),
            ready=False,
            want="EmailConflict",
            says="has this User's userEmail (it answered HTTP 400)",
        ),
        TestCase(
            reason="its ID someone else's",
            request=answered(409, "/user/new", "User with id team-a.alice already exists"),
            ready=False,
            want="IDConflict",
            says=f"The LiteLLM ID of {USER} already exists",
        ),
        TestCase(
            reason="not found",
            request=answered(404, "/user/info?user_id=team-a.alice"),
            ready=False,
            want="NotFound",
            says=f"has no {USER} yet; creating it",
        ),
        TestCase(
            reason="the master key refused",
            request=answered(401, "/user/update"),
            ready=False,
            want="Unauthorized",
            says="when trying to update the user (it answered HTTP 401)",
        ),
    ],
    TEAM: [
        TestCase(
            reason="its ID someone else's",
            request=answered(400, "/team/new", "Team id = team-a.research already exists"),
            ready=False,
            want="IDConflict",
            says=f"The LiteLLM ID of {TEAM} already exists",
        ),
        TestCase(
            reason="an e-mail conflict is a user's only",
            request=answered(400, "/team/new", "email"),
            ready=False,
            want="Rejected",
            says=f"refused to create the team for {TEAM} (it answered HTTP 400)",
        ),
        TestCase(
            reason="being deleted",
            request=answered(200, "/team/delete"),
            ready=False,
            want="Deleting",
            says=f"{TEAM} is being deleted from http://litellm:4000.",
        ),
        TestCase(
            reason="a server error",
            request=answered(500, "/team/info?team_id=team-a.research"),
            ready=False,
            want="ProxyError",
            says="failed to read the team (it answered HTTP 500)",
        ),
    ],
    MEMBER: [
        TestCase(
            reason="added",
            request=answered(200, "/team/member_add"),
            ready=True,
            want="Available",
        ),
        TestCase(
            reason="being removed",
            request=answered(200, "/team/member_delete"),
            ready=False,
            want="Deleting",
        ),
        TestCase(
            reason="a role the proxy will not give",
            request=answered(403, "/team/member_update", "only available for Enterprise"),
            ready=False,
            want="Rejected",
            says=f"refused to update the team member for {MEMBER} (it answered HTTP 403)",
        ),
        TestCase(
            reason="no connection to the proxy",
            request=answered(None, "", error=f"dial tcp {HIDDEN}: connection refused"),
            ready=False,
            want="ProxyUnreachable",
        ),
        TestCase(
            reason="provider-http cannot run the Request",
            request=answered(
                None,
                "",
                conditions=[{"type": "Synced", "status": "False", "message": HIDDEN}],
            ),
            ready=False,
            want="RequestFailing",
            says="Secret litellm/litellm-example-secrets exists with data key 'masterkey'",
        ),
        TestCase(
            reason="no answer yet",
            request=answered(None, ""),
            ready=False,
            want="Creating",
            says="Waiting for LiteLLM's first answer.",
        ),
    ],
}


@pytest.mark.parametrize(
    ("subject", "case"),
    [
        pytest.param(subject, case, id=f"{subject.split()[0].lower()}: {case.reason}")
        for subject, cases in ACCOUNT_CASES.items()
        for case in cases
    ],
)
def test_an_account_reads_its_requests_last_answer(subject: str, case: TestCase) -> None:
    state = state_of(case.request, CONNECTION, subject)
    assert (state.ready, state.reason) == (case.ready, case.want), state.message
    assert case.says in state.message
    assert state.is_problem == (case.want not in ("Available", "Creating", "Deleting"))
    assert HIDDEN not in state.message


# Text a proxy or provider-http wrote, which must never reach a tenant. A
# tenant-run proxy writes its own answers, and provider-http resolves secret
# placeholders in them: the canary stands for another Secret's value.
CANARY = "canary-0f3e-master-key-of-another-tenant"
FOREIGN_TEXT: dict[str, dict[str, Any]] = {
    "LiteLLM error message": {
        "code": 401,
        "body": {"error": {"message": f"Invalid key. Passed in: {CANARY}"}},
    },
    "LiteLLM detail": {"code": 400, "path": "/key/generate", "body": {"detail": CANARY}},
    "alias conflict text": {
        "code": 400,
        "path": "/key/generate",
        "body": {"error": {"message": f"key_alias {CANARY} already exists"}},
    },
    "server error": {"code": 503, "body": {"error": {"message": CANARY}}},
    "unknown status": {"code": 418, "body": {"error": {"message": CANARY}}},
    "provider-http transport error": {"code": None, "error": f"dial tcp {CANARY}: refused"},
    "jq error in the Synced condition": {
        "code": 200,
        "synced_error": f'ExpectedResponseCheck failed: cannot iterate over: string ("{CANARY}")',
    },
}


@pytest.mark.parametrize("case", sorted(FOREIGN_TEXT))
def test_foreign_text_never_reaches_conditions_or_results(
    function_server: FunctionServer, seed_xr: dict[str, Any], case: str
) -> None:
    observed = {
        "key": observed_secret(),
        request_resource_name(): observed_request(**FOREIGN_TEXT[case]),
    }
    rsp = function_server.run(make_request(seed_xr, observed))
    plain = _as_plain(rsp)
    told = [c["message"] for c in plain["conditions"]] + [
        r["message"] for r in plain.get("results", [])
    ]
    assert told, "the state must still be reported"
    assert all(CANARY not in text for text in told), told
    assert CANARY not in json.dumps(plain)


def test_alias_conflict_is_recognised_without_echoing_litellm(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    body = {"error": {"message": f"Key with alias '{CANARY}' already exists."}}
    observed = {
        "key": observed_secret(),
        request_resource_name(): observed_request(code=400, path="/key/generate", body=body),
    }
    condition = function_server.run(make_request(seed_xr, observed)).conditions[0]
    assert condition.reason == "AliasConflict"
    assert "keyAlias 'example-service'" in condition.message
    assert CANARY not in condition.message


def test_a_create_the_provider_never_finished_is_settled(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    # provider-http died between writing external-create-pending and the outcome:
    # crossplane-runtime waits for a person. CREATE is idempotent here, so the
    # function says it failed, one second after it began, and lets it go on.
    stuck = observed_request(
        code=None,
        synced_error="cannot determine creation result - remove the "
        "crossplane.io/external-create-pending annotation if it is safe to proceed",
    )
    stuck["metadata"]["annotations"] = {
        "crossplane.io/external-create-pending": "2026-12-02T14:36:47Z"
    }
    observed = {"key": observed_secret(), request_resource_name(): stuck}
    rsp = function_server.run(make_request(seed_xr, observed))
    request = resource.struct_to_dict(rsp.desired.resources[request_resource_name()].resource)
    failed = {"crossplane.io/external-create-failed": "2026-12-02T14:36:48Z"}
    # With an annotation provider-http's event filter does not ignore, so it acts at once.
    settled = {**failed, "litellm.fn.crossplane.io/create-settled": "2026-12-02T14:36:48Z"}
    assert request["metadata"]["annotations"] == settled
    # Kept while that CREATE is the last one begun, even once the condition has cleared...
    stuck["status"] = {}
    stuck["metadata"]["annotations"].update(failed)
    rsp = function_server.run(make_request(seed_xr, observed))
    request = resource.struct_to_dict(rsp.desired.resources[request_resource_name()].resource)
    assert request["metadata"]["annotations"] == settled
    # ...and dropped once provider-http begins another.
    stuck["metadata"]["annotations"]["crossplane.io/external-create-pending"] = (
        "2026-12-02T15:00:00Z"
    )
    rsp = function_server.run(make_request(seed_xr, observed))
    request = resource.struct_to_dict(rsp.desired.resources[request_resource_name()].resource)
    assert "annotations" not in request["metadata"]

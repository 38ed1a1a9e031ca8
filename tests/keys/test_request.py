"""A key's Request: its jq programs, run by real jq on LiteLLM's real answers.

`function.keys.request`'s checks (`EXPECTED_RESPONSE`, `OBSERVE_IS_REMOVED`,
`ECHO_KEY_JQ`) and bodies. The answers come from ../shared/litellm/samples
(recorded from LiteLLM 1.108.7). The context is shaped as provider-http builds
it: all of spec.forProvider with JSON strings turned into objects, plus
`.response`. The Users' and Teams' checks are in tests/accounts/test_requests.py.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jq
import pytest

from function.keys.request import (
    ECHO_KEY_JQ,
    EXPECTED_RESPONSE,
    OBSERVE_IS_REMOVED,
    create_only_fields,
    litellm_fields,
)
from function.keys.spec import VirtualKeySpec, parse_spec
from function.tenancy.connection import Connection, MasterKeyRef
from function.tenancy.decide import Authorization
from tests.conftest import SHARED

SAMPLES = SHARED / "litellm" / "samples"


def sample(name: str) -> dict[str, Any]:
    path = next(SAMPLES.glob(f"{name}-*.json"))
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def run(program: str, value: Any) -> Any:
    return jq.compile(program).input_value(value).first()


# The VirtualKey whose key samples 01/02 recorded (alias, models, budget, metadata).
SPEC = {
    "keyAlias": "e2e-main-2e0bad",
    "models": ["gpt-4o"],
    "maxBudget": "10",
    "budgetDuration": "1h",
    "metadata": {"purpose": "e2e"},
    "connectionRef": {"instanceRef": {"name": "litellm", "namespace": "litellm"}},
}


def granted(spec: VirtualKeySpec) -> Authorization:
    """What the tenancy policy grants: here, the team and user the spec names."""
    connection = Connection("http://litellm:4000", MasterKeyRef("litellm-secrets", "litellm", "k"))
    return Authorization(connection, spec.team_id, spec.user_id, ())


def context(spec: dict[str, Any], code: int, body: Any) -> dict[str, Any]:
    parsed = parse_spec(spec)
    return {
        "payload": {
            "baseUrl": "http://litellm:4000",
            "body": {
                "token": "e225b2cb10b8cc69c7ed78e996b9a9cef0a8c6e13ab86a84d3e8411d9dcefce4",
                "fields": litellm_fields(parsed, granted(parsed)),
                "createOnly": create_only_fields(parsed),
            },
        },
        "response": {"statusCode": code, "body": body, "headers": None},
    }


def info_body() -> dict[str, Any]:
    return copy.deepcopy(sample("02")["body"])


def with_info(**changes: Any) -> dict[str, Any]:
    body = info_body()
    body["info"].update(changes)
    return body


@pytest.mark.parametrize(
    ("case", "spec_changes", "body", "up_to_date"),
    [
        ("matches the recorded key", {}, info_body(), True),
        ("budget changed in spec", {"maxBudget": "200"}, info_body(), False),
        ("budget changed on the proxy", {}, with_info(max_budget=5.0), False),
        ("budget equal as float", {"maxBudget": "10.0"}, info_body(), True),
        ("model added in spec", {"models": ["gpt-4o", "gemini-pro"]}, info_body(), False),
        ("models in another order", {"models": ["b", "a"]}, with_info(models=["a", "b"]), True),
        ("absent models means all", {"models": []}, with_info(models=[]), True),
        ("period changed", {"budgetDuration": "30d"}, info_body(), False),
        ("never blocked is unblocked", {"blocked": False}, info_body(), True),
        ("blocked on the proxy", {"blocked": False}, with_info(blocked=True), False),
        ("blocked in spec", {"blocked": True}, info_body(), False),
        ("metadata removed on proxy", {}, with_info(metadata={}), False),
        (
            "litellm's own metadata ignored",
            {},
            with_info(metadata={"purpose": "e2e", "tags": ["x"]}),
            True,
        ),
        ("soft budget lives in the budget table", {"softBudget": "5"}, info_body(), False),
        (
            "soft budget matches the budget table",
            {"softBudget": "5"},
            with_info(litellm_budget_table={"soft_budget": 5.0}),
            True,
        ),
        ("rpm limit differs", {"rpmLimit": 10}, info_body(), False),
        ("rpm limit matches", {"rpmLimit": 10}, with_info(rpm_limit=10), True),
        ("unmanaged field differs", {}, with_info(tpm_limit=999), True),
    ],
)
def test_expected_response_check(
    case: str, spec_changes: dict[str, Any], body: Any, up_to_date: bool
) -> None:
    spec = {**SPEC, **spec_changes}
    assert run(EXPECTED_RESPONSE, context(spec, 200, body)) is up_to_date, case


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (401, {"error": {"message": "Authentication Error", "type": "auth_error"}}),
        (500, {"error": {"message": "db down"}}),
        (404, {"error": {"message": "Key not found in database"}}),
        (200, "<html>not litellm</html>"),
    ],
)
def test_failed_observe_counts_as_up_to_date(code: int, body: Any) -> None:
    # An UPDATE could only fail too, and a failed POST turns the Request back
    # into "not created" (provider-http observe.go objectNotCreated).
    assert run(EXPECTED_RESPONSE, context(SPEC, code, body)) is True


@pytest.mark.parametrize(
    ("case", "code", "body", "removed"),
    [
        ("active key", 200, info_body(), False),
        ("deleted key answers 200 with status deleted", 200, sample("17")["body"], True),
        ("unknown token", 404, {"error": {"message": "Key not found in database"}}, True),
        ("wrong master key", 401, {"error": {"message": "Authentication Error"}}, False),
        ("proxy error", 500, {"error": {"message": "boom"}}, False),
        ("not json", 200, "<html>not litellm</html>", False),
        ("transport error", 0, None, False),
    ],
)
def test_is_removed_check(case: str, code: int, body: Any, removed: bool) -> None:
    assert run(OBSERVE_IS_REMOVED, context(SPEC, code, body)) is removed, case


def injection_input(code: int, body: Any) -> dict[str, Any]:
    """What provider-http's responseJQ sees: {body, headers, statusCode}."""
    return {"body": body, "headers": {}, "statusCode": code}


def test_echo_jq_picks_the_key_only_from_generate() -> None:
    generated = copy.deepcopy(sample("01")["body"])
    generated["key"] = "sk-" + "A" * 43
    assert run(ECHO_KEY_JQ, injection_input(200, generated)) == "sk-" + "A" * 43
    info = info_body()
    info["key"] = "e225b2cb10b8cc69c7ed78e996b9a9cef0a8c6e13ab86a84d3e8411d9dcefce4"
    assert run(ECHO_KEY_JQ, injection_input(200, info)) is None
    updated = copy.deepcopy(sample("05")["body"])
    updated["key"] = updated["token"]  # we name keys by token in /key/update
    assert run(ECHO_KEY_JQ, injection_input(200, updated)) is None
    assert run(ECHO_KEY_JQ, injection_input(400, sample("15")["body"])) is None
    assert run(ECHO_KEY_JQ, injection_input(0, "")) is None
    assert run(ECHO_KEY_JQ, injection_input(200, sample("16")["body"])) is None


def test_generate_body_puts_create_only_fields_and_the_placeholder() -> None:
    spec = {**SPEC, "duration": "30d"}
    ctx = context(spec, 0, None)
    program = '(.payload.body.fields + .payload.body.createOnly + {"key": "{{ s:ns:key }}"})'
    body = run(program, ctx)
    assert body["duration"] == "30d"
    assert body["key"] == "{{ s:ns:key }}"
    assert body["max_budget"] == 10.0
    update = run('(.payload.body.fields + {"key": .payload.body.token})', ctx)
    assert "duration" not in update
    assert update["key"] == ctx["payload"]["body"]["token"]


# Answers a hostile or broken proxy can give. provider-http resolves secret
# placeholders in them before the checks run, so a check that raised on one
# would put gojq's error (which previews the value) into the Request's status.
_DEEP: Any = "x"
for _ in range(200):
    _DEEP = {"info": _DEEP}
HOSTILE_INFO: dict[str, Any] = {
    "info is a string": {"info": "resolved-secret-value"},
    "info is a list": {"info": ["resolved-secret-value"]},
    "info is a number": {"info": 1e308},
    "models is a string": {"info": {"models": "resolved-secret-value"}},
    "models is an object": {"info": {"models": {"a": 1}}},
    "models holds mixed types": {"info": {"models": [1, "a", None, {"b": []}]}},
    "metadata is a string": {"info": {"metadata": "resolved-secret-value"}},
    "metadata is a list": {"info": {"metadata": [{"purpose": "e2e"}]}},
    "metadata.tags is a string": {"info": {"metadata": {"tags": "x"}}},
    "tags is a number": {"info": {"tags": 5}},
    "budget table is a string": {"info": {"litellm_budget_table": "resolved-secret-value"}},
    "budget table is a list": {"info": {"litellm_budget_table": [1]}},
    "blocked is a string": {"info": {"blocked": "resolved-secret-value"}},
    "status is an object": {"info": {"status": {"deleted": True}}},
    "deeply nested": _DEEP,
    "body is a list": ["resolved-secret-value"],
    "body is a number": 42,
    "body is null": None,
}
HOSTILE_SPEC = {**SPEC, "softBudget": "5", "blocked": False, "tags": ["t"], "rpmLimit": 1}


@pytest.mark.parametrize("code", [200, 404, 500])
@pytest.mark.parametrize("case", sorted(HOSTILE_INFO))
def test_check_programs_are_total(case: str, code: int) -> None:
    ctx = context(HOSTILE_SPEC, code, HOSTILE_INFO[case])
    assert isinstance(run(EXPECTED_RESPONSE, ctx), bool), case
    assert isinstance(run(OBSERVE_IS_REMOVED, ctx), bool), case
    assert run(ECHO_KEY_JQ, injection_input(code, HOSTILE_INFO[case])) is None


@pytest.mark.parametrize(
    "response",
    [None, "resolved-secret-value", [1], {"statusCode": "200", "body": {"info": "x"}}],
)
def test_check_programs_are_total_on_any_response_shape(response: Any) -> None:
    ctx = context(HOSTILE_SPEC, 200, None)
    ctx["response"] = response
    assert isinstance(run(EXPECTED_RESPONSE, ctx), bool)
    assert isinstance(run(OBSERVE_IS_REMOVED, ctx), bool)


def test_hostile_info_counts_as_drift_not_as_up_to_date() -> None:
    # A proxy answering nonsense gets an UPDATE (which it may refuse), never a
    # silent "up to date" that would hide drift.
    body = HOSTILE_INFO["models is a string"]
    assert run(EXPECTED_RESPONSE, context(HOSTILE_SPEC, 200, body)) is False


@pytest.mark.parametrize(
    ("expires", "up_to_date"),
    [
        pytest.param(None, False, id="no-expiry-yet-so-update-sends-it"),
        pytest.param("2026-12-06T01:00:00+00:00", True, id="an-expiry-is-set-so-never-again"),
    ],
)
def test_a_retired_key_is_given_an_expiry_once(expires: str | None, up_to_date: bool) -> None:
    ctx = context(SPEC, 200, with_info(expires=expires))
    ctx["payload"]["body"]["updateOnly"] = {"duration": "3600s"}
    assert run(EXPECTED_RESPONSE, ctx) is up_to_date
    del ctx["payload"]["body"]["updateOnly"]
    assert run(EXPECTED_RESPONSE, ctx) is True

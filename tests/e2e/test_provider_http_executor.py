"""Unit tests for the provider-http Request executor harness (no network)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.provider_http import (
    CREATE_FAILED,
    CREATE_SUCCEEDED,
    FINALIZER,
    MappingNotFoundError,
    ProviderError,
    ProviderHTTP,
    get_mapping,
    go_json,
    jq_first,
)

BASE = "http://api.test"
Answer = tuple[int, Any] | Exception | Callable[[httpx.Request], "Answer"]


class Api:
    """A fake HTTP API: routes (method, path) -> answer; a list is served in order."""

    def __init__(self, routes: dict[tuple[str, str], Answer | list[Answer]] | None = None):
        self.routes: dict[tuple[str, str], Any] = dict(routes or {})
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.calls.append(request)
        answer = self.routes.get((request.method, request.url.path), (404, {"detail": "nope"}))
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if callable(answer) and not isinstance(answer, Exception):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        code, body = answer
        text = body if isinstance(body, str) else json.dumps(body)
        return httpx.Response(code, text=text, headers={"Content-Type": "application/json"})

    def seen(self) -> list[tuple[str, str]]:
        return [(c.method, c.url.path) for c in self.calls]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_executor(
    api: Api,
    secrets: dict[tuple[str, str], dict[str, str]] | None = None,
    clock: Clock | None = None,
) -> ProviderHTTP:
    client = httpx.Client(transport=httpx.MockTransport(api))
    return ProviderHTTP({} if secrets is None else secrets, client, clock=clock or Clock())


def mapping(action: str, method: str | None, path: str, body: str = "") -> dict[str, Any]:
    m: dict[str, Any] = {"action": action, "url": f'.payload.baseUrl + "{path}"'}
    if method:
        m["method"] = method
    if body:
        m["body"] = body
    return m


def make_request(**for_provider: Any) -> dict[str, Any]:
    fp: dict[str, Any] = {
        "payload": {"baseUrl": BASE, "body": json.dumps({"name": "k1", "budget": 5})},
        "mappings": [
            mapping("CREATE", "POST", "/items", "{name: .payload.body.name}"),
            mapping("OBSERVE", "GET", "/items/k1"),
            mapping("UPDATE", "PUT", "/items/k1", "{budget: .payload.body.budget}"),
            mapping("REMOVE", "DELETE", "/items/k1"),
        ],
    }
    fp.update(for_provider)
    return {
        "apiVersion": "http.m.crossplane.io/v1alpha2",
        "kind": "Request",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"forProvider": fp},
    }


def created(request: dict[str, Any], body: Any = None, method: str = "GET") -> dict[str, Any]:
    """Put the request in the state after a successful observation."""
    request["status"] = {
        "response": {"statusCode": 200, "body": json.dumps(body or {"name": "k1", "budget": 5})},
        "requestDetails": {"method": method, "url": f"{BASE}/items/k1"},
    }
    return request


def condition(request: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in request["status"]["conditions"] if c["type"] == ctype)


# -- mapping lookup (mapping.go:19-24,50-65) -----------------------------------------------------
@pytest.mark.parametrize(
    ("mappings", "action", "url", "method"),
    [
        pytest.param(
            [{"action": "CREATE", "url": "a"}], "CREATE", "a", "POST", id="action-default"
        ),
        pytest.param(
            [{"action": "REMOVE", "url": "a"}], "REMOVE", "a", "DELETE", id="remove-default"
        ),
        pytest.param([{"method": "GET", "url": "g"}], "OBSERVE", "g", "GET", id="by-method"),
        pytest.param(
            [{"method": "POST", "url": "m"}, {"action": "CREATE", "method": "PUT", "url": "x"}],
            "CREATE",
            "x",
            "PUT",
            id="action-beats-method",
        ),
        pytest.param(
            [
                {"action": "UPDATE", "method": "POST", "url": "upd"},
                {"method": "POST", "url": "gen"},
            ],
            "CREATE",
            "upd",
            "POST",
            id="post-only-trap-picks-first-post",
        ),
    ],
)
def test_get_mapping(mappings: list[dict[str, Any]], action: str, url: str, method: str) -> None:
    found = get_mapping({"mappings": mappings}, action)
    assert (found["url"], found["method"]) == (url, method)


def test_get_mapping_missing_raises() -> None:
    with pytest.raises(MappingNotFoundError, match="REMOVE or DELETE mapping doesn't exist"):
        get_mapping({"mappings": [{"action": "CREATE", "url": "a"}]}, "REMOVE")


def test_default_method_is_sent_and_missing_mapping_is_a_silent_noop() -> None:
    api = Api({("POST", "/items"): (201, {"id": "k1"})})
    ex = make_executor(api)
    request = make_request(mappings=[mapping("CREATE", None, "/items")])
    assert ex.create(request) is True
    assert ex.remove(request) is False  # deployaction.go:15-19
    assert api.seen() == [("POST", "/items")]
    assert any("REMOVE or DELETE mapping doesn't exist" in line for line in ex.log)


def test_missing_observe_mapping_is_an_observe_error() -> None:
    ex = make_executor(Api())
    request = make_request(mappings=[mapping("CREATE", "POST", "/items")])
    result = ex.reconcile(request)
    assert result.error is not None
    assert "OBSERVE or GET mapping" in result.error
    assert condition(request, "Synced")["status"] == "False"


# -- templating and placeholders (request_generator.go, parser.go) ------------------------------
def test_placeholders_resolved_in_body_and_headers_not_url_and_kept_in_request_details() -> None:
    api = Api({("POST", "/items"): (201, {"id": "k1"})})
    ex = make_executor(api, {("ns", "creds"): {"token": "s3cret"}})
    request = make_request(
        headers={
            "Authorization": ["Bearer {{ creds:ns:token }}"],
            "X-Missing": ["{{creds:ns:nokey}}"],
            "Content-Type": ["application/json"],
            "X-Name": [".payload.body.name"],
        },
        mappings=[
            {
                "action": "CREATE",
                "url": '.payload.baseUrl + "/items?t={{creds:ns:token}}"',
                "body": '{name: .payload.body.name, pw: "{{ creds:ns:token }}"}',
            },
            mapping("OBSERVE", "GET", "/items/k1"),
        ],
    )
    ex.create(request)
    sent = api.calls[0]
    assert json.loads(sent.content) == {"name": "k1", "pw": "s3cret"}
    assert sent.headers["authorization"] == "Bearer s3cret"
    assert sent.headers["x-missing"] == ""  # missing key -> empty string (parser.go:61-64)
    assert sent.headers["content-type"] == "application/json"  # jq fails -> literal
    assert sent.headers["x-name"] == "k1"  # jq succeeds -> its string
    assert "s3cret" not in str(sent.url)
    assert "{{creds:ns:token}}" in str(httpx.URL(str(sent.url)).params["t"])
    details = request["status"]["requestDetails"]
    assert details["url"] == f"{BASE}/items?t={{{{creds:ns:token}}}}"
    assert details["body"] == '{"name":"k1","pw":"{{ creds:ns:token }}"}'
    assert details["headers"]["Authorization"] == ["Bearer {{ creds:ns:token }}"]
    assert "s3cret" not in json.dumps(request["status"])


def test_missing_secret_fails_the_action_and_marks_create_failed() -> None:
    api = Api({("POST", "/items"): (201, {})})
    ex = make_executor(api)
    request = make_request(headers={"Authorization": ["Bearer {{ nope:ns:token }}"]})
    with pytest.raises(ProviderError, match="failed to patch secret"):
        ex.create(request)
    result = ex.reconcile(request)  # OBSERVE templating fails while not created -> Create
    assert (result.action, result.error is not None) == ("create", True)
    assert CREATE_FAILED in request["metadata"]["annotations"]
    assert api.calls == []


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        pytest.param({"X-N": ["42"]}, "failed to parse result on jq query: 42", id="number"),
        pytest.param({"X-N": ["null"]}, "failed to parse result on jq query: None", id="null"),
    ],
)
def test_header_value_that_evaluates_to_a_non_string_is_an_error(
    headers: dict[str, list[str]], error: str
) -> None:
    ex = make_executor(Api())
    with pytest.raises(ProviderError, match=error):
        ex.create(make_request(headers=headers))


def test_body_whitespace_is_collapsed_so_a_jq_comment_eats_the_rest() -> None:
    ex = make_executor(Api({("POST", "/items"): (201, {})}))
    body = "{name: .payload.body.name, # a comment\n budget: 1}"
    request = make_request(mappings=[mapping("CREATE", "POST", "/items", body)])
    with pytest.raises(ProviderError, match="jq error"):
        ex.create(request)


def test_object_body_is_go_json_sorted_and_html_escaped() -> None:
    api = Api({("POST", "/items"): (201, {})})
    ex = make_executor(api)
    body = '{z: "<a&b>", a: 1.0, m: 0.000015}'
    ex.create(make_request(mappings=[mapping("CREATE", "POST", "/items", body)]))
    assert api.calls[0].content == b'{"a":1,"m":0.000015,"z":"\\u003ca\\u0026b\\u003e"}'


def test_null_request_falls_back_to_status_response_and_is_still_sent() -> None:
    # request_generator.go:84-94 with the namespaced "cache" being status.response.
    api = Api({("GET", "/items/null"): (200, {"other": 2})})
    ex = make_executor(api)
    observe = {
        "action": "OBSERVE",
        "url": '.payload.baseUrl + "/items/" + (.response.body.id | tostring)',
    }
    request = created(make_request(mappings=[observe]), body={"other": 1})
    assert ex.observe(request).exists is True
    assert api.seen() == [("GET", "/items/null")]
    assert "cache" not in request["status"]  # status.go:102-111: invalid -> no cache write


def test_masked_response_value_is_resolved_back_for_templating_and_leaks_into_url() -> None:
    api = Api(
        {
            ("POST", "/items"): (201, {"key": "sk-abc"}),
            ("GET", "/info"): (200, {"info": {}}),
        }
    )
    ex = make_executor(api)
    request = make_request(
        mappings=[
            mapping("CREATE", "POST", "/items", "{name: .payload.body.name}"),
            {"action": "OBSERVE", "url": '.payload.baseUrl + "/info?key=" + .response.body.key'},
        ],
        secretInjectionConfigs=[
            {
                "secretRef": {"name": "keys", "namespace": "ns"},
                "keyMappings": [
                    {
                        "secretKey": "k",
                        "responseJQ": ".body.key",
                        "missingFieldStrategy": "preserve",
                    }
                ],
            }
        ],
    )
    ex.create(request)
    assert request["status"]["response"]["body"] == '{"key": "{{keys:ns:k}}"}'
    ex.observe(request)
    assert api.calls[-1].url.params["key"] == "sk-abc"  # patch.go:25-46
    assert "sk-abc" in request["status"]["requestDetails"]["url"]  # URL is stored in clear


# -- Observe and the managed reconciler ----------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param((404, {"detail": "no"}), id="404"),
        pytest.param((401, {"detail": "auth"}), id="401"),
        pytest.param((500, "boom"), id="500"),
        pytest.param(httpx.ConnectError("connection refused"), id="transport-error"),
    ],
)
def test_non_2xx_before_creation_means_create(answer: Answer) -> None:
    api = Api({("GET", "/items/k1"): answer, ("POST", "/items"): (201, {"id": "k1"})})
    ex = make_executor(api)
    request = make_request()
    result = ex.reconcile(request)
    assert (result.action, result.exists, result.error) == ("create", False, None)
    assert api.seen() == [("GET", "/items/k1"), ("POST", "/items")]
    assert FINALIZER in request["metadata"]["finalizers"]
    assert CREATE_SUCCEEDED in request["metadata"]["annotations"]


def test_404_after_creation_is_removed_by_default() -> None:
    api = Api({("GET", "/items/k1"): (404, {}), ("POST", "/items"): (201, {})})
    ex = make_executor(api)
    result = ex.reconcile(created(make_request()))
    assert (result.action, result.exists) == ("create", False)


@pytest.mark.parametrize(
    ("body", "exists"),
    [
        pytest.param({"name": "k1", "blocked": True}, False, id="removed"),
        pytest.param({"name": "k1", "blocked": False}, True, id="present"),
    ],
)
def test_custom_is_removed_check(body: dict[str, Any], exists: bool) -> None:
    api = Api({("GET", "/items/k1"): (200, body), ("POST", "/items"): (201, {})})
    ex = make_executor(api)
    check = {"type": "CUSTOM", "logic": ".response.body.blocked == true"}
    request = created(make_request(isRemovedCheck=check))
    assert ex.observe(request).exists is exists
    result = ex.reconcile(request)
    assert result.action == ("create" if not exists else "update")


def test_custom_check_must_return_a_boolean() -> None:
    ex = make_executor(Api({("GET", "/items/k1"): (200, {"name": "k1"})}))
    request = created(make_request(isRemovedCheck={"type": "CUSTOM", "logic": ".response.body"}))
    with pytest.raises(
        ProviderError, match=re.escape("isRemovedCheck.Logic JQ filter should return a boolean")
    ):
        ex.observe(request)


@pytest.mark.parametrize(
    ("logic", "action"),
    [
        pytest.param(".response.body.budget == .payload.body.budget", "none", id="true"),
        pytest.param(".response.body.budget == 99", "update", id="false"),
    ],
)
def test_custom_expected_response_check(logic: str, action: str) -> None:
    api = Api({("GET", "/items/k1"): (200, {"budget": 5}), ("PUT", "/items/k1"): (200, {})})
    ex = make_executor(api)
    request = created(make_request(expectedResponseCheck={"type": "CUSTOM", "logic": logic}))
    result = ex.reconcile(request)
    assert result.action == action
    assert (("PUT", "/items/k1") in api.seen()) is (action == "update")


@pytest.mark.parametrize(
    ("observed", "mappings", "action"),
    [
        pytest.param({"x": 1}, None, "none", id="no-update-mapping"),
        pytest.param({"budget": 5, "extra": 1}, "default", "none", id="subset-matches"),
        pytest.param({"budget": 6}, "default", "update", id="value-differs"),
        pytest.param({"info": {"budget": 5}}, "default", "update", id="nested-never-matches"),
    ],
)
def test_default_expected_response_check(
    observed: dict[str, Any], mappings: str | None, action: str
) -> None:
    api = Api({("GET", "/items/k1"): (200, observed), ("PUT", "/items/k1"): (200, {})})
    ex = make_executor(api)
    request = make_request()
    if mappings is None:
        request["spec"]["forProvider"]["mappings"] = request["spec"]["forProvider"]["mappings"][:2]
    result = ex.reconcile(created(request))
    assert (result.action, result.exists, result.up_to_date) == (action, True, action == "none")


def test_default_check_errors_when_desired_is_json_but_response_is_not() -> None:
    ex = make_executor(Api({("GET", "/items/k1"): (200, "plain text")}))
    with pytest.raises(ProviderError, match="response body is not a valid JSON string"):
        ex.observe(created(make_request()))


def test_observe_500_after_creation_still_sets_ready_and_counts_a_failure() -> None:
    api = Api({("GET", "/items/k1"): (500, {"error": "x"})})
    ex = make_executor(api)
    request = created(make_request(mappings=make_request()["spec"]["forProvider"]["mappings"][:2]))
    assert ex.observe(request).exists is True
    assert condition(request, "Ready")["status"] == "True"  # request.go:227
    assert request["status"]["failed"] == 1
    assert request["status"]["response"]["statusCode"] == 500


def test_failed_post_update_then_failing_observe_creates_a_duplicate() -> None:
    # §1.6: a POST UPDATE answering 5xx makes objectNotCreated true again.
    api = Api(
        {
            ("GET", "/items/k1"): [(200, {"budget": 1}), (502, "bad gateway")],
            ("POST", "/items/k1/update"): (500, {"error": "x"}),
            ("POST", "/items"): (201, {"id": "k1"}),
        }
    )
    ex = make_executor(api)
    fp = make_request()["spec"]["forProvider"]
    fp["mappings"][2] = mapping("UPDATE", "POST", "/items/k1/update", "{budget: 5}")
    request = created(make_request(mappings=fp["mappings"]))
    first = ex.reconcile(request)
    assert (first.action, first.error) == ("update", None)  # 5xx is not an error
    assert request["status"]["failed"] == 1
    assert request["status"]["requestDetails"]["method"] == "POST"
    second = ex.reconcile(request)
    assert (second.action, second.exists) == ("create", False)
    assert api.seen()[-1] == ("POST", "/items")


def test_4xx_on_create_is_not_an_error_and_counts_a_failure() -> None:
    api = Api({("POST", "/items"): (409, {"error": "exists"})})
    ex = make_executor(api)
    request = make_request()
    result = ex.reconcile(request)
    assert (result.action, result.error) == ("create", None)
    assert request["status"]["failed"] == 1
    assert "error" not in request["status"]
    assert request["status"]["response"]["statusCode"] == 409
    assert condition(request, "Synced")["status"] == "True"
    assert CREATE_SUCCEEDED in request["metadata"]["annotations"]


def test_allowed_status_codes_are_not_failures() -> None:
    ex = make_executor(Api({("POST", "/items"): (409, {})}))
    request = make_request(allowedStatusCodes=[409])
    ex.create(request)
    assert "failed" not in request["status"]


def test_transport_error_after_creation_is_raised_and_recorded() -> None:
    api = Api({("GET", "/items/k1"): httpx.ConnectError("connection refused")})
    ex = make_executor(api)
    with_update = created(make_request())  # DEFAULT check fails first on the empty body
    with pytest.raises(ProviderError, match="response body is not a valid JSON string"):
        ex.observe(with_update)
    assert "failed" not in with_update["status"]
    request = created(make_request(mappings=make_request()["spec"]["forProvider"]["mappings"][:2]))
    with pytest.raises(
        ProviderError, match=re.escape('Get "http://api.test/items/k1": connection refused')
    ):
        ex.observe(request)
    assert request["status"]["failed"] == 1
    assert "connection refused" in request["status"]["error"]
    assert request["status"]["response"]["statusCode"] == 200  # unchanged on transport error
    result = ex.reconcile(request)
    assert result.error is not None
    assert result.action == "none"
    assert condition(request, "Synced")["status"] == "False"


def test_transport_error_on_create_fails_the_create() -> None:
    api = Api({("POST", "/items"): httpx.ConnectTimeout("timed out")})
    ex = make_executor(api)
    request = make_request()
    result = ex.reconcile(request)
    assert result.action == "create"
    assert result.error is not None
    assert "timed out" in result.error
    assert CREATE_FAILED in request["metadata"]["annotations"]
    assert CREATE_SUCCEEDED not in request["metadata"]["annotations"]


def test_204_keeps_the_previous_body() -> None:
    ex = make_executor(Api({("PUT", "/items/k1"): (204, "")}))
    request = created(make_request(), body={"budget": 5})
    ex.update(request)
    assert request["status"]["response"]["statusCode"] == 204
    assert json.loads(request["status"]["response"]["body"]) == {"budget": 5}
    assert request["status"]["requestDetails"]["method"] == "PUT"


# -- deletion and the create grace period --------------------------------------------------------
def test_deleting_and_exists_sends_remove_then_finalizer_is_removed_when_gone() -> None:
    api = Api(
        {
            ("GET", "/items/k1"): [(200, {"budget": 5}), (404, {})],
            ("DELETE", "/items/k1"): (200, {"key": "sk-new"}),
        }
    )
    secrets = {("ns", "keys"): {"k": "sk-old"}}
    ex = make_executor(api, secrets)
    injection = [
        {
            "secretRef": {"name": "keys", "namespace": "ns"},
            "keyMappings": [
                {"secretKey": "k", "responseJQ": ".body.key", "missingFieldStrategy": "preserve"}
            ],
        }
    ]
    request = created(make_request(secretInjectionConfigs=injection))
    request["metadata"]["finalizers"] = [FINALIZER]
    first = ex.reconcile(request, deleting=True)
    assert (first.action, first.finalizer_removed) == ("delete", False)
    assert request["metadata"]["finalizers"] == [FINALIZER]
    assert secrets[("ns", "keys")]["k"] == "sk-old"  # no injection on REMOVE while deleting
    second = ex.reconcile(request)  # deletionTimestamp is sticky
    assert (second.action, second.finalizer_removed) == ("none", True)
    assert request["metadata"]["finalizers"] == []
    assert api.seen() == [("GET", "/items/k1"), ("DELETE", "/items/k1"), ("GET", "/items/k1")]


def test_deleting_without_remove_mapping_never_clears_the_finalizer() -> None:
    api = Api({("GET", "/items/k1"): (200, {"budget": 5})})
    ex = make_executor(api)
    request = created(make_request(mappings=make_request()["spec"]["forProvider"]["mappings"][:3]))
    request["metadata"]["finalizers"] = [FINALIZER]
    for _ in range(2):
        result = ex.reconcile(request, deleting=True)
        assert (result.action, result.finalizer_removed, result.error) == ("delete", False, None)
    assert all(method == "GET" for method, _ in api.seen())
    assert request["metadata"]["finalizers"] == [FINALIZER]


def test_create_grace_period_of_30_seconds() -> None:
    api = Api({("GET", "/items/k1"): (404, {}), ("POST", "/items"): (201, {"id": "k1"})})
    clock = Clock()
    ex = make_executor(api, clock=clock)
    request = make_request()
    assert ex.reconcile(request).action == "create"
    clock.now += 29.0
    waiting = ex.reconcile(request)  # created (201 stored), 404 -> removed, but within grace
    assert (waiting.action, waiting.exists) == ("wait", False)
    clock.now += 2.0
    assert ex.reconcile(request).action == "create"
    assert api.seen().count(("POST", "/items")) == 2


# -- secretInjectionConfigs (secret_patcher.go) --------------------------------------------------
@pytest.mark.parametrize(
    ("strategy", "after_observe"),
    [
        pytest.param("preserve", {"apiKey": "sk-abc", "id": "k1"}, id="preserve"),
        pytest.param("setEmpty", {"apiKey": "", "id": "k1"}, id="setEmpty"),
        pytest.param("delete", {"id": "k1"}, id="delete"),
        pytest.param(None, {"id": "k1"}, id="crd-default-delete"),
    ],
)
def test_injection_strategies_and_masking(
    strategy: str | None, after_observe: dict[str, str]
) -> None:
    api = Api(
        {
            ("POST", "/items"): (201, {"key": "sk-abc", "id": "k1", "echo": "sk-abc"}),
            ("GET", "/items/k1"): (200, {"id": "k1", "budget": 5}),
        }
    )
    secrets: dict[tuple[str, str], dict[str, str]] = {}
    ex = make_executor(api, secrets)
    key_mapping: dict[str, Any] = {"secretKey": "apiKey", "responseJQ": ".body.key"}
    if strategy:
        key_mapping["missingFieldStrategy"] = strategy
    config = {
        "secretRef": {"name": "keys", "namespace": "ns"},
        "keyMappings": [key_mapping, {"secretKey": "id", "responseJQ": ".body.id"}],
        "metadata": {"labels": {"app": "x"}},
    }
    request = make_request(secretInjectionConfigs=[config])
    ex.create(request)
    assert secrets[("ns", "keys")] == {"apiKey": "sk-abc", "id": "k1"}
    body = request["status"]["response"]["body"]
    assert "sk-abc" not in body
    assert json.loads(body)["key"] == "{{keys:ns:apiKey}}"
    assert json.loads(body)["echo"] == "{{keys:ns:apiKey}}"  # every quoted occurrence
    assert json.loads(body)["id"] == "{{keys:ns:id}}"
    assert ex.secret_metadata[("ns", "keys")]["labels"] == {"app": "x"}
    ex.observe(request)  # injection runs after every OBSERVE not judged removed
    assert secrets[("ns", "keys")] == after_observe


@pytest.mark.parametrize(
    ("response_jq", "expected"),
    [
        pytest.param(".body.n", "1.5", id="number"),
        pytest.param(".body.flag", "true", id="bool"),
        pytest.param(".body.obj", '{"a":1,"b":"x"}', id="object-sorted"),
        pytest.param(".body.empty", "", id="empty-string-is-present"),
        pytest.param(".body.list", None, id="array-is-missing"),
        pytest.param(".body.none", None, id="null-is-missing"),
        pytest.param(".body.x | select(false)", None, id="no-output-is-missing"),
        pytest.param(".statusCode", "201", id="status-code"),
    ],
)
def test_injection_value_conversion(response_jq: str, expected: str | None) -> None:
    body = {
        "n": 1.5,
        "flag": True,
        "obj": {"b": "x", "a": 1},
        "empty": "",
        "list": [1],
        "none": None,
    }
    secrets: dict[tuple[str, str], dict[str, str]] = {}
    ex = make_executor(Api({("POST", "/items"): (201, body)}), secrets)
    km = {"secretKey": "v", "responseJQ": response_jq, "missingFieldStrategy": "delete"}
    config = {"secretRef": {"name": "s", "namespace": "ns"}, "keyMappings": [km]}
    ex.create(make_request(secretInjectionConfigs=[config]))
    assert secrets[("ns", "s")].get("v") == expected


# -- jq engine compatibility with gojq (module docstring) ----------------------------------------
@pytest.mark.parametrize(
    ("program", "data", "expected"),
    [
        pytest.param("$ENV", {}, {}, id="env-var-empty"),
        pytest.param("env", {}, {}, id="env-empty"),
        pytest.param('"sk-1" | ltrimstr("sk-")', {}, "1", id="ltrimstr"),
        pytest.param('"a.yaml" | rtrimstr(".yaml")', {}, "a", id="rtrimstr"),
        pytest.param("tojson", {"b": 1, "a": 2}, '{"a":2,"b":1}', id="sorted-input-keys"),
        pytest.param(".debug", {"debug": 1}, 1, id="field-named-like-builtin"),
        pytest.param("tostring", 1.0, "1", id="float64-integral"),
    ],
)
def test_jq_matches_gojq(program: str, data: Any, expected: Any) -> None:
    assert jq_first(program, data) == expected


@pytest.mark.parametrize(
    "program",
    [
        pytest.param('.missing | ltrimstr("sk-")', id="ltrimstr-null"),
        pytest.param('1 | rtrimstr("x")', id="rtrimstr-number"),
        pytest.param("$__loc__", id="loc"),
        pytest.param("keys_unsorted", id="keys-unsorted"),
        pytest.param("empty", id="no-output"),
        pytest.param(".a.b", id="index-string"),
    ],
)
def test_jq_errors_like_gojq(program: str) -> None:
    with pytest.raises(ProviderError):
        jq_first(program, {"a": "text"})


def test_go_json_floats() -> None:
    assert go_json([1e21, 1e-7, 2.5, 3.0, 100]) == "[1e+21,1e-7,2.5,3,100]"

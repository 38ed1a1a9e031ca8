"""RunFunction over real gRPC, as Crossplane calls it.

Named cases compare the whole response with a reviewed golden file in
tests/testdata/fn/<case>.yaml (`UPDATE_GOLDEN=1` rewrites them; review the
diff). Cases whose key is random by design assert properties instead.
"""

from __future__ import annotations

import base64
import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format

from function.fn import FunctionRunner, run
from function.keys.secrets import is_key, token_of
from tests.conftest import load_example
from tests.fixtures import (
    FIXED_KEY,
    legacy_xr,
    observed_request,
    observed_secret,
    request_resource_name,
)
from tests.grpc_harness import FunctionServer, make_request

GOLDEN = Path(__file__).parent / "testdata" / "fn"


def _xr(example: str = "virtualkey/virtualkey.yaml", **spec: Any) -> dict[str, Any]:
    xr = copy.deepcopy(load_example(example))
    xr["spec"].update(spec)
    return xr


_STEADY = {"key": observed_secret(), request_resource_name(): observed_request()}

GOLDEN_CASES: dict[str, dict[str, Any]] = {
    "steady-state-available": {"xr": _xr(), "observed": _STEADY},
    "advanced-example": {
        "xr": _xr("virtualkey/virtualkey-advanced.yaml"),
        "observed": {
            "key": observed_secret(name="research-key-litellm-key"),
            request_resource_name(): observed_request(),
        },
    },
    "every-option-explicit-connection": {
        "xr": _xr("virtualkey/virtualkey-explicit.yaml", blocked=False, userID="u-1", teamID="t-1"),
        "observed": {"key": observed_secret(name="batch-jobs-litellm-key")},
        "input": {
            "apiVersion": "litellm.fn.crossplane.io/v1beta1",
            "kind": "Input",
            "providerConfigRef": {"kind": "ProviderConfig", "name": "litellm"},
            "requestTimeout": "45s",
        },
    },
    "legacy-claim": {"xr": legacy_xr(), "observed": _STEADY},
    "master-key-refused": {
        "xr": _xr(),
        "observed": {
            "key": observed_secret(),
            request_resource_name(): observed_request(
                code=401,
                body={"error": {"message": "Authentication Error, Invalid API key provided."}},
            ),
        },
    },
    "invalid-update-is-fatal": {
        "xr": _xr(maxBudget="ten dollars"),
        "observed": _STEADY,
    },
}


def _as_plain(rsp: fnv1.RunFunctionResponse) -> dict[str, Any]:
    plain: dict[str, Any] = json_format.MessageToDict(rsp, preserving_proto_field_name=True)
    return plain


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden(function_server: FunctionServer, case: str) -> None:
    spec = GOLDEN_CASES[case]
    rsp = function_server.run(
        make_request(spec["xr"], spec["observed"], spec.get("input"), tag=case)
    )
    got = _as_plain(rsp)
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(yaml.safe_dump(got, sort_keys=True, width=100))
    want = yaml.safe_load(path.read_text())
    assert got == want


def test_first_run_makes_a_key_and_names_the_request_by_its_token(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    rsp = function_server.run(make_request(seed_xr))
    assert not rsp.results
    secret = resource.struct_to_dict(rsp.desired.resources["key"].resource)
    key = base64.b64decode(secret["data"]["key"]).decode()
    assert is_key(key)
    token = token_of(key)
    assert set(rsp.desired.resources) == {"key", f"request-{token[:10]}"}
    request = resource.struct_to_dict(rsp.desired.resources[f"request-{token[:10]}"].resource)
    assert json.loads(request["spec"]["forProvider"]["payload"]["body"])["token"] == token
    assert rsp.desired.resources["key"].ready == fnv1.READY_FALSE
    assert rsp.conditions[0].reason == "Creating"


def test_two_first_runs_make_different_keys(seed_xr: dict[str, Any]) -> None:
    with FunctionServer(FunctionRunner(cache_bytes=0)) as server:
        keys = {
            resource.struct_to_dict(
                server.run(make_request(seed_xr)).desired.resources["key"].resource
            )["data"]["key"]
            for _ in range(5)
        }
    assert len(keys) == 5


def test_key_is_stable_over_1000_runs(seed_xr: dict[str, Any]) -> None:
    # Without the response cache, so that every run composes from scratch.
    req = make_request(seed_xr, _STEADY)
    with FunctionServer(FunctionRunner(cache_bytes=0)) as server:
        first = server.run(req)
        blob = first.desired.SerializeToString(deterministic=True)
        for _ in range(999):
            again = server.run(req)
            assert again.desired.SerializeToString(deterministic=True) == blob
    data = resource.struct_to_dict(first.desired.resources["key"].resource)["data"]
    assert base64.b64decode(data["key"]).decode() == FIXED_KEY


@pytest.mark.parametrize(
    ("case", "observed"),
    [
        ("secret deleted", {request_resource_name(): observed_request()}),
        (
            "secret value replaced",
            {
                "key": observed_secret("sk-" + "B" * 43),
                request_resource_name(): observed_request(),
            },
        ),
        (
            "secret value malformed",
            {
                "key": {**observed_secret(), "data": {"key": "!!not base64!!"}},
                request_resource_name(): observed_request(),
            },
        ),
    ],
)
def test_lost_secret_rotates_to_a_fresh_key_and_drops_the_old_request(
    function_server: FunctionServer, seed_xr: dict[str, Any], case: str, observed: dict[str, Any]
) -> None:
    rsp = function_server.run(make_request(seed_xr, observed))
    secret = resource.struct_to_dict(rsp.desired.resources["key"].resource)
    key = base64.b64decode(secret["data"]["key"]).decode()
    assert is_key(key), case
    assert key not in (FIXED_KEY, "sk-" + "B" * 43), case
    # The old Request is no longer desired, so Crossplane deletes it and its
    # REMOVE deletes the old key; the new one is created under a new name.
    assert request_resource_name() not in rsp.desired.resources
    assert f"request-{token_of(key)[:10]}" in rsp.desired.resources
    warnings = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_WARNING]
    assert any("new key is being issued" in w for w in warnings), warnings


def test_secret_without_request_keeps_its_key(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    # The Request was deleted out of band: the same key comes back with it.
    rsp = function_server.run(make_request(seed_xr, {"key": observed_secret()}))
    assert request_resource_name() in rsp.desired.resources
    assert not rsp.results


def test_earlier_pipeline_steps_are_kept(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    req = make_request(seed_xr, _STEADY)
    resource.update(req.desired.resources["extra"], {"apiVersion": "v1", "kind": "ConfigMap"})
    resource.update(req.desired.composite, {"status": {"fromEarlierStep": "yes"}})
    rsp = function_server.run(req)
    assert "extra" in rsp.desired.resources
    status = resource.struct_to_dict(rsp.desired.composite.resource)["status"]
    assert status["fromEarlierStep"] == "yes"
    assert status["keySecretRef"] == "example-service-litellm-key"


def test_poller_fields_are_never_written(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    xr = copy.deepcopy(seed_xr)
    xr["status"] = {"currentSpend": "1.5", "isActive": True, "expiryDate": "2030-01-01T00:00:00Z"}
    rsp = function_server.run(make_request(xr, _STEADY))
    status = resource.struct_to_dict(rsp.desired.composite.resource)["status"]
    assert set(status) == {"keySecretRef", "tokenHash"}


def test_raw_key_appears_only_in_the_secret(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    rsp = function_server.run(make_request(seed_xr, _STEADY))
    encoded = base64.b64encode(FIXED_KEY.encode()).decode()
    plain = _as_plain(rsp)
    secret_data = plain["desired"]["resources"]["key"]["resource"]["data"]
    assert secret_data["key"] == encoded
    del secret_data["key"]
    text = json.dumps(plain)
    assert FIXED_KEY not in text
    assert encoded not in text
    assert "sk-" not in text.replace('startswith(\\"sk-\\")', "")
    request = plain["desired"]["resources"][request_resource_name()]["resource"]
    headers = request["spec"]["forProvider"]["headers"]
    # The master key is only ever named, as provider-http's placeholder.
    assert headers["Authorization"] == ["Bearer {{ litellm-example-secrets:litellm:masterkey }}"]
    # The key exists (observed Available): CREATE now only reads it, so a key an
    # admin deletes is never made again from the Secret.
    create = next(m for m in request["spec"]["forProvider"]["mappings"] if m["action"] == "CREATE")
    assert (create["method"], create.get("body")) == ("GET", None)
    assert "/key/info?key=" in create["url"]
    first = function_server.run(make_request(seed_xr, {"key": observed_secret()}))
    request = _as_plain(first)["desired"]["resources"][request_resource_name()]["resource"]
    create = next(m for m in request["spec"]["forProvider"]["mappings"] if m["action"] == "CREATE")
    assert "{{ example-service-litellm-key:team-a:key }}" in create["body"]


def test_repeated_requests_get_the_same_response_from_the_cache(seed_xr: dict[str, Any]) -> None:
    # Even a first run's random key stays the same until Crossplane applies it.
    req = make_request(seed_xr)
    one = len(run(req).SerializeToString()) + 32
    runner = FunctionRunner(cache_bytes=2 * one + one // 2)  # room for two responses
    with FunctionServer(runner) as server:
        first = server.run(req)
        assert server.run(req) == first
        other = make_request(seed_xr, {"key": observed_secret()})
        assert server.run(other) != first
        assert len(runner._cache) == 2
        server.run(make_request(seed_xr, _STEADY))
        assert len(runner._cache) == 2  # the least recently used one went
        assert server.run(req) != first  # it was the first one
        assert runner._cache.bytes <= runner.cache_bytes
    uncached = FunctionRunner(cache_bytes=0)
    with FunctionServer(uncached) as server:
        a, b = server.run(make_request(seed_xr)), server.run(make_request(seed_xr))
        assert a.desired.resources["key"] != b.desired.resources["key"]
        assert not uncached._cache


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"error": ' * 50_000 + "1" + "}" * 50_000,
        "x" * 2_000_000,
        "\udcff not text",
    ],
    ids=["deep list", "deep object", "huge", "bad unicode"],
)
def test_any_stored_answer_is_read_without_a_crash(
    function_server: FunctionServer, seed_xr: dict[str, Any], body: str
) -> None:
    request = observed_request(code=500)
    request["status"]["response"]["body"] = body.encode("utf-8", "surrogatepass").decode(
        "utf-8", "replace"
    )
    observed = {"key": observed_secret(), request_resource_name(): request}
    rsp = function_server.run(make_request(seed_xr, observed))
    assert [r.severity for r in rsp.results] == [fnv1.SEVERITY_WARNING]
    assert rsp.conditions[0].reason == "ProxyError"
    assert len(rsp.desired.resources) == 2

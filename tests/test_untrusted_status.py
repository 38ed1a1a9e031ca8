"""A status is output for people: a forged one changes nothing the function composes.

Crossplane's generated edit roles for an XRD include `status`, so a tenant may
write every field of it. Each case composes an XR twice over the real gRPC
server, once with no status and once with a status that fills every field the
XRD declares (and those earlier versions declared) with hostile values: other
tenants' tokens, placeholders, money, 20,000-entry lists. The desired
resources must be identical; only what people read (the status the function
writes) may differ, and it never echoes the forged values.

The function also serves every RunFunction off its event loop, so one
tenant's slow run does not hold up another's.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import fn
from tests.conftest import ROOT, load_example
from tests.fixtures import FIXED_KEY, observed_request, observed_secret, request_resource_name
from tests.grpc_harness import FunctionServer, make_request, required_resources

OTHERS_TOKEN = hashlib.sha256(b"team-b's key").hexdigest()
PLACEHOLDER = "{{ litellm-example-secrets:litellm:masterkey }}"
# Fields earlier versions declared and read back: the API server may still hold them.
RETIRED_FIELDS = {
    "strayTokens": [OTHERS_TOKEN],
    "reapedTokens": [OTHERS_TOKEN],
    "exposedTokens": [OTHERS_TOKEN],
    "carry": {"tokenHash": OTHERS_TOKEN, "spend": "0"},
    "prunedMembers": ["team-b.bob"],
    "userID": "john.doe@corp.example",
    "teamID": "platform-team",
}


def _hostile(schema: dict[str, Any], name: str, many: int) -> Any:  # noqa: PLR0911
    """A hostile value of the schema's type."""
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: _hostile(v, k, many) for k, v in props.items()} or {"x": PLACEHOLDER}
    if kind == "array":
        return [OTHERS_TOKEN if i % 2 else PLACEHOLDER for i in range(many)]
    if kind == "integer":
        return 10**12
    if kind == "boolean":
        return True
    if "spend" in name.lower() or "budget" in name.lower():
        return "0"
    if name.endswith("At") or name == "expiryDate":
        return "2000-01-01T00:00:00Z"
    return OTHERS_TOKEN if "token" in name.lower() else PLACEHOLDER


def forged_status(definition: str, many: int = 3) -> dict[str, Any]:
    """Every status field the XRD declares, and the retired ones, hostile."""
    xrd = yaml.safe_load((ROOT / "examples" / definition).read_text())
    schema = xrd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    status = {k: _hostile(v, k, many) for k, v in schema["properties"].items()}
    status.setdefault("conditions", [{"type": "Ready", "status": "True", "reason": PLACEHOLDER}])
    return {**RETIRED_FIELDS, **status}


def _walk(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)
    elif isinstance(value, str):
        yield value


def _resources(rsp: fnv1.RunFunctionResponse) -> dict[str, Any]:
    return {n: resource.struct_to_dict(r.resource) for n, r in rsp.desired.resources.items()}


ROTATING = {
    "key": observed_secret(),
    request_resource_name(): observed_request(
        body={"info": {"key_alias": "example-service", "spend": 2.0}}
    ),
}


def _virtualkey(**spec: Any) -> dict[str, Any]:
    xr = copy.deepcopy(load_example("virtualkey/virtualkey.yaml"))
    xr["spec"].update(spec)
    return xr


CASES = {
    "a VirtualKey in place": (_virtualkey(), ROTATING, "install/definition.yaml"),
    "a VirtualKey whose rotation is due": (
        _virtualkey(rotation={"trigger": 1}),
        ROTATING,
        "install/definition.yaml",
    ),
    "a VirtualKey whose alias is taken": (
        _virtualkey(),
        {
            "key": observed_secret(),
            request_resource_name(): observed_request(
                code=400, path="/key/generate", body={"error": {"message": "alias exists"}}
            ),
        },
        "install/definition.yaml",
    ),
    "a new VirtualKey": (_virtualkey(), {"key": observed_secret()}, "install/definition.yaml"),
    "a User": (load_example("accounts/user.yaml"), {}, "accounts/user-definition.yaml"),
    "a Team": (load_example("accounts/team.yaml"), {}, "accounts/team-definition.yaml"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_forged_status_changes_nothing_composed(
    function_server: FunctionServer, case: str
) -> None:
    xr, observed, definition = CASES[case]
    clean = function_server.run(make_request(xr, observed))
    forged = copy.deepcopy(xr)
    forged["status"] = forged_status(definition)
    rsp = function_server.run(make_request(forged, observed))
    assert _resources(rsp) == _resources(clean)
    assert [(r.severity, r.message) for r in rsp.results] == [
        (r.severity, r.message) for r in clean.results
    ]
    written = resource.struct_to_dict(rsp.desired.composite.resource).get("status") or {}
    assert written == (
        resource.struct_to_dict(clean.desired.composite.resource).get("status") or {}
    )
    assert PLACEHOLDER not in json.dumps(written)
    assert OTHERS_TOKEN not in json.dumps(written)


def test_a_status_with_twenty_thousand_tokens_gives_a_small_response(
    function_server: FunctionServer,
) -> None:
    """1.3 MB of forged tokens once made 20,000 reaper Requests (74 MB); the time is measured
    by `benchmarks/function_bench.py` (its hostile-status row), not asserted here."""
    xr = _virtualkey()
    xr["status"] = forged_status("install/definition.yaml", many=20_000)
    xr["status"]["strayTokens"] = [
        hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)
    ]
    request = make_request(xr, ROTATING)
    assert request.ByteSize() > 1_000_000
    rsp = function_server.run(request)
    assert rsp.ByteSize() < 64 * 1024  # a default gRPC client takes 4 MiB
    assert sorted(rsp.desired.resources) == ["key", request_resource_name()]


def test_one_slow_run_does_not_hold_up_another(
    monkeypatch: pytest.MonkeyPatch, function_server: FunctionServer
) -> None:
    """RunFunction composes in worker threads: while one run is stuck, another is answered."""
    real = fn._run
    release = threading.Event()

    def slow_for_one(req: fnv1.RunFunctionRequest, now: Any) -> Any:
        if req.meta.tag == "slow":
            release.wait(timeout=60)
        return real(req, now)

    monkeypatch.setattr(fn, "_run", slow_for_one)
    answers: list[str] = []
    slow = threading.Thread(
        target=lambda: answers.append(
            function_server.run(make_request(_virtualkey(), ROTATING, tag="slow")).meta.tag
        )
    )
    slow.start()
    other = _virtualkey()
    other["metadata"]["namespace"] = "team-b"
    fast = function_server.run(
        make_request(other, {}, tag="fast", required=required_resources(other))
    )
    answers.append(fast.meta.tag)
    release.set()
    slow.join(timeout=60)
    assert answers == ["fast", "slow"]
    assert FIXED_KEY  # the fixtures' key, for the slow run's observed Secret


def test_deeply_nested_json_in_metadata_is_a_clean_refusal(
    function_server: FunctionServer,
) -> None:
    """4 KB of JSON nested 2,000 deep in a metadata value (the XRD admits any string) once gave
    a generic internal error: it is refused, naming the field, like any JSON object there."""
    deep = '{"a":' + "[" * 2000 + "]" * 2000 + "}"
    assert len(deep) <= 4096
    xr = _virtualkey(metadata={"note": deep})
    rsp = function_server.run(make_request(xr, {}))
    (fatal,) = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert "spec.metadata.note is a JSON object in a string" in fatal
    assert "internal error" not in fatal

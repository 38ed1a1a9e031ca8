"""Keys made from a changed Secret are deleted; raw keys stored unmasked are reported.

Issue 9, items 3 and 4, over the function's real gRPC server. The stories run
against the real proxy in tests/e2e/test_keys_hardening.py and on the real
control plane in tests/cluster/.
"""

from __future__ import annotations

import json
from typing import Any

from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.keys import token_of
from tests.fixtures import FIXED_KEY, observed_request, observed_secret, request_resource_name
from tests.grpc_harness import FunctionServer, make_request, required_resources

TENANTS_KEY = "sk-" + "TenantChoseThisKey0123456789abcdefghijklmn"
STRAY = token_of(TENANTS_KEY)


def generate_answer(created: str) -> dict[str, Any]:
    """A /key/generate answer as provider-http stores it: the key masked, its token plain."""
    return {
        "key": "{{ example-service-5f742b98-generated:team-a:key }}",
        "key_name": f"sk-...{created[-4:]}",
        "token": token_of(created),
        "key_alias": "example-service",
    }


OURS = {"auth.litellm.ai/namespace": "team-a", "auth.litellm.ai/virtualkey": "example-service"}


def info_answer(alias: str, metadata: dict[str, str], code: int = 200) -> dict[str, Any]:
    """A reaper's stored /key/info answer about the key it would delete."""
    info = {"key_alias": alias, "metadata": metadata, "token": STRAY}
    return {"response": {"statusCode": code, "body": json.dumps({"info": info})}}


def run(server: FunctionServer, xr: dict[str, Any], observed: dict[str, Any]) -> Any:
    return server.run(make_request(xr, observed))


def status(rsp: fnv1.RunFunctionResponse) -> dict[str, Any]:
    found: dict[str, Any] = resource.struct_to_dict(rsp.desired.composite.resource)["status"]
    return found


def test_a_key_made_from_a_changed_secret_is_reaped(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    made = observed_request(code=200, path="/key/generate", body=generate_answer(TENANTS_KEY))
    observed = {"key": observed_secret(), request_resource_name(): made}
    rsp = run(function_server, seed_xr, observed)
    reaper_name = f"stray-{STRAY[:10]}"
    assert reaper_name in rsp.desired.resources
    reaper = resource.struct_to_dict(rsp.desired.resources[reaper_name].resource)
    for_provider = reaper["spec"]["forProvider"]
    assert json.loads(for_provider["payload"]["body"]) == {"token": STRAY}
    assert [m["action"] for m in for_provider["mappings"]] == ["OBSERVE", "REMOVE"]
    assert reaper["spec"]["managementPolicies"] == ["Observe", "Delete"]
    assert status(rsp)["strayTokens"] == [STRAY]
    assert any("changed after the function wrote it" in r.message for r in rsp.results)
    assert TENANTS_KEY not in str(rsp)
    # Next run: the reaper exists, so it is dropped (Crossplane deletes it, REMOVE the key).
    xr = {**seed_xr, "status": {"strayTokens": [STRAY]}}
    observed[reaper_name] = reaper  # created, but provider-http has not reconciled it yet
    rsp = run(function_server, xr, observed)
    assert reaper_name in rsp.desired.resources  # dropped now, it would go without its REMOVE
    observed[reaper_name] = {**reaper, "status": info_answer("example-service", OURS)}
    rsp = run(function_server, xr, observed)
    assert reaper_name not in rsp.desired.resources
    assert "strayTokens" not in status(rsp)
    assert status(rsp)["reapedTokens"] == [STRAY]
    # The stale answer is still stored: it never brings the reaper back.
    xr = {**seed_xr, "status": {"reapedTokens": [STRAY]}}
    del observed[reaper_name]
    rsp = run(function_server, xr, observed)
    assert reaper_name not in rsp.desired.resources
    assert not any("changed after" in r.message for r in rsp.results)


def test_its_own_key_is_no_stray(function_server: FunctionServer, seed_xr: dict[str, Any]) -> None:
    made = observed_request(code=200, path="/key/generate", body=generate_answer(FIXED_KEY))
    rsp = run(function_server, seed_xr, {"key": observed_secret(), request_resource_name(): made})
    assert sorted(rsp.desired.resources) == ["key", request_resource_name()]
    assert "strayTokens" not in status(rsp)


def _exposure_warnings(rsp: fnv1.RunFunctionResponse) -> list[str]:
    return [r.message for r in rsp.results if "unmasked" in r.message]


def test_a_raw_key_stored_unmasked_is_reported_without_the_key(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    body = {**generate_answer(FIXED_KEY), "key": FIXED_KEY}  # the -generated Secret failed
    made = observed_request(code=200, path="/key/generate", body=body)
    rsp = run(function_server, seed_xr, {"key": observed_secret(), request_resource_name(): made})
    messages = [r.message for r in rsp.results]
    assert any("unmasked" in m and "rotate the key" in m for m in messages), messages
    assert all(FIXED_KEY not in m for m in messages)
    assert all(FIXED_KEY not in c.message for c in rsp.conditions)
    assert status(rsp)["exposedTokens"] == [token_of(FIXED_KEY)]


def test_an_exposed_key_is_reported_until_it_is_rotated(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    # provider-http's next OBSERVE replaces the unmasked answer, often before
    # Crossplane composes again: the warning must not last only that long.
    observed_now = observed_request(code=200, path="/key/info", body={"info": {}})
    xr = {**seed_xr, "status": {"exposedTokens": [token_of(FIXED_KEY)]}}
    observed = {"key": observed_secret(), request_resource_name(): observed_now}
    rsp = run(function_server, xr, observed)
    assert _exposure_warnings(rsp)
    assert status(rsp)["exposedTokens"] == [token_of(FIXED_KEY)]
    # Rotated (the key Secret deleted, the old Request gone): the exposed key
    # no longer exists, so neither does the warning.
    rotated = run(function_server, xr, {})
    assert not _exposure_warnings(rotated)
    assert "exposedTokens" not in status(rotated)


def test_a_replaced_request_lingers_until_observed_and_creates_nothing(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    # The Secret is lost right after CREATE: provider-http's stored answer is
    # still /key/generate's, whose masked key names the -generated Secret. A
    # Request deleted now (in the foreground: that Secret first) could never
    # run REMOVE, so it stays, reading its key instead of creating one.
    first = run(function_server, seed_xr, {"key": observed_secret()})
    old = resource.struct_to_dict(first.desired.resources[request_resource_name()].resource)
    stored = observed_request(code=200, path="/key/generate", body=generate_answer(FIXED_KEY))
    old["status"] = stored["status"]
    rsp = run(function_server, seed_xr, {request_resource_name(): old})
    names = sorted(rsp.desired.resources)
    assert request_resource_name() in names
    assert len(names) == 3, names  # the Secret, the new Request, the old one lingering
    kept = resource.struct_to_dict(rsp.desired.resources[request_resource_name()].resource)
    create = next(m for m in kept["spec"]["forProvider"]["mappings"] if m["action"] == "CREATE")
    assert (create["method"], create.get("body")) == ("GET", None)
    # Once provider-http has observed it, it goes.
    old["status"] = observed_request(code=200, path="/key/info", body={"info": {}})["status"]
    rsp = run(function_server, seed_xr, {request_resource_name(): old})
    assert request_resource_name() not in rsp.desired.resources


def test_a_key_one_of_our_requests_names_is_never_a_stray(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    # An old Request's CREATE read the rewritten Secret, now holding the current
    # key: that key is ours, never to be reaped.
    current = run(function_server, seed_xr, {"key": observed_secret()})
    made = observed_request(code=200, path="/key/generate", body=generate_answer(FIXED_KEY))
    other_key = "sk-" + "AnOldKeyWhoseRequestIsReplaced0123456789abc"
    old = observed_request(
        other_key, code=200, path="/key/generate", body=generate_answer(FIXED_KEY)
    )
    observed = {"key": observed_secret(), request_resource_name(): made}
    observed[request_resource_name(other_key)] = old
    rsp = run(function_server, seed_xr, observed)
    assert not any(n.startswith("stray-") for n in rsp.desired.resources)
    assert "strayTokens" not in status(rsp)
    del current


def test_a_missing_mask_secret_reports_the_key_as_exposed(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    # By the time Crossplane composes, provider-http may already have replaced
    # the unmasked answer; the missing `<request>-generated` Secret stays.
    observed = {"key": observed_secret(), request_resource_name(): observed_request()}
    first = run_with(function_server, seed_xr, observed, {})
    wanted = first.requirements.resources[f"generated-{request_resource_name()}"]
    assert (wanted.kind, wanted.namespace) == ("Secret", "team-a")
    assert wanted.match_name.endswith("-generated")
    missing: dict[str, list[dict[str, Any]]] = {f"generated-{request_resource_name()}": []}
    rsp = run_with(function_server, seed_xr, observed, missing)
    assert _exposure_warnings(rsp)
    assert status(rsp)["exposedTokens"] == [token_of(FIXED_KEY)]
    present = run(function_server, seed_xr, observed)
    assert not _exposure_warnings(present)
    assert "exposedTokens" not in status(present)
    # Not yet created (no answer): no Secret is expected yet.
    waiting = {"key": observed_secret(), request_resource_name(): observed_request(code=None)}
    assert not _exposure_warnings(run_with(function_server, seed_xr, waiting, missing))


def run_with(
    server: FunctionServer,
    xr: dict[str, Any],
    observed: dict[str, Any],
    masks: dict[str, list[dict[str, Any]]],
) -> fnv1.RunFunctionResponse:
    required = {**required_resources(xr), **masks} if masks else {}
    return server.run(make_request(xr, observed, None, "", required))


def test_a_token_the_status_names_is_deleted_only_if_the_key_is_this_virtualkeys(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    # Whoever may edit the VirtualKey may write its status: a token there proves nothing.
    xr = {**seed_xr, "status": {"strayTokens": [STRAY]}}
    observed = {"key": observed_secret(), request_resource_name(): observed_request()}
    rsp = run(function_server, xr, observed)
    reaper_name = f"stray-{STRAY[:10]}"
    reaper = resource.struct_to_dict(rsp.desired.resources[reaper_name].resource)
    for answer, deleted in [
        (info_answer("another-tenants-key", OURS), False),
        (info_answer("example-service", {"auth.litellm.ai/namespace": "team-b"}), False),
        (info_answer("example-service", {}), False),
        ({"response": {"statusCode": 404, "body": "{}"}}, True),  # gone already
    ]:
        observed[reaper_name] = {**reaper, "status": answer}
        rsp = run(function_server, xr, observed)
        if deleted:
            assert reaper_name not in rsp.desired.resources
            continue
        # Not this VirtualKey's: the reaper becomes Observe-only...
        kept = resource.struct_to_dict(rsp.desired.resources[reaper_name].resource)
        assert kept["spec"]["managementPolicies"] == ["Observe"], answer
        assert any("not its own" in r.message for r in rsp.results)
        # ...and only then is it dropped, which deletes nothing, and never made again.
        observed[reaper_name] = {**kept, "status": answer}
        rsp = run(function_server, xr, observed)
        assert reaper_name not in rsp.desired.resources
        assert status(rsp)["reapedTokens"] == [STRAY]
        assert "strayTokens" not in status(rsp)
    # An answer that says nothing yet (the proxy is down) keeps the reaper as it is.
    observed[reaper_name] = {**reaper, "status": {"response": {"statusCode": 503, "body": ""}}}
    rsp = run(function_server, xr, observed)
    kept = resource.struct_to_dict(rsp.desired.resources[reaper_name].resource)
    assert kept["spec"]["managementPolicies"] == ["Observe", "Delete"]

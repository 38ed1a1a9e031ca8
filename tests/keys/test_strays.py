"""Keys made from a changed Secret are deleted; raw keys stored unmasked are reported.

Over the function's real gRPC server, with the tenant playing against it: a
status it wrote, Secrets it named like Requests, a flood of strays. The stories run
against the real proxy in tests/e2e/test_keys_hardening.py and on the real
control plane in tests/cluster/.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.keys.secrets import token_of
from tests.fixtures import FIXED_KEY, observed_request, observed_secret, request_resource_name
from tests.grpc_harness import FunctionServer, make_request, required_resources

TENANTS_KEY = "sk-" + "TenantChoseThisKey0123456789abcdefghijklmn"
STRAY = token_of(TENANTS_KEY)


def generate_answer(created: str) -> dict[str, Any]:
    """A /key/generate answer as provider-http stores it: the key masked, its token plain."""
    return {
        "key": "{{ litellm-generated-5f742b98:crossplane-system:key }}",
        "key_name": f"sk-...{created[-4:]}",
        "token": token_of(created),
        "key_alias": "example-service",
    }


OURS = {"auth.litellm.ai/namespace": "team-a", "auth.litellm.ai/virtualkey": "example-service"}
MASTER = {"created_by": "default_user_id", "updated_by": "default_user_id"}


def info_answer(
    alias: str, metadata: dict[str, str], code: int = 200, made_by: dict[str, str] | None = None
) -> dict[str, Any]:
    """A reaper's stored /key/info answer about the key it would delete."""
    info = {"key_alias": alias, "metadata": metadata, "token": STRAY, **(made_by or MASTER)}
    return {"response": {"statusCode": code, "body": json.dumps({"info": info})}}


def run(server: FunctionServer, xr: dict[str, Any], observed: dict[str, Any]) -> Any:
    return server.run(make_request(xr, observed))


def status(rsp: fnv1.RunFunctionResponse) -> dict[str, Any]:
    found: dict[str, Any] = resource.struct_to_dict(rsp.desired.composite.resource)["status"]
    return found


def desired(rsp: fnv1.RunFunctionResponse, name: str) -> dict[str, Any]:
    found: dict[str, Any] = resource.struct_to_dict(rsp.desired.resources[name].resource)
    return found


REAPER = f"stray-{STRAY[:10]}"


def test_a_key_made_from_a_changed_secret_is_reaped_once_proved_ours(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    made = observed_request(code=200, path="/key/generate", body=generate_answer(TENANTS_KEY))
    observed = {"key": observed_secret(), request_resource_name(): made}
    rsp = run(function_server, seed_xr, observed)
    reaper = desired(rsp, REAPER)
    for_provider = reaper["spec"]["forProvider"]
    assert json.loads(for_provider["payload"]["body"]) == {"token": STRAY}
    assert [m["action"] for m in for_provider["mappings"]] == ["OBSERVE", "REMOVE"]
    # It starts Observe-only: deleting it (or the VirtualKey) now deletes nothing.
    assert reaper["spec"]["managementPolicies"] == ["Observe"]
    assert any("changed after the function wrote it" in r.message for r in rsp.results)
    assert TENANTS_KEY not in str(rsp)
    # provider-http's next OBSERVE replaced the generate answer: the reaper remembers.
    observed[request_resource_name()] = observed_request()
    observed[REAPER] = reaper  # created, but provider-http has not reconciled it yet
    rsp = run(function_server, seed_xr, observed)
    assert desired(rsp, REAPER)["spec"]["managementPolicies"] == ["Observe"]
    # Its own answer shows this VirtualKey's alias and provenance: now it may delete...
    observed[REAPER] = {**reaper, "status": info_answer("example-service", OURS)}
    rsp = run(function_server, seed_xr, observed)
    flipped = desired(rsp, REAPER)
    assert flipped["spec"]["managementPolicies"] == ["Observe", "Delete"]
    # ...and once Crossplane applied that, it is dropped: Crossplane deletes it, REMOVE the key.
    observed[REAPER] = {**flipped, "status": info_answer("example-service", OURS)}
    rsp = run(function_server, seed_xr, observed)
    assert REAPER not in rsp.desired.resources
    # Gone from what Crossplane observes, and from the stored answers: never made again.
    del observed[REAPER]
    rsp = run(function_server, seed_xr, observed)
    assert REAPER not in rsp.desired.resources
    assert not any("changed after" in r.message for r in rsp.results)


def test_its_own_key_is_no_stray(function_server: FunctionServer, seed_xr: dict[str, Any]) -> None:
    made = observed_request(code=200, path="/key/generate", body=generate_answer(FIXED_KEY))
    rsp = run(function_server, seed_xr, {"key": observed_secret(), request_resource_name(): made})
    assert sorted(rsp.desired.resources) == ["key", request_resource_name()]


def _exposure_warnings(rsp: fnv1.RunFunctionResponse) -> list[str]:
    return [r.message for r in rsp.results if "unmasked" in r.message]


EXPOSED = "auth.litellm.ai/exposed"


def test_a_raw_key_stored_unmasked_is_reported_without_the_key(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    body = {**generate_answer(FIXED_KEY), "key": FIXED_KEY}  # the mask Secret failed
    made = observed_request(code=200, path="/key/generate", body=body)
    rsp = run(function_server, seed_xr, {"key": observed_secret(), request_resource_name(): made})
    messages = [r.message for r in rsp.results]
    assert any("unmasked" in m and "rotate the key" in m for m in messages), messages
    assert all(FIXED_KEY not in m for m in messages)
    assert all(FIXED_KEY not in c.message for c in rsp.conditions)
    # Remembered on the key's own Request, which only Crossplane writes.
    assert desired(rsp, request_resource_name())["metadata"]["annotations"] == {EXPOSED: "true"}


def test_an_exposed_key_is_reported_until_it_is_rotated(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    # provider-http's next OBSERVE replaces the unmasked answer, often before
    # Crossplane composes again: the warning must not last only that long.
    observed_now = observed_request(code=200, path="/key/info", body={"info": {}})
    observed_now["metadata"]["annotations"] = {EXPOSED: "true"}
    observed = {"key": observed_secret(), request_resource_name(): observed_now}
    rsp = run(function_server, seed_xr, observed)
    assert _exposure_warnings(rsp)
    # A status claiming it (tenants may write it) reports nothing: it is not memory.
    forged = {**seed_xr, "status": {"exposedTokens": [token_of(FIXED_KEY)]}}
    quiet = {"key": observed_secret(), request_resource_name(): observed_request()}
    assert not _exposure_warnings(run(function_server, forged, quiet))
    # Rotated (the key Secret deleted, the old Request gone): the exposed key
    # no longer exists, so neither does the warning.
    assert not _exposure_warnings(run(function_server, seed_xr, {}))


def test_a_replaced_request_lingers_until_observed_and_creates_nothing(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    """The Secret is lost right after CREATE: the old Request's spec may still CREATE from
    the key Secret, which now holds the new key. It stays, reading its key instead of
    creating one, until provider-http has observed it; its mask Secret lives where tenants
    cannot delete it (function.provider_http.mask), and no Request owns it."""
    first = run(function_server, seed_xr, {"key": observed_secret()})
    old = desired(first, request_resource_name())
    injection = old["spec"]["forProvider"]["secretInjectionConfigs"][0]
    assert injection["secretRef"]["namespace"] == "crossplane-system"
    assert injection["setOwnerReference"] is False
    stored = observed_request(code=200, path="/key/generate", body=generate_answer(FIXED_KEY))
    old["status"] = stored["status"]
    rsp = run(function_server, seed_xr, {request_resource_name(): old})
    names = sorted(rsp.desired.resources)
    assert request_resource_name() in names
    assert len(names) == 3, names  # the Secret, the new Request, the old one lingering
    kept = desired(rsp, request_resource_name())
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
    made = observed_request(code=200, path="/key/generate", body=generate_answer(FIXED_KEY))
    other_key = "sk-" + "AnOldKeyWhoseRequestIsReplaced0123456789abc"
    old = observed_request(
        other_key, code=200, path="/key/generate", body=generate_answer(FIXED_KEY)
    )
    observed = {"key": observed_secret(), request_resource_name(): made}
    observed[request_resource_name(other_key)] = old
    rsp = run(function_server, seed_xr, observed)
    assert not any(n.startswith("stray-") for n in rsp.desired.resources)


def test_a_missing_mask_secret_reports_the_key_as_exposed(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    # By the time Crossplane composes, provider-http may already have replaced
    # the unmasked answer; the missing mask Secret stays.
    observed = {"key": observed_secret(), request_resource_name(): observed_request()}
    first = run_with(function_server, seed_xr, observed, {})
    wanted = first.requirements.resources[f"generated-{request_resource_name()}"]
    assert (wanted.kind, wanted.namespace) == ("Secret", "crossplane-system")
    assert wanted.match_name.startswith("litellm-generated-")
    missing: dict[str, list[dict[str, Any]]] = {f"generated-{request_resource_name()}": []}
    rsp = run_with(function_server, seed_xr, observed, missing)
    assert _exposure_warnings(rsp)
    present = run(function_server, seed_xr, observed)
    assert not _exposure_warnings(present)
    # Not created yet (no answer): no mask Secret is expected yet, and none is missed.
    waiting = {"key": observed_secret(), request_resource_name(): observed_request(code=None)}
    rsp = run_with(function_server, seed_xr, waiting, missing)
    assert not _exposure_warnings(rsp)
    assert "annotations" not in desired(rsp, request_resource_name())["metadata"]


def run_with(
    server: FunctionServer,
    xr: dict[str, Any],
    observed: dict[str, Any],
    masks: dict[str, list[dict[str, Any]]],
) -> fnv1.RunFunctionResponse:
    required = {**required_resources(xr), **masks} if masks else {}
    return server.run(make_request(xr, observed, None, "", required))


def test_a_token_in_the_status_makes_no_reaper(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    """Whoever may edit the VirtualKey may write its status: a token there proves nothing,
    composes nothing, and hides nothing (a forged reapedTokens never stops a reaper)."""
    observed = {"key": observed_secret(), request_resource_name(): observed_request()}
    xr = {**seed_xr, "status": {"strayTokens": [STRAY], "reapedTokens": [], "exposedTokens": []}}
    rsp = run(function_server, xr, observed)
    assert sorted(rsp.desired.resources) == ["key", request_resource_name()]
    made = observed_request(code=200, path="/key/generate", body=generate_answer(TENANTS_KEY))
    hiding = {**seed_xr, "status": {"reapedTokens": [STRAY]}}
    rsp = run(function_server, hiding, {"key": observed_secret(), request_resource_name(): made})
    assert REAPER in rsp.desired.resources


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (info_answer("another-tenants-key", OURS), "another alias"),
        (info_answer("example-service", {**OURS, "auth.litellm.ai/namespace": "team-b"}), "b's"),
        (info_answer("example-service", {}), "no provenance"),
        (info_answer("example-service", OURS, made_by={"created_by": "team-a.mallory"}), "minted"),
        (
            info_answer(
                "example-service",
                OURS,
                made_by={"created_by": "default_user_id", "updated_by": "team-a.mallory"},
            ),
            "rewritten by a user's own key",
        ),
    ],
)
def test_a_reaper_deletes_only_a_key_proved_this_virtualkeys(
    function_server: FunctionServer, seed_xr: dict[str, Any], answer: dict[str, Any], why: str
) -> None:
    made = observed_request(code=200, path="/key/generate", body=generate_answer(TENANTS_KEY))
    observed = {"key": observed_secret(), request_resource_name(): made}
    reaper = desired(run(function_server, seed_xr, observed), REAPER)
    observed[REAPER] = {**reaper, "status": answer}
    rsp = run(function_server, seed_xr, observed)
    # Not this VirtualKey's: never made able to delete; dropped, which deletes nothing.
    assert REAPER not in rsp.desired.resources, why
    assert any("someone else's" in r.message for r in rsp.results), why
    # Had it been flipped already, it is first made Observe-only again, then dropped.
    flipped = {**reaper, "spec": {**reaper["spec"], "managementPolicies": ["Observe", "Delete"]}}
    observed[REAPER] = {**flipped, "status": answer}
    rsp = run(function_server, seed_xr, observed)
    assert desired(rsp, REAPER)["spec"]["managementPolicies"] == ["Observe"], why


def test_gone_already_is_dropped_and_an_answer_that_says_nothing_keeps_it(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    made = observed_request(code=200, path="/key/generate", body=generate_answer(TENANTS_KEY))
    observed = {"key": observed_secret(), request_resource_name(): made}
    reaper = desired(run(function_server, seed_xr, observed), REAPER)
    observed[REAPER] = {**reaper, "status": {"response": {"statusCode": 404, "body": "{}"}}}
    assert REAPER not in run(function_server, seed_xr, observed).desired.resources
    observed[REAPER] = {**reaper, "status": {"response": {"statusCode": 503, "body": ""}}}
    kept = desired(run(function_server, seed_xr, observed), REAPER)
    assert kept["spec"]["managementPolicies"] == ["Observe"]


def test_a_flood_of_strays_is_handled_a_few_at_a_time(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    """However many reapers Crossplane observes, a run composes at most eight."""
    observed: dict[str, Any] = {
        "key": observed_secret(),
        request_resource_name(): observed_request(),
    }
    for i in range(200):
        token = hashlib.sha256(str(i).encode()).hexdigest()
        stray = observed_request(body={})
        stray["metadata"]["name"] = f"example-service-stray-{token[:8]}"
        stray["spec"]["forProvider"]["payload"]["body"] = json.dumps({"token": token})
        observed[f"stray-{token[:10]}"] = stray
    rsp = run(function_server, seed_xr, observed)
    assert len([n for n in rsp.desired.resources if n.startswith("stray-")]) == 8
    assert any("8 are handled at a time" in r.message for r in rsp.results)


def test_secrets_named_like_requests_are_not_requests(
    function_server: FunctionServer, seed_xr: dict[str, Any]
) -> None:
    """The tenant may own Secrets Crossplane observes under any resource name: only a
    provider-http Request counts as one, so they neither ask for mask Secrets nor reap."""
    observed: dict[str, Any] = {"key": observed_secret()}
    for i in range(100):
        fake = observed_secret(name=f"fake-{i}")
        fake["status"] = {
            "response": {"statusCode": 200, "body": json.dumps(generate_answer(TENANTS_KEY))}
        }
        observed[f"request-{i:010x}"] = fake
        observed[f"stray-{i:010x}"] = fake
    first = run_with(function_server, seed_xr, observed, {})
    assert not [n for n in first.requirements.resources if n.startswith("generated-")]
    rsp = run(function_server, seed_xr, observed)
    assert sorted(n for n in rsp.desired.resources) == ["key", request_resource_name()]

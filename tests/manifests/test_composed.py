"""Every resource the function composes, checked against provider-http's CRD in ../shared/schemas.

Several scenarios, over gRPC: the Request against provider-http's
`http.m.crossplane.io/v1alpha2` CRD (schema and CEL rules), plus what a JSON
schema cannot say (names, labels, base64, mappings, jq).
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import re
from typing import Any

import jq
import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format

from function import validation
from function.keys.secrets import token_of
from tests.conftest import INSTALL, load_example
from tests.fixtures import legacy_xr
from tests.grpc_harness import (
    FunctionServer,
    example_policies,
    make_request,
    required_resources,
)
from tests.manifests.cel import cel_violations
from tests.manifests.schemas import (
    LABEL_NAME,
    RFC1123_LABEL,
    RFC1123_SUBDOMAIN,
    crd_schema,
    schema_errors,
    yaml_docs,
)

PLACEHOLDER = re.compile(r"\{\{\s*([^:\s}]+):([^:\s}]+):([^:\s}]+)\s*\}\}")
KEY = "sk-" + "ManifestKey0123456789abcdefghijklmnopqrstu"


def _secret(key: str = KEY, name: str = "example-service-litellm-key") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "team-a"},
        "data": {"key": base64.b64encode(key.encode()).decode()},
    }


def _request(key: str = KEY) -> dict[str, Any]:
    token = token_of(key)
    return {
        "apiVersion": "http.m.crossplane.io/v1alpha2",
        "kind": "Request",
        "metadata": {"name": f"example-service-{token[:8]}", "namespace": "team-a"},
        "spec": {"forProvider": {"payload": {"body": json.dumps({"token": token})}}},
        "status": {
            "response": {"statusCode": 200, "body": "{}"},
            "requestDetails": {"url": f"http://x/key/info?key={token}"},
        },
    }


def _all_fields() -> dict[str, Any]:
    xr = copy.deepcopy(load_example("virtualkey/virtualkey.yaml"))
    xr["spec"].update(
        {
            "models": ["gpt-4o", "claude-3-sonnet"],
            "maxBudget": "100.5",
            "softBudget": "80",
            "budgetDuration": "1mo",
            "duration": "90d",
            "blocked": True,
            "tpmLimit": 100000,
            "rpmLimit": 60,
            "maxParallelRequests": 4,
            "metadata": {"owner": "team-a", "costCenter": "4711", "note": "ключ 🙂"},
            "tags": ["prod", "batch"],
            "teamID": "team-a",
            "userID": "alice@example.com",
        }
    )
    return xr


def _long_name_xr() -> dict[str, Any]:
    xr = copy.deepcopy(load_example("virtualkey/virtualkey.yaml"))
    xr["metadata"]["name"] = ("a" * 62 + ".") * 3 + "b" * 60  # 249 characters, valid
    return xr


@functools.cache
def composition_input() -> dict[str, Any]:
    docs = yaml_docs(INSTALL / "composition.yaml")
    step = docs[0]["spec"]["pipeline"][0]
    assert isinstance(step["input"], dict)
    return dict(step["input"])


SCENARIOS: dict[str, Any] = {
    "seed": lambda: (load_example("virtualkey/virtualkey.yaml"), {}, None),
    "seed with composition input": lambda: (
        load_example("virtualkey/virtualkey.yaml"),
        {},
        composition_input(),
    ),
    "advanced": lambda: (
        load_example("virtualkey/virtualkey-advanced.yaml"),
        {},
        composition_input(),
    ),
    "explicit connection": lambda: (
        load_example("virtualkey/virtualkey-explicit.yaml"),
        {},
        composition_input(),
    ),
    "all optional fields": lambda: (_all_fields(), {}, None),
    "legacy claim XR": lambda: (legacy_xr(), {}, composition_input()),
    "observed Secret": lambda: (
        load_example("virtualkey/virtualkey.yaml"),
        {"key": _secret()},
        None,
    ),
    "steady state": lambda: (
        load_example("virtualkey/virtualkey.yaml"),
        {"key": _secret(), f"request-{token_of(KEY)[:10]}": _request()},
        None,
    ),
    "replaced key (Secret lost)": lambda: (
        load_example("virtualkey/virtualkey.yaml"),
        {f"request-{token_of(KEY)[:10]}": _request()},
        None,
    ),
    "long XR name": lambda: (_long_name_xr(), {}, None),
    "namespaced ProviderConfig": lambda: (
        load_example("virtualkey/virtualkey.yaml"),
        {},
        {"providerConfigRef": {"kind": "ProviderConfig", "name": "litellm"}},
    ),
}


def _granting_team_and_user() -> list[dict[str, Any]]:
    """The shipped policy, with team-a also allowed the team and user of _all_fields."""
    policy = copy.deepcopy(example_policies()[0])
    rule = next(r for r in policy["spec"]["rules"] if r["name"] == "team-a")
    rule["teams"] = {"allow": ["team-a"]}
    rule["users"] = {"allow": ["alice@example.com"]}
    return [policy]


# Scenarios that need more than the shipped TenancyPolicy grants.
SCENARIO_POLICIES = {"all optional fields": _granting_team_and_user}

_COMPOSED: dict[str, dict[str, Any]] = {}


@pytest.fixture
def composed(function_server: FunctionServer, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The desired resources for one scenario: name -> body, plus the response."""
    name = request.param
    cache = _COMPOSED
    if name not in cache:
        xr, observed, fn_input = SCENARIOS[name]()
        policies = SCENARIO_POLICIES[name]() if name in SCENARIO_POLICIES else None
        required = required_resources(xr, policies)
        rsp = function_server.run(make_request(copy.deepcopy(xr), observed, fn_input, "", required))
        fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
        assert not fatal, fatal
        resources = {
            n: json_format.MessageToDict(r.resource) for n, r in rsp.desired.resources.items()
        }
        status = json_format.MessageToDict(rsp.desired.composite.resource).get("status", {})
        cache[name] = {"resources": resources, "status": status, "xr": xr}
    return dict(cache[name])


def _requests(composed: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in composed["resources"].values() if r.get("kind") == "Request"]


def _secrets(composed: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in composed["resources"].values() if r.get("kind") == "Secret"]


scenarios = pytest.mark.parametrize("composed", sorted(SCENARIOS), indirect=True)


@scenarios
def test_composes_one_secret_and_one_request(composed: dict[str, Any]) -> None:
    resources = composed["resources"]
    assert set(resources) == {"key", *(n for n in resources if n.startswith("request-"))}
    assert len(_requests(composed)) == 1
    assert len(_secrets(composed)) == 1
    assert resources["key"]["kind"] == "Secret"


@scenarios
def test_request_matches_provider_http_crd(composed: dict[str, Any]) -> None:
    (request,) = _requests(composed)
    assert request["apiVersion"] == "http.m.crossplane.io/v1alpha2"
    schema = crd_schema("http.m.crossplane.io/v1alpha2", "Request")
    assert schema_errors(schema, request) == []
    failed, unevaluable = cel_violations(schema, request)
    assert failed == []
    assert unevaluable == []


@scenarios
def test_names_labels_and_namespaces_are_valid(composed: dict[str, Any]) -> None:
    xr = composed["xr"]
    namespace = (
        xr["metadata"].get("namespace") or xr["metadata"]["labels"]["crossplane.io/claim-namespace"]
    )
    for body in composed["resources"].values():
        meta = body["metadata"]
        name = meta["name"]
        assert len(name) <= 253, name
        assert RFC1123_SUBDOMAIN.fullmatch(name), name
        assert meta["namespace"] == namespace
        assert RFC1123_LABEL.fullmatch(meta["namespace"])
        for label, value in meta.get("labels", {}).items():
            prefix, _, label_name = label.rpartition("/")
            assert not prefix or (len(prefix) <= 253 and RFC1123_SUBDOMAIN.fullmatch(prefix))
            assert len(label_name) <= 63 and LABEL_NAME.fullmatch(label_name), label
            assert len(value) <= 63, value
            assert value == "" or LABEL_NAME.fullmatch(value), value
    (request,) = _requests(composed)
    for config in request["spec"]["forProvider"]["secretInjectionConfigs"]:
        ref = config["secretRef"]
        assert len(ref["name"]) <= 253 and RFC1123_SUBDOMAIN.fullmatch(ref["name"])
        # Where tenants cannot delete it (function.provider_http.mask): never the tenant's
        # namespace.
        assert ref["namespace"] == "crossplane-system" != namespace


@scenarios
def test_secret_is_well_formed(composed: dict[str, Any]) -> None:
    (secret,) = _secrets(composed)
    assert secret["apiVersion"] == "v1"
    assert secret.get("type", "Opaque") == "Opaque"
    assert "stringData" not in secret
    decoded = {}
    for data_key, value in secret["data"].items():
        assert re.fullmatch(validation.SECRET_KEY_PATTERN, data_key)
        try:
            decoded[data_key] = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as e:
            pytest.fail(f"data.{data_key} is not base64 of UTF-8: {e}")
    assert re.fullmatch(r"sk-[A-Za-z0-9_-]{43}", decoded["key"])
    assert decoded["baseUrl"].startswith(("http://", "https://"))
    assert not decoded["baseUrl"].endswith("/")
    assert composed["status"]["keySecretRef"] == secret["metadata"]["name"]
    assert composed["status"]["tokenHash"] == token_of(decoded["key"])


@scenarios
def test_request_mappings_placeholders_and_jq(composed: dict[str, Any]) -> None:
    (request,) = _requests(composed)
    (secret,) = _secrets(composed)
    for_provider = request["spec"]["forProvider"]
    mappings = for_provider["mappings"]
    for mapping in mappings:
        assert {"action", "method", "url"} <= set(mapping), mapping
    assert sorted(m["action"] for m in mappings) == ["CREATE", "OBSERVE", "REMOVE", "UPDATE"]
    # Every jq program provider-http runs must compile.
    programs = [m["url"] for m in mappings] + [m["body"] for m in mappings if "body" in m]
    programs += [for_provider["isRemovedCheck"]["logic"]]
    programs += [for_provider["expectedResponseCheck"]["logic"]]
    for config in for_provider["secretInjectionConfigs"]:
        programs += [k["responseJQ"] for k in config["keyMappings"]]
    for program in programs:
        jq.compile(program)
    # The payload body is JSON that names the key by its token only.
    body = json.loads(for_provider["payload"]["body"])
    raw_key = base64.b64decode(secret["data"]["key"]).decode()
    assert body["token"] == token_of(raw_key)
    assert raw_key not in json.dumps(request)
    # Placeholders: the raw key only in CREATE, from our Secret; the master key in headers.
    (create,) = [m for m in mappings if m["action"] == "CREATE"]
    key_refs = PLACEHOLDER.findall(create["body"])
    assert key_refs == [(secret["metadata"]["name"], secret["metadata"]["namespace"], "key")]
    others = [json.dumps(m) for m in mappings if m["action"] != "CREATE"]
    assert not any("{{" in text for text in others)
    (auth,) = for_provider["headers"]["Authorization"]
    (master,) = PLACEHOLDER.findall(auth)
    assert RFC1123_SUBDOMAIN.fullmatch(master[0])
    assert RFC1123_LABEL.fullmatch(master[1])
    assert re.fullmatch(validation.SECRET_KEY_PATTERN, master[2])
    assert "{{" not in for_provider["payload"]["body"]


def test_validator_catches_a_broken_request() -> None:
    """The schema check is live: a typo in a mapping's action is reported."""
    request = {
        "apiVersion": "http.m.crossplane.io/v1alpha2",
        "kind": "Request",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": {
            "forProvider": {
                "payload": {"baseUrl": "http://x", "body": "{}"},
                "mappings": [{"action": "CREAT", "method": "POST", "url": "x"}],
                "insecureSkipTLSVerify": True,
                "tlsConfig": {},
            }
        },
    }
    schema = crd_schema("http.m.crossplane.io/v1alpha2", "Request")
    assert any("CREAT" in e for e in schema_errors(schema, request))
    failed, _ = cel_violations(schema, request)
    assert any("insecureSkipTLSVerify" in f for f in failed)

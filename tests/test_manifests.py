"""Every manifest checked against the real CRD schemas in ../shared/schemas.

- Every resource the function composes (several scenarios, over gRPC): the
  Request against provider-http's `http.m.crossplane.io/v1alpha2` CRD, plus
  what a JSON schema cannot say (names, labels, base64, mappings, jq).
- Every YAML document in examples/, crossplane.yaml and package/, against the
  CRD for its apiVersion and kind; VirtualKeys against our own XRD; the
  Composition's input against package/input's CRD and `parse_input`.
- The CEL rules (`x-kubernetes-validations`) of our XRD, evaluated with
  cel-python against good and bad specs, and every CEL rule of the upstream
  CRDs against our documents.
- The legacy XRD's versions are the v2 XRD's, and the XRD's patterns are
  the function's.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import celpy
import jq
import jsonschema
import pytest
import re2  # type: ignore[import-untyped]  # google-re2, a dependency of cel-python
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format

from function import input as fn_input_module
from function import validation
from function.accounts import spec as account_specs
from function.keys import spec as key_spec
from function.keys.secrets import token_of
from function.tenancy import policy
from function.tenancy.connection import ConnectionRef
from tests.conftest import SHARED, load_example
from tests.fixtures import legacy_xr
from tests.grpc_harness import (
    FunctionServer,
    example_policies,
    make_request,
    required_resources,
)

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = SHARED / "schemas"
INPUT_CRD = ROOT / "package" / "input" / "litellm.fn.crossplane.io_inputs.yaml"
POLICY_CRD = ROOT / "package" / "policy" / "litellm.fn.crossplane.io_tenancypolicies.yaml"
POLLER_EXAMPLES = ROOT / "examples" / "poller"

RFC1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
RFC1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
PLACEHOLDER = re.compile(r"\{\{\s*([^:\s}]+):([^:\s}]+):([^:\s}]+)\s*\}\}")
KEY = "sk-" + "ManifestKey0123456789abcdefghijklmnopqrstu"

# --- schema and CEL helpers -----------------------------------------------------------


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@functools.cache
def crd_index() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema for every CRD version in ../shared/schemas."""
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(SCHEMAS.rglob("*.yaml")):
        for crd in _yaml_docs(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                index[(f"{group}/{version['name']}", kind)] = schema
    return index


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    return crd_index()[(api_version, kind)]


def _int_or_string(
    validator: Any, enabled: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    del validator, schema
    is_int = isinstance(instance, int) and not isinstance(instance, bool)
    if enabled and not (is_int or isinstance(instance, str)):
        yield jsonschema.ValidationError(f"{instance!r} is neither an integer nor a string")


# Draft 7 plus the one Kubernetes type keyword our XRD uses.
K8sValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"x-kubernetes-int-or-string": _int_or_string}
)


def schema_errors(schema: dict[str, Any], obj: Any) -> list[str]:
    validator = K8sValidator(schema)
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message[:300]}"
        for e in validator.iter_errors(obj)
    ]


def _lower_ascii(value: celtypes.Value) -> celtypes.StringType:
    return celtypes.StringType(str(value).lower())


# Kubernetes' CEL string library functions that our CRDs use and cel-python lacks.
K8S_FUNCTIONS: dict[str, Any] = {"lowerAscii": _lower_ascii}
CEL_ENV = celpy.Environment()


class CelUnevaluableError(Exception):
    """cel-python cannot compile or evaluate this rule (a Kubernetes CEL extension)."""


@functools.cache
def _program(rule: str) -> celpy.Runner:
    try:
        return CEL_ENV.program(CEL_ENV.compile(rule), functions=K8S_FUNCTIONS)
    except Exception as e:
        msg = f"{rule}: {e}"
        raise CelUnevaluableError(msg) from e


def cel(rule: str, value: Any, old: Any = None) -> bool:
    """Evaluate one x-kubernetes-validations rule with self (and oldSelf for updates)."""
    activation = {"self": json_to_cel(value)}
    if old is not None:
        activation["oldSelf"] = json_to_cel(old)
    try:
        result = _program(rule).evaluate(activation)
    except CelUnevaluableError:
        raise
    except Exception as e:
        msg = f"{rule}: {e}"
        raise CelUnevaluableError(msg) from e
    if isinstance(result, celpy.evaluation.CELEvalError):
        msg = f"{rule}: {result}"
        raise CelUnevaluableError(msg)
    return bool(result)


def _rules(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return list(schema.get("x-kubernetes-validations") or [])


def cel_walk(schema: dict[str, Any], value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, rule, value) for every CEL rule that applies to a present value."""
    for rule in _rules(schema):
        yield path, rule["rule"], value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                yield from cel_walk(props[key], item, f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from cel_walk(extra, item, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from cel_walk(schema["items"], item, f"{path}[{index}]")


def cel_violations(schema: dict[str, Any], obj: Any) -> tuple[list[str], list[str]]:
    """CEL rules that fail on obj, and rules cel-python could not evaluate.

    A transition rule (one with oldSelf) is evaluated as for an unchanged
    update, oldSelf = self: the API server skips it on create, and it must
    hold when nothing changes.
    """
    failed, unevaluable = [], []
    for path, rule, value in cel_walk(schema, obj):
        old = value if "oldSelf" in rule else None
        try:
            if not cel(rule, value, old):
                failed.append(f"{path or '<root>'}: {rule}")
        except CelUnevaluableError as e:
            unevaluable.append(f"{path or '<root>'}: {e}")
    return failed, unevaluable


# --- composed resources ---------------------------------------------------------------


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
    docs = _yaml_docs(ROOT / "examples" / "install" / "composition.yaml")
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
        # Where tenants cannot delete it (function.mask): never the tenant's namespace.
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


# --- every YAML file in examples/ and package/ ------------------------------------------


def manifest_files() -> list[Path]:
    examples = [
        p for p in sorted((ROOT / "examples").rglob("*.y*ml")) if POLLER_EXAMPLES not in p.parents
    ]
    package = sorted((ROOT / "package").rglob("*.y*ml"))
    return [*examples, ROOT / "crossplane.yaml", *package]


def manifest_docs(files: list[Path]) -> list[Any]:
    return [
        pytest.param(path, index, doc, id=f"{path.relative_to(ROOT)}#{index}")
        for path in files
        for index, doc in enumerate(_yaml_docs(path))
    ]


@functools.cache
def xrd_version_schema(kind: str) -> dict[str, Any]:
    """Our XRD's schema for a VirtualKey (v2 XR) or its legacy claim."""
    path = ROOT / "examples" / ("install" if kind == "v2" else "legacy") / "definition.yaml"
    (xrd,) = _yaml_docs(path)
    (version,) = xrd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert isinstance(schema, dict)
    return schema


@functools.cache
def own_crd_schema(path: Path) -> dict[str, Any]:
    """The openAPIV3Schema of one of our single-version CRDs."""
    (crd,) = _yaml_docs(path)
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert isinstance(schema, dict)
    return schema


def input_schema() -> dict[str, Any]:
    return own_crd_schema(INPUT_CRD)


def policy_schema() -> dict[str, Any]:
    return own_crd_schema(POLICY_CRD)


def check_policy(doc: dict[str, Any]) -> None:
    """A TenancyPolicy against our CRD (schema and CEL) and the function's own model."""
    assert schema_errors(policy_schema(), doc) == []
    failed, unevaluable = cel_violations(policy_schema(), doc)
    assert failed == []
    assert unevaluable == []
    policy.parse_policy_spec(doc["spec"])


def check_structural(crd: dict[str, Any]) -> list[str]:
    """What makes a CRD's schema non-structural or otherwise unsound (the gist of it)."""
    problems = []
    spec = crd["spec"]
    names = spec["names"]
    if crd["metadata"]["name"] != f"{names['plural']}.{spec['group']}":
        problems.append("metadata.name is not <plural>.<group>")
    if sum(1 for v in spec["versions"] if v.get("storage")) != 1:
        problems.append("not exactly one storage version")
    for version in spec["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        jsonschema.Draft7Validator.check_schema(schema)
        problems += [f"{version['name']}{p}" for p in _untyped(schema)]
    return problems


def _untyped(schema: dict[str, Any], path: str = "") -> list[str]:
    found = []
    if not (
        "type" in schema
        or schema.get("x-kubernetes-int-or-string")
        or schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        found.append(f"{path or '<root>'}: no type")
    for key, sub in (schema.get("properties") or {}).items():
        found += _untyped(sub, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _untyped(schema[key], f"{path}.{key}")
    for key, value in schema.items():
        if key == "pattern":
            re.compile(value)
    return found


def check_crd_kind(doc: dict[str, Any]) -> None:
    schema = crd_schema(doc["apiVersion"], doc["kind"])
    assert schema_errors(schema, doc) == []
    # cel-python lacks Kubernetes' string library; K8S_FUNCTIONS adds the one
    # function these CRDs use (lowerAscii), so every rule here is evaluated.
    failed, unevaluable = cel_violations(schema, doc)
    assert failed == []
    assert unevaluable == []


def check_virtualkey(doc: dict[str, Any]) -> None:
    for variant in ("v2", "legacy"):
        schema = xrd_version_schema(variant)["properties"]["spec"]
        assert schema_errors(schema, doc["spec"]) == []
        # On create, the API server skips transition rules (those with oldSelf).
        for where, rule, value in cel_walk(schema, doc["spec"]):
            if "oldSelf" not in rule:
                assert cel(rule, value), f"spec{where}: {rule}"
    key_spec.parse_spec(doc["spec"])


def check_account(doc: dict[str, Any]) -> None:
    """A User or Team against its XRD (schema, CEL on create) and the function's model."""
    kind = doc["kind"]
    for variant in ("accounts", "legacy"):
        (xrd,) = _yaml_docs(ROOT / "examples" / variant / f"{kind.lower()}-definition.yaml")
        (version,) = xrd["spec"]["versions"]
        schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert schema_errors(schema, doc["spec"]) == []
        for where, rule, value in cel_walk(schema, doc["spec"]):
            if "oldSelf" not in rule:
                assert cel(rule, value), f"spec{where}: {rule}"
    parse = account_specs.parse_user_spec if kind == "User" else account_specs.parse_team_spec
    parse(doc["spec"])


def check_secret(doc: dict[str, Any]) -> None:
    assert RFC1123_SUBDOMAIN.fullmatch(doc["metadata"]["name"])
    for value in (doc.get("stringData") or {}).values():
        assert isinstance(value, str)
    for value in (doc.get("data") or {}).values():
        base64.b64decode(value, validate=True)


def validate_doc(path: Path, doc: dict[str, Any]) -> None:
    api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    assert api_version and kind, f"{path}: document without apiVersion/kind"
    assert doc.get("metadata", {}).get("name"), "no metadata.name"
    key = (api_version, kind)
    if key in crd_index():
        check_crd_kind(doc)
    elif key == ("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
        assert check_structural(doc) == []
    elif key == ("auth.litellm.ai/v1alpha1", "VirtualKey"):
        check_virtualkey(doc)
    elif key in (("auth.litellm.ai/v1alpha1", "User"), ("auth.litellm.ai/v1alpha1", "Team")):
        check_account(doc)
    elif key == (policy.POLICY_API_VERSION, policy.POLICY_KIND):
        check_policy(doc)
    elif key == ("v1", "Secret"):
        check_secret(doc)
    elif key in CORE_KINDS:
        assert check_core(doc) == []
    else:
        pytest.fail(f"{path}: no validator for {api_version} {kind}")


# Kubernetes' own kinds have no CRD in ../shared/schemas: checked by hand.
RBAC = "rbac.authorization.k8s.io/v1"
CORE_KINDS = {
    ("v1", "ServiceAccount"): True,
    (RBAC, "Role"): True,
    (RBAC, "RoleBinding"): True,
    (RBAC, "ClusterRole"): False,
    (RBAC, "ClusterRoleBinding"): False,
}
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"}


def check_core(doc: dict[str, Any]) -> list[str]:
    """Names and namespaces, RBAC rules and bindings, as the API server would refuse them."""
    problems = []
    meta = doc["metadata"]
    if not RFC1123_SUBDOMAIN.fullmatch(meta["name"]):
        problems.append(f"bad name {meta['name']!r}")
    namespace = meta.get("namespace")
    if CORE_KINDS[(doc["apiVersion"], doc["kind"])] != bool(namespace):
        problems.append("namespace set on a cluster-scoped kind, or missing")
    if namespace and not RFC1123_LABEL.fullmatch(namespace):
        problems.append(f"bad namespace {namespace!r}")
    return problems + _rbac_rules(doc) + _binding(doc)


def _rbac_rules(doc: dict[str, Any]) -> list[str]:
    problems = []
    for index, rule in enumerate(doc.get("rules") or []):
        verbs = set(rule.get("verbs") or [])
        if not verbs or not verbs <= VERBS:
            problems.append(f"rules[{index}].verbs {sorted(verbs)}")
        if not rule.get("nonResourceURLs") and not ("apiGroups" in rule and rule.get("resources")):
            problems.append(f"rules[{index}] needs apiGroups and resources")
    return problems


def _binding(doc: dict[str, Any]) -> list[str]:
    if not doc["kind"].endswith("Binding"):
        return []
    problems = []
    ref = doc.get("roleRef") or {}
    allowed = {"ClusterRole"} if doc["kind"] == "ClusterRoleBinding" else {"Role", "ClusterRole"}
    if ref.get("apiGroup") != "rbac.authorization.k8s.io" or ref.get("kind") not in allowed:
        problems.append(f"roleRef {ref}")
    for subject in doc.get("subjects") or []:
        if subject.get("kind") == "ServiceAccount" and not subject.get("namespace"):
            problems.append(f"subject {subject} without namespace")
    return problems


@pytest.mark.parametrize(("path", "index", "doc"), manifest_docs(manifest_files()))
def test_manifest_is_valid(path: Path, index: int, doc: dict[str, Any]) -> None:
    del index
    validate_doc(path, doc)


def test_manifest_list_is_complete() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in manifest_files()}
    assert {
        "examples/install/definition.yaml",
        "examples/legacy/definition.yaml",
        "examples/install/composition.yaml",
        "examples/legacy/composition.yaml",
        "examples/install/functions.yaml",
        "examples/install/providerconfig.yaml",
        "crossplane.yaml",
        "package/crossplane.yaml",
        "package/input/litellm.fn.crossplane.io_inputs.yaml",
    } <= files


def test_poller_examples_are_valid() -> None:
    files = sorted(POLLER_EXAMPLES.rglob("*.y*ml")) if POLLER_EXAMPLES.is_dir() else []
    if not files:
        pytest.skip("no examples/poller/*.yaml yet")
    docs = []
    for param in manifest_docs(files):
        path, _, doc = param.values
        validate_doc(path, doc)
        docs.append(doc)
    # Every binding names a role and a ServiceAccount defined here.
    defined = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in docs}
    for doc in docs:
        if doc["kind"].endswith("Binding"):
            ref = doc["roleRef"]
            namespace = doc["metadata"].get("namespace") if ref["kind"] == "Role" else None
            assert (ref["kind"], ref["name"], namespace) in defined, ref
            for subject in doc["subjects"]:
                if subject["kind"] == "ServiceAccount":
                    key = ("ServiceAccount", subject["name"], subject["namespace"])
                    assert key in defined, subject


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


# --- cross references between the manifests ---------------------------------------------


def _one(path: str) -> dict[str, Any]:
    (doc,) = _yaml_docs(ROOT / path)
    return doc


@pytest.mark.parametrize(
    ("xrd_path", "composition_path", "kind"),
    [
        ("examples/install/definition.yaml", "examples/install/composition.yaml", "VirtualKey"),
        ("examples/legacy/definition.yaml", "examples/legacy/composition.yaml", "XVirtualKey"),
    ],
)
def test_composition_matches_its_xrd_and_function(
    xrd_path: str, composition_path: str, kind: str
) -> None:
    xrd, composition = _one(xrd_path), _one(composition_path)
    function = _one("examples/install/functions.yaml")
    (version,) = xrd["spec"]["versions"]
    assert xrd["spec"]["names"]["kind"] == kind
    assert composition["spec"]["compositeTypeRef"] == {
        "apiVersion": f"{xrd['spec']['group']}/{version['name']}",
        "kind": kind,
    }
    assert xrd["spec"]["defaultCompositionRef"]["name"] == composition["metadata"]["name"]
    assert xrd["metadata"]["name"] == f"{xrd['spec']['names']['plural']}.{xrd['spec']['group']}"
    (step,) = composition["spec"]["pipeline"]
    assert step["functionRef"]["name"] == function["metadata"]["name"]
    assert step["functionRef"]["name"] == _one("package/crossplane.yaml")["metadata"]["name"]
    # The input: the Input CRD's schema, and the function's own parser.
    fn_input = step["input"]
    assert (fn_input["apiVersion"], fn_input["kind"]) == (
        "litellm.fn.crossplane.io/v1beta1",
        "Input",
    )
    assert schema_errors(input_schema(), fn_input) == []
    parsed = fn_input_module.parse_input(fn_input)
    assert parsed.provider_config_ref.name == fn_input["providerConfigRef"]["name"]


def test_providerconfig_is_what_the_composition_names() -> None:
    config = _one("examples/install/providerconfig.yaml")
    ref = _one("examples/install/composition.yaml")["spec"]["pipeline"][0]["input"][
        "providerConfigRef"
    ]
    assert (config["kind"], config["metadata"]["name"]) == (ref["kind"], ref["name"])
    assert config["apiVersion"] == "http.m.crossplane.io/v1alpha2"


def test_configuration_depends_on_this_function_and_provider_http() -> None:
    configuration = _one("crossplane.yaml")
    function = _one("examples/install/functions.yaml")
    packages = {d["kind"]: d for d in configuration["spec"]["dependsOn"]}
    image, _, tag = function["spec"]["package"].rpartition(":")
    assert packages["Function"]["package"] == image
    minimum = packages["Function"]["version"].removeprefix(">=").removeprefix("v")
    assert tuple(map(int, tag.removeprefix("v").split("."))) >= tuple(map(int, minimum.split(".")))
    assert packages["Provider"]["package"].endswith("/provider-http")


# --- the XRD: legacy = v2, patterns = the function's, CEL rules ---------------------------


XRD_FILES = {
    "VirtualKey": "install/definition.yaml",
    "User": "accounts/user-definition.yaml",
    "Team": "accounts/team-definition.yaml",
}
SPEC_MODELS: dict[str, type[Any]] = {
    "VirtualKey": key_spec.VirtualKeySpec,
    "User": account_specs.UserSpec,
    "Team": account_specs.TeamSpec,
}


@pytest.mark.parametrize("kind", sorted(XRD_FILES))
def test_legacy_xrd_versions_are_the_v2_xrds(kind: str) -> None:
    v2 = _one(f"examples/{XRD_FILES[kind]}")
    legacy = _one(f"examples/legacy/{Path(XRD_FILES[kind]).name}")
    assert legacy["spec"]["versions"] == v2["spec"]["versions"]
    assert legacy["spec"]["claimNames"] == {
        k: v for k, v in v2["spec"]["names"].items() if k != "categories"
    } | {"categories": v2["spec"]["names"]["categories"]}
    assert legacy["spec"]["group"] == v2["spec"]["group"]
    assert legacy["spec"]["names"]["kind"] == f"X{kind}"


@pytest.mark.parametrize("kind", sorted(XRD_FILES))
def test_each_xrds_fields_are_its_models_fields(kind: str) -> None:
    (version,) = _one(f"examples/{XRD_FILES[kind]}")["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    fields = SPEC_MODELS[kind].model_fields
    assert set(spec["properties"]) == {f.alias or n for n, f in fields.items()}
    assert set(spec["required"]) == {f.alias or n for n, f in fields.items() if f.is_required()}
    connection = spec["properties"]["connectionRef"]["properties"]
    assert set(connection) == {f.alias or n for n, f in ConnectionRef.model_fields.items()}


def _no_nulls(value: Any, path: str = "") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _no_nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _no_nulls(v, f"{path}[{i}]")]
    return []


@pytest.mark.parametrize(
    "path", sorted([*XRD_FILES.values(), *(f"legacy/{Path(f).name}" for f in XRD_FILES.values())])
)
def test_xrd_schemas_are_structural(path: str) -> None:
    """A YAML slip (a comma in a flow mapping) becomes a null the API server refuses."""
    xrd = _one(f"examples/{path}")
    assert _no_nulls(xrd) == []
    for version in xrd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        jsonschema.Draft7Validator.check_schema(schema)
        assert _untyped(schema) == []


def _spec_props() -> dict[str, Any]:
    props = xrd_version_schema("v2")["properties"]["spec"]["properties"]
    assert isinstance(props, dict)
    return props


def test_xrd_fields_are_the_models_fields() -> None:
    aliases = {f.alias or name for name, f in key_spec.VirtualKeySpec.model_fields.items()}
    assert set(_spec_props()) == aliases
    connection = _spec_props()["connectionRef"]["properties"]
    assert set(connection) == {f.alias or n for n, f in ConnectionRef.model_fields.items()}
    schema_required = set(xrd_version_schema("v2")["properties"]["spec"]["required"])
    model_required = {
        f.alias or n for n, f in key_spec.VirtualKeySpec.model_fields.items() if f.is_required()
    }
    assert schema_required == model_required


def test_xrd_patterns_are_the_models() -> None:
    props = _spec_props()
    conn = props["connectionRef"]["properties"]
    assert props["keyAlias"]["pattern"] == validation.KEY_ALIAS_PATTERN
    assert props["maxBudget"]["pattern"] == validation.DOLLARS_PATTERN
    assert props["softBudget"]["pattern"] == validation.DOLLARS_PATTERN
    assert props["budgetDuration"]["pattern"] == validation.DURATION_PATTERN
    assert props["duration"]["pattern"] == validation.DURATION_PATTERN
    assert conn["instanceRef"]["properties"]["name"]["pattern"] == validation.DNS_LABEL_PATTERN
    assert conn["instanceRef"]["properties"]["namespace"]["pattern"] == validation.DNS_LABEL_PATTERN
    secret = conn["masterKeySecretRef"]["properties"]
    assert secret["name"]["pattern"] == validation.DNS_SUBDOMAIN_PATTERN
    assert secret["namespace"]["pattern"] == validation.DNS_LABEL_PATTERN
    assert secret["key"]["pattern"] == validation.SECRET_KEY_PATTERN
    assert props["models"]["maxItems"] == 200
    assert props["tags"]["maxItems"] == 64
    assert props["metadata"]["maxProperties"] == 64


def test_xrd_patterns_compile_as_re2() -> None:
    """The API server uses Go's RE2: no lookarounds or backreferences."""

    def patterns(schema: Any) -> Iterator[str]:
        if isinstance(schema, dict):
            for key, value in schema.items():
                if key == "pattern":
                    yield value
                else:
                    yield from patterns(value)
        elif isinstance(schema, list):
            for item in schema:
                yield from patterns(item)

    found = [*patterns(xrd_version_schema("v2")), *patterns(input_schema())]
    assert len(found) >= 10
    for pattern in found:
        re2.compile(pattern)


def test_input_crd_matches_the_input_model() -> None:
    props = input_schema()["properties"]
    aliases = {f.alias or n for n, f in fn_input_module.Input.model_fields.items()}
    assert set(props) == aliases
    kinds = get_args(fn_input_module.ProviderConfigRef.model_fields["kind"].annotation)
    assert set(props["providerConfigRef"]["properties"]["kind"]["enum"]) == set(kinds)
    assert props["requestTimeout"]["pattern"] == r"^[1-9][0-9]{0,3}(s|m)$"
    assert fn_input_module.parse_input({"requestTimeout": "30s"}).request_timeout == "30s"


def _seed_spec() -> dict[str, Any]:
    spec = copy.deepcopy(load_example("virtualkey/virtualkey-explicit.yaml")["spec"])
    assert isinstance(spec, dict)
    return spec


def _rule_at(path: tuple[str, ...], contains: str) -> str:
    schema = xrd_version_schema("v2")["properties"]["spec"]
    for part in path:
        schema = schema["properties"][part]
    (rule,) = [str(r["rule"]) for r in _rules(schema) if contains in r["rule"]]
    return rule


def test_every_xrd_rule_is_evaluable_by_cel_python() -> None:
    def every(schema: Any) -> Iterator[str]:
        if isinstance(schema, dict):
            for rule in _rules(schema):
                yield rule["rule"]
            for value in schema.values():
                yield from every(value)
        elif isinstance(schema, list):
            for item in schema:
                yield from every(item)

    rules = list(every(xrd_version_schema("v2")))
    assert len(rules) == 12
    for rule in rules:
        _program(rule)  # raises CelUnevaluableError if cel-python cannot
    # Every rule holds for the examples on create and on an unchanged update.
    for name in (
        "virtualkey/virtualkey.yaml",
        "virtualkey/virtualkey-advanced.yaml",
        "virtualkey/virtualkey-explicit.yaml",
        "rotation/virtualkey-rotation.yaml",
    ):
        spec = load_example(name)["spec"]
        failed, unevaluable = cel_violations(xrd_version_schema("v2")["properties"]["spec"], spec)
        assert (failed, unevaluable) == ([], [])


DURATION_RULE = ((), "self.duration")
SOFT_RULE = ((), "softBudget")


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        ({}, {}, True),
        ({"duration": "30d"}, {"duration": "30d"}, True),
        ({}, {"duration": "30d"}, False),
        ({"duration": "30d"}, {}, False),
        ({"duration": "30d"}, {"duration": "60d"}, False),
    ],
)
def test_cel_duration_is_immutable(old: dict[str, Any], new: dict[str, Any], ok: bool) -> None:
    rule = _rule_at(*DURATION_RULE)
    assert cel(rule, {"keyAlias": "a1", **new}, {"keyAlias": "a1", **old}) is ok


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({}, True),
        ({"softBudget": "8"}, True),
        ({"maxBudget": "10"}, True),
        ({"softBudget": "8", "maxBudget": "10"}, True),
        ({"softBudget": "10", "maxBudget": 10}, True),
        ({"softBudget": 8, "maxBudget": "10.5"}, True),
        ({"softBudget": "10.5", "maxBudget": "10"}, False),
        ({"softBudget": "0.000001", "maxBudget": "0"}, False),
        ({"softBudget": 11, "maxBudget": 10}, False),
    ],
)
def test_cel_soft_budget_at_most_max_budget(fields: dict[str, Any], ok: bool) -> None:
    rule = _rule_at(*SOFT_RULE)
    assert cel(rule, fields) is ok
    # The function agrees with the API server.
    if "softBudget" in fields and "maxBudget" in fields:
        soft, top = Decimal(str(fields["softBudget"])), Decimal(str(fields["maxBudget"]))
        assert (soft <= top) is ok


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [("team-a-svc", "team-a-svc", True), ("team-a-svc", "team-a-svc2", False)],
)
def test_cel_key_alias_is_immutable(old: str, new: str, ok: bool) -> None:
    assert cel(_rule_at(("keyAlias",), "oldSelf"), new, old) is ok


@pytest.mark.parametrize(("alias", "ok"), [("a.b", True), ("a..b", False), ("..", False)])
def test_cel_key_alias_without_dot_dot(alias: str, ok: bool) -> None:
    assert cel(_rule_at(("keyAlias",), "contains"), alias) is ok


@pytest.mark.parametrize(
    ("metadata", "ok"),
    [
        ({}, True),
        ({"owner": "team-a", "tmpl": "{x}"}, True),
        ({"owner": "{{ a:b:c }}"}, False),
        ({"{{owner": "team-a"}, False),
        ({"a": "x{{"}, False),
    ],
)
def test_cel_metadata_without_placeholders(metadata: dict[str, str], ok: bool) -> None:
    assert cel(_rule_at(("metadata",), "{{"), metadata) is ok


@pytest.mark.parametrize(
    ("metadata", "ok"),
    [
        ({}, True),
        ({"owner": "a", "tag": "x"}, True),
        ({"logging": "x"}, False),
        ({"tags": "x"}, False),
    ],
)
def test_cel_metadata_without_litellms_own_keys(metadata: dict[str, str], ok: bool) -> None:
    assert cel(_rule_at(("metadata",), "guardrails"), metadata) is ok
    # The function agrees with the API server.
    assert (not set(metadata) & set(key_spec.RESERVED_METADATA_KEYS)) is ok


@pytest.mark.parametrize(
    ("metadata", "ok"),
    [
        ({"owner": "a"}, True),
        ({"litellm.ai/x": "a"}, True),
        ({"auth.litellm.ai/namespace": "victim"}, False),
        ({"auth.litellm.ai/virtualkey": "key", "owner": "a"}, False),
    ],
)
def test_cel_metadata_without_provenance_keys(metadata: dict[str, str], ok: bool) -> None:
    assert cel(_rule_at(("metadata",), "startsWith"), metadata) is ok
    # The function agrees with the API server.
    spec = {**_seed_spec(), "metadata": metadata}
    if ok:
        key_spec.parse_spec(spec)
    else:
        with pytest.raises(validation.InvalidInputError, match=r"auth\.litellm\.ai/"):
            key_spec.parse_spec(spec)


INSTANCE = {"name": "litellm-example", "namespace": "litellm"}
EXPLICIT = {"url": "http://litellm:4000", "masterKeySecretRef": {"name": "s"}}


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ({"instanceRef": INSTANCE}, True),
        (EXPLICIT, True),
        ({"instanceRef": INSTANCE, **EXPLICIT}, False),
        ({"instanceRef": INSTANCE, "url": "http://x"}, False),
        ({}, False),
        ({"url": "http://x"}, False),
        ({"masterKeySecretRef": {"name": "s"}}, False),
    ],
)
def test_cel_connection_ref_has_one_form(ref: dict[str, Any], ok: bool) -> None:
    props = ("connectionRef",)
    one_form = _rule_at(props, "has(self.instanceRef)")
    together = _rule_at(props, "has(self.url) ==")
    assert (cel(one_form, ref) and cel(together, ref)) is ok
    # The function's model agrees.
    spec = {"keyAlias": "ab", "connectionRef": ref}
    if ok:
        key_spec.parse_spec(spec)
    else:
        with pytest.raises(validation.InvalidInputError, match=r"spec\.connectionRef"):
            key_spec.parse_spec(spec)


@pytest.mark.parametrize(
    ("new", "ok"),
    [({"instanceRef": INSTANCE}, True), ({"instanceRef": {**INSTANCE, "name": "other"}}, False)],
)
def test_cel_connection_ref_is_immutable(new: dict[str, Any], ok: bool) -> None:
    rule = _rule_at(("connectionRef",), "oldSelf")
    assert cel(rule, new, {"instanceRef": INSTANCE}) is ok


def test_xrd_schema_refuses_what_the_function_refuses() -> None:
    """A few bad specs: both the schema (with CEL) and the function say no."""
    spec_schema = xrd_version_schema("v2")["properties"]["spec"]
    bad: list[dict[str, Any]] = [
        {"maxBudget": 0.5},
        {"maxBudget": "0.1234567"},
        {"duration": "0d"},
        {"keyAlias": "a"},
        {"models": ["{{ a:b:c }}"]},
        {"metadata": {"k": "{{ a:b:c }}"}},
        {"connectionRef": {}},
        {"tpmLimit": -1},
        {"maxParallelRequests": 0},
    ]
    for change in bad:
        spec = {**_seed_spec(), **change}
        failed, _ = cel_violations(spec_schema, spec)
        assert schema_errors(spec_schema, spec) or failed, change
        with pytest.raises(validation.InvalidInputError):
            key_spec.parse_spec(spec)


def test_readme_policy_examples_are_valid() -> None:
    """Every TenancyPolicy (and every rules fragment) the docs show passes our checks.

    They are in docs/tenancy.md; the README showed them until that page existed.
    """
    page = ROOT / "docs" / "tenancy.md"
    text = (page if page.exists() else ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    policies = [yaml.safe_load(b) for b in blocks if "kind: TenancyPolicy" in b]
    fragments = [yaml.safe_load(b) for b in blocks if b.startswith("rules:")]
    assert policies
    assert fragments
    for doc in policies:
        check_policy(doc)
    for fragment in fragments:
        declared = [{"name": "litellm-example", "namespace": "litellm"}]
        policy.parse_policy_spec({"instances": declared, **fragment})

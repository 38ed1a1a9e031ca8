"""Every manifest we ship, checked against the CRD for its kind, and against each other.

- Every YAML document in examples/ (but examples/poller/, checked on its own),
  crossplane.yaml and package/, against the CRD for its apiVersion and kind in
  ../shared/schemas (schema and CEL rules): Crossplane's, provider-http's, ours
  (the XRDs for VirtualKeys, Users and Teams, the TenancyPolicy CRD) and, for
  Kubernetes' own kinds, the rules the API server applies; each spec also
  through the function's own model.
- Cross references: each Composition names its XRD and the function, and its
  input passes package/input's CRD and `parse_input`; the ProviderConfig is the
  one the Composition names; the Configuration depends on this function.
- The TenancyPolicies the docs show.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from function import input as fn_input_module
from function.accounts import spec as account_specs
from function.keys import spec as key_spec
from function.tenancy import policy
from tests.conftest import EXAMPLES, POLLER, ROOT
from tests.manifests.cel import cel, cel_violations, cel_walk
from tests.manifests.schemas import (
    RFC1123_LABEL,
    RFC1123_SUBDOMAIN,
    crd_index,
    crd_schema,
    input_schema,
    one,
    policy_schema,
    schema_errors,
    untyped,
    xrd_version_schema,
    yaml_docs,
)

# --- every YAML file in examples/ and package/ ------------------------------------------


def manifest_files() -> list[Path]:
    examples = [p for p in sorted(EXAMPLES.rglob("*.y*ml")) if POLLER not in p.parents]
    package = sorted((ROOT / "package").rglob("*.y*ml"))
    return [*examples, ROOT / "crossplane.yaml", *package]


def manifest_docs(files: list[Path]) -> list[Any]:
    return [
        pytest.param(path, index, doc, id=f"{path.relative_to(ROOT)}#{index}")
        for path in files
        for index, doc in enumerate(yaml_docs(path))
    ]


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
        problems += [f"{version['name']}{p}" for p in untyped(schema)]
    return problems


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
        (xrd,) = yaml_docs(EXAMPLES / variant / f"{kind.lower()}-definition.yaml")
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


def check_provider(doc: dict[str, Any]) -> None:
    """provider-http's package (no Provider CRD in ../shared/schemas): v1.0.14 or later."""
    assert set(doc["spec"]) <= {"package", "runtimeConfigRef", "packagePullPolicy"}
    image, _, tag = doc["spec"]["package"].rpartition(":")
    assert image == "xpkg.crossplane.io/crossplane-contrib/provider-http"
    version = tuple(int(part) for part in tag.removeprefix("v").split("."))
    assert version >= (1, 0, 14), "earlier provider-http versions never send REMOVE"


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
    elif key == ("pkg.crossplane.io/v1", "Provider"):
        check_provider(doc)
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
    return problems + _rbacrules_of(doc) + _binding(doc)


def _rbacrules_of(doc: dict[str, Any]) -> list[str]:
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
    files = sorted(POLLER.rglob("*.y*ml")) if POLLER.is_dir() else []
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


# --- cross references between the manifests ---------------------------------------------


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
    xrd, composition = one(xrd_path), one(composition_path)
    function = one("examples/install/functions.yaml")
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
    assert step["functionRef"]["name"] == one("package/crossplane.yaml")["metadata"]["name"]
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
    config = one("examples/install/providerconfig.yaml")
    ref = one("examples/install/composition.yaml")["spec"]["pipeline"][0]["input"][
        "providerConfigRef"
    ]
    assert (config["kind"], config["metadata"]["name"]) == (ref["kind"], ref["name"])
    assert config["apiVersion"] == "http.m.crossplane.io/v1alpha2"


def test_configuration_depends_on_this_function_and_provider_http() -> None:
    configuration = one("crossplane.yaml")
    function = one("examples/install/functions.yaml")
    packages = {d["kind"]: d for d in configuration["spec"]["dependsOn"]}
    image, _, tag = function["spec"]["package"].rpartition(":")
    assert packages["Function"]["package"] == image
    minimum = packages["Function"]["version"].removeprefix(">=").removeprefix("v")
    assert tuple(map(int, tag.removeprefix("v").split("."))) >= tuple(map(int, minimum.split(".")))
    assert packages["Provider"]["package"].endswith("/provider-http")


# --- the docs' examples -------------------------------------------------------------------


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

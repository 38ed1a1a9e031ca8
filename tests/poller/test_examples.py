"""The sidecar's manifests: schema-valid, wired to the code, least privilege."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from function.main import parser
from function.poller.kube import FIELD_MANAGER, LEGACY_PLURAL, PLURAL
from function.poller.settings import DEFAULT_LEASE_NAME, DEFAULT_METRICS_ADDRESS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "poller"
SCHEMA = (
    ROOT.parent
    / "shared"
    / "schemas"
    / "crossplane"
    / "pkg.crossplane.io_deploymentruntimeconfigs.yaml"
)


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


@pytest.mark.skipif(not SCHEMA.exists(), reason="../shared/schemas is not beside the checkout")
def test_deploymentruntimeconfig_matches_crossplane_schema() -> None:
    crd = yaml.safe_load(SCHEMA.read_text())
    schema = next(
        v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == "v1beta1"
    )
    [drc] = _docs("deploymentruntimeconfig.yaml")
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(drc)]
    assert errors == []


def test_sidecar_runs_poll_beside_package_runtime() -> None:
    [drc] = _docs("deploymentruntimeconfig.yaml")
    pod = drc["spec"]["deploymentTemplate"]["spec"]["template"]["spec"]
    names = [c["name"] for c in pod["containers"]]
    assert names == ["package-runtime", "poller"]
    poller = pod["containers"][1]
    assert poller["args"] == ["poll"]
    [function] = _docs("function.yaml")
    assert poller["image"] == function["spec"]["package"]
    assert function["spec"]["runtimeConfigRef"]["name"] == drc["metadata"]["name"]
    assert poller["ports"][0]["containerPort"] == int(DEFAULT_METRICS_ADDRESS.rsplit(":", 1)[1])
    # Every env var the example sets is one the command reads.
    top = parser()
    commands: Any = top._subparsers._group_actions[0]  # type: ignore[union-attr]
    poll_help = commands.choices["poll"].format_help()
    for env in poller["env"]:
        if env["name"].startswith("POLLER_"):
            assert env["name"] in poll_help
    sa = next(d for d in _docs("rbac.yaml") if d["kind"] == "ServiceAccount")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]


def test_rbac_is_least_privilege() -> None:
    docs = _docs("rbac.yaml")
    granted: set[tuple[str, str, str, str]] = set()
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "Role"):
            scope = doc["metadata"].get("namespace", "*")
            for rule in doc["rules"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert "*" not in (resource, verb)
                        granted.add(
                            (scope, resource, verb, ",".join(rule.get("resourceNames", [])))
                        )
    assert {(r, v) for s, r, v, _ in granted if s == "*"} == {
        (PLURAL, "get"),
        (PLURAL, "list"),
        (PLURAL, "watch"),
        (LEGACY_PLURAL, "get"),
        (LEGACY_PLURAL, "list"),
        (LEGACY_PLURAL, "watch"),
        (f"{PLURAL}/status", "patch"),
        (f"{LEGACY_PLURAL}/status", "patch"),
        ("events", "create"),
        ("events", "patch"),
        ("tenancypolicies", "list"),
        ("namespaces", "list"),
    }
    secrets = [g for g in granted if g[1] == "secrets"]
    assert secrets == [("litellm", "secrets", "get", "litellm-example-secrets")]
    leases = {(v, n) for _, r, v, n in granted if r == "leases"}
    assert leases == {("create", ""), ("get", DEFAULT_LEASE_NAME), ("update", DEFAULT_LEASE_NAME)}
    assert FIELD_MANAGER == "function-litellm-keys-poller"

"""The sidecar's manifests: schema-valid, wired to the code, least privilege."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from function.main import main, parser
from function.poller.kube import FIELD_MANAGER, LEGACY_PLURAL, PLURAL
from function.poller.rbac import ROLE_NAME, master_key_rbac, master_key_secrets
from function.poller.settings import DEFAULT_LEASE_NAME, DEFAULT_METRICS_ADDRESS
from function.provider_http.mask import DEFAULT_NAMESPACE as DEFAULT_MASK_NAMESPACE

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
        *{(plural, "list") for plural in ("users", "teams", "xusers", "xteams")},
        *{(f"{p}/status", "patch") for p in ("users", "teams", "xusers", "xteams")},
        ("requests", "get"),  # provider-http's, for the mask Secrets' collection
        ("requests", "list"),
    }
    secrets = sorted(g for g in granted if g[1] == "secrets")
    assert secrets == [
        # The mask Secrets, in the mask namespace only (no Secret data is ever listed).
        (DEFAULT_MASK_NAMESPACE, "secrets", "delete", ""),
        (DEFAULT_MASK_NAMESPACE, "secrets", "list", ""),
        ("litellm", "secrets", "get", "litellm-example-secrets"),
    ]
    leases = {(v, n) for _, r, v, n in granted if r == "leases"}
    assert leases == {("create", ""), ("get", DEFAULT_LEASE_NAME), ("update", DEFAULT_LEASE_NAME)}
    assert FIELD_MANAGER == "function-litellm-keys-poller"


def _master_key_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["metadata"]["name"] == ROLE_NAME]


def test_master_key_rbac_follows_the_shipped_policy() -> None:
    # The seed's instance is litellm-example: its Secret, not a convention's guess.
    policies = list(
        yaml.safe_load_all((ROOT / "examples" / "install" / "tenancy-policy.yaml").read_text())
    )
    generated = master_key_rbac([p for p in policies if p])
    assert _master_key_docs(_docs("rbac.yaml")) == generated
    (role,) = [d for d in generated if d["kind"] == "Role"]
    assert role["rules"][0]["resourceNames"] == ["litellm-example-secrets"]


def test_master_key_rbac_covers_every_declared_instance() -> None:
    policy = {
        "spec": {
            "instances": [
                {"name": "a", "namespace": "llm"},
                {"name": "b", "namespace": "llm", "masterKeySecretRef": {"name": "shared"}},
                {"name": "c", "namespace": "other", "masterKeySecretRef": {"namespace": "vault"}},
            ]
        }
    }
    assert master_key_secrets([policy]) == {"llm": ["a-secrets", "shared"], "vault": ["c-secrets"]}
    roles = [d for d in master_key_rbac([policy], "fns") if d["kind"] == "RoleBinding"]
    assert {r["metadata"]["namespace"] for r in roles} == {"llm", "vault"}
    assert all(r["subjects"][0]["namespace"] == "fns" for r in roles)


def test_poller_rbac_command_prints_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["poller-rbac", str(ROOT / "examples" / "install" / "tenancy-policy.yaml")]) == 0
    printed = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert printed == _master_key_docs(_docs("rbac.yaml"))

"""The poller's master-key RBAC, made from the TenancyPolicies. Pure.

The poller reads each instance's master key itself, and only those: one Role a
namespace, allowing `get` on exactly the Secrets the policies declare there, and
a RoleBinding to the poller's ServiceAccount. `master_key_rbac(policies)` makes
them, so the RBAC follows the instances the platform configures instead of a
hand-kept copy (`function-litellm-keys poller-rbac POLICY.yaml`, whose output
is the tail of examples/poller/rbac.yaml).

Tenant-owned proxies are not covered: their master keys live in tenant
namespaces, which the platform grants one by one if it allows such proxies.
"""

from __future__ import annotations

from typing import Any

from function.tenancy.policy import parse_policy_spec

ROLE_NAME = "function-litellm-keys-poller-master-key"
SERVICE_ACCOUNT = "function-litellm-keys-poller"


def master_key_secrets(policies: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Secret names by namespace, for every instance any policy declares (invalid ones refused)."""
    found: dict[str, set[str]] = {}
    for policy in policies:
        for instance in parse_policy_spec(policy.get("spec")).instances:
            ref = instance.connection().master_key
            found.setdefault(ref.namespace, set()).add(ref.name)
    return {ns: sorted(names) for ns, names in sorted(found.items())}


def master_key_rbac(
    policies: list[dict[str, Any]], poller_namespace: str = "crossplane-system"
) -> list[dict[str, Any]]:
    """A Role and a RoleBinding per namespace that holds a declared master key."""
    documents: list[dict[str, Any]] = []
    for namespace, names in master_key_secrets(policies).items():
        meta = {"name": ROLE_NAME, "namespace": namespace}
        documents.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta,
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["secrets"],
                        "resourceNames": names,
                        "verbs": ["get"],
                    }
                ],
            }
        )
        documents.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": dict(meta),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": ROLE_NAME,
                },
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": SERVICE_ACCOUNT,
                        "namespace": poller_namespace,
                    }
                ],
            }
        )
    return documents

"""TenancyPolicies and VirtualKeys for the tenancy tests: the shipped policy and a second tenant.

`policy()`, `instance()` and `rule()` write a TenancyPolicy as the platform
would; `SHIPPED` is examples/install/tenancy-policy.yaml and `TEAM_B` a second
tenant with its own instance, bound team and allowed user. `seed()`,
`explicit()` and `in_namespace()` make the seed VirtualKey ask for more.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.conftest import load_example


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "litellm.fn.crossplane.io/v1beta1",
        "kind": "TenancyPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def instance(name: str = "litellm-example", namespace: str = "litellm", **more: Any) -> Any:
    return {"name": name, "namespace": namespace, **more}


def rule(name: str, names: list[str] | None = None, **grants: Any) -> dict[str, Any]:
    selector = grants.pop("selector", None)
    namespaces: dict[str, Any] = {"names": names or []}
    if selector is not None:
        namespaces["selector"] = selector
    return {"name": name, "namespaces": namespaces, **grants}


SHIPPED = load_example("install/tenancy-policy.yaml")
# A second tenant with its own instance, bound team and allowed user.
TEAM_B = policy(
    "team-b",
    instances=[instance("litellm-b", "litellm-b")],
    rules=[
        rule(
            "team-b",
            ["team-b"],
            instances=[instance("litellm-b", "litellm-b")],
            teams={"bind": "team-b-id", "allow": ["shared-research"]},
            users={"allow": ["svc-batch"]},
        )
    ],
)


def seed(**spec: Any) -> dict[str, Any]:
    xr = copy.deepcopy(load_example("virtualkey/virtualkey.yaml"))
    xr["spec"].update(spec)
    return xr


def explicit(url: str, secret_namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": "litellm-example-secrets", "key": "masterkey"}
    if secret_namespace is not None:
        ref["namespace"] = secret_namespace
    return seed(connectionRef={"url": url, "masterKeySecretRef": ref}, **spec)


def in_namespace(xr: dict[str, Any], namespace: str) -> dict[str, Any]:
    xr["metadata"]["namespace"] = namespace
    return xr

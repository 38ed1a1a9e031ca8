"""Components die at the worst moment; nothing is lost, nothing is orphaned.

provider-http is killed (SIGKILL) while it creates a key and started again: one
key on the proxy, managed. The function and Crossplane core are killed while a
change is pending: nothing is deleted meanwhile, and the change lands after.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest

from tests.cluster.conftest import Plane, Tenant, condition, key_info, keys_with_alias, until
from tests.conftest import Proxy, chat

pytestmark = pytest.mark.cluster

CREATE_PENDING = "crossplane.io/external-create-pending"


def _budget_is(proxy: Proxy, token: str, dollars: float) -> bool:
    return bool(key_info(proxy, token)["max_budget"] == dollars)


def _request(plane: Plane, namespace: str, name: str) -> dict[str, Any] | None:
    found = plane.items(
        "requests.http.m.crossplane.io", namespace, f"crossplane.io/composite={name}"
    )
    return found[0] if found else None


@pytest.mark.parametrize("moment", ["before CREATE", "as CREATE starts"])
def test_provider_http_killed_during_create_leaves_one_managed_key(
    tenant: Tenant, proxy: Proxy, platform: Plane, moment: str
) -> None:
    platform.component("kill", "provider-http")
    try:
        xr = tenant.virtualkey()
        meta = xr["metadata"]
        until(lambda: _request(platform, meta["namespace"], meta["name"]), "the Request")
        platform.component("start", "provider-http")
        if moment == "as CREATE starts":
            until(
                lambda: (
                    CREATE_PENDING
                    in (
                        (_request(platform, meta["namespace"], meta["name"]) or {}).get("metadata")
                        or {}
                    ).get("annotations", {})
                ),
                "provider-http to start the CREATE",
                60,
            )
        else:
            time.sleep(0.2)
        platform.component("kill", "provider-http")
    finally:
        platform.component("start", "provider-http")
    ready = tenant.ready(xr, 180)
    live = keys_with_alias(proxy, xr["spec"]["keyAlias"])
    assert [k["token"] for k in live] == [ready["status"]["tokenHash"]]
    assert chat(proxy, tenant.key(xr)) == 200


def test_function_and_crossplane_killed_mid_run_delete_nothing(
    tenant: Tenant, proxy: Proxy, platform: Plane
) -> None:
    xr = tenant.ready(tenant.virtualkey())
    meta, key, token = xr["metadata"], tenant.key(xr), xr["status"]["tokenHash"]
    request = _request(platform, meta["namespace"], meta["name"])
    assert request is not None
    patch = ["patch", "virtualkey", "-n", meta["namespace"], meta["name"], "--type=merge", "-p"]
    for component, budget in (("function", "42"), ("crossplane", "43")):
        platform.component("kill", component)
        try:
            platform.kubectl(*patch, f'{{"spec":{{"maxBudget":"{budget}"}}}}')
            time.sleep(5)  # Crossplane retries and fails (or is gone) meanwhile
            # The same Request (no new key, no REMOVE), and the same Secret.
            now = _request(platform, meta["namespace"], meta["name"])
            assert now is not None
            assert now["metadata"]["uid"] == request["metadata"]["uid"]
            assert tenant.key(xr) == key
            assert chat(proxy, key) == 200
        finally:
            platform.component("start", component)
        until(
            functools.partial(_budget_is, proxy, token, float(budget)),
            f"maxBudget {budget} after {component} came back",
            180,
        )
    found = platform.get("virtualkey", meta["name"], meta["namespace"])
    assert found is not None
    assert found["status"]["tokenHash"] == token
    assert condition(found, "Ready")["status"] == "True"
    assert chat(proxy, key) == 200

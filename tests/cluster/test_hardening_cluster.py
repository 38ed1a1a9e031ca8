"""Keys under faults on the real control plane (issue 9, items 1 to 4).

1. Deleting a VirtualKey while the proxy refuses the master key: the Request
   keeps its finalizer and the key stays managed; once the master key is right,
   REMOVE deletes it.
2. A key deleted on the proxy by an admin never comes back with the same value.
3. A key Secret rewritten by the tenant between compose and CREATE: the key
   the tenant chose is deleted.
4. provider-http cannot write the mask Secret (a ResourceQuota on Secrets in the
   mask namespace): it stores the raw key unmasked, and the function says so.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.cluster.conftest import Plane, Tenant, key_info, keys_with_alias, platform_policy, until
from tests.conftest import INSTALL, VIRTUALKEYS, Proxy, chat

pytestmark = pytest.mark.cluster

MASTER = ["-n", "litellm", "litellm-example-secrets"]


def _requests(plane: Plane, namespace: str, name: str) -> list[dict[str, object]]:
    return plane.items(
        "requests.http.m.crossplane.io", namespace, f"crossplane.io/composite={name}"
    )


def _set_master_key(plane: Plane, value: str) -> None:
    patch = json.dumps({"stringData": {"masterkey": value}})
    plane.kubectl("patch", "secret", *MASTER, "--type=merge", "-p", patch)


def test_delete_while_the_proxy_refuses_the_master_key_waits(
    tenant: Tenant, proxy: Proxy, platform: Plane
) -> None:
    xr = tenant.ready(tenant.virtualkey())
    meta, key, token = xr["metadata"], tenant.key(xr), xr["status"]["tokenHash"]
    until(lambda: key_info(proxy, token).get("created_at"), "the key on the proxy")
    try:
        _set_master_key(platform, "sk-wrong-master-key")
        platform.kubectl(
            "delete", "virtualkey", "-n", meta["namespace"], meta["name"], "--wait=false"
        )
        # provider-http's create grace (30 s) and a few polls: REMOVE is refused all along.
        until(
            lambda: platform.get("virtualkey", meta["name"], meta["namespace"]) is None,
            "the VirtualKey to go",
        )
        time.sleep(45)
        (request,) = _requests(platform, meta["namespace"], meta["name"])
        assert request["metadata"]["deletionTimestamp"]  # type: ignore[index]
        assert key_info(proxy, token).get("status") != "deleted"
        assert chat(proxy, key) == 200  # still there, and still managed
    finally:
        _set_master_key(platform, proxy.master_key)
    until(lambda: key_info(proxy, token).get("status") == "deleted", "REMOVE once fixed", 180)
    until(lambda: not _requests(platform, meta["namespace"], meta["name"]), "the Request to go")
    assert chat(proxy, key) == 401


def test_a_revoked_key_never_comes_back(tenant: Tenant, proxy: Proxy) -> None:
    xr = tenant.ready(tenant.virtualkey())
    meta, old_key, old_token = xr["metadata"], tenant.key(xr), xr["status"]["tokenHash"]
    with proxy.admin() as admin:
        admin.post("/key/delete", json={"keys": [old_token]}).raise_for_status()

    def replaced() -> bool:
        found = tenant.plane.get("virtualkey", meta["name"], meta["namespace"]) or {}
        return (found.get("status") or {}).get("tokenHash") not in (None, old_token)

    until(replaced, "a new key", 180)
    tenant.ready(xr, 180)
    new_key = tenant.key(xr)
    assert new_key != old_key
    until(lambda: chat(proxy, new_key) == 200, "the new key to work")
    assert chat(proxy, old_key) == 401
    events = tenant.plane.kubectl(
        "get", "events", "-n", meta["namespace"], "--field-selector",
        f"involvedObject.name={meta['name']}", "-o", "jsonpath={.items[*].message}",
    ).stdout  # fmt: skip
    assert "revoked" in events


def test_a_key_the_tenant_chose_is_deleted(tenant: Tenant, proxy: Proxy, platform: Plane) -> None:
    chosen = "sk-" + ("TenantChoseThisKey" + tenant.unique * 4)[:43]
    platform.component("kill", "provider-http")
    try:
        xr = tenant.virtualkey()
        meta = xr["metadata"]
        until(lambda: _requests(platform, meta["namespace"], meta["name"]), "the Request")
        # Crossplane is gone for a moment, so the tenant's write stands until CREATE.
        platform.component("kill", "crossplane")
        try:
            secret = f"{meta['name']}-litellm-key"
            data = json.dumps({"data": {"key": base64.b64encode(chosen.encode()).decode()}})
            platform.kubectl("patch", "secret", "-n", meta["namespace"], secret, "-p", data)
            platform.component("start", "provider-http")
            until(lambda: chat(proxy, chosen) == 200, "the tenant's key to be created", 90)
        finally:
            platform.component("start", "crossplane")
    finally:
        platform.component("start", "provider-http")
    until(lambda: chat(proxy, chosen) == 401, "the tenant's key to be deleted", 240)
    tenant.ready(xr, 180)
    key = tenant.key(xr)
    assert key != chosen
    until(lambda: chat(proxy, key) == 200, "the VirtualKey's own key to work", 180)
    live = keys_with_alias(proxy, xr["spec"]["keyAlias"])
    assert len(live) == 1


@pytest.fixture
def quota_namespace(platform: Plane, proxy: Proxy, unique: str) -> Iterator[str]:
    """A tenant namespace granted the instance, whose keys a Composition of their own masks
    in a namespace whose quota allows no Secret at all (where provider-http cannot write)."""
    namespace, masks = f"team-q-{unique}", f"masks-q-{unique}"
    for name in (namespace, masks):
        platform.kubectl("create", "namespace", name)
    policy = platform_policy(proxy.url)
    policy["metadata"]["name"] = f"quota-{unique}"
    policy["spec"]["rules"] = [
        {
            "name": "quota",
            "namespaces": {"names": [namespace]},
            "instances": [{"name": "litellm-example", "namespace": "litellm"}],
        }
    ]
    composition = yaml.safe_load((INSTALL / "composition.yaml").read_text())
    composition["metadata"]["name"] = f"quota-{unique}"
    composition["spec"]["pipeline"][0]["input"]["maskSecretNamespace"] = masks
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-secrets", "namespace": masks},
        "spec": {"hard": {"count/secrets": "0"}},
    }
    platform.apply(policy, composition, quota)
    yield namespace
    # The Requests finish their REMOVE before the namespace goes: in a terminating
    # namespace provider-http can no longer record its ProviderConfig usage.
    platform.kubectl("delete", "virtualkeys", "--all", "-n", namespace, "--wait=true")
    until(
        lambda: not platform.items("requests.http.m.crossplane.io", namespace),
        "the Requests to finish deleting",
        180,
    )
    platform.kubectl("delete", "tenancypolicy", f"quota-{unique}", "--wait=false")
    platform.kubectl("delete", "composition", f"quota-{unique}", "--wait=false")
    for name in (namespace, masks):
        platform.kubectl("delete", "namespace", name, "--wait=false")


def _exposed_note(platform: Plane, namespace: str, name: str) -> str:
    (request,) = _requests(platform, namespace, name)
    annotations = request["metadata"].get("annotations") or {}  # type: ignore[attr-defined]
    return str(annotations.get("auth.litellm.ai/exposed") or "")


def test_a_raw_key_stored_unmasked_is_reported(
    tenant: Tenant, platform: Plane, quota_namespace: str
) -> None:
    xr = yaml.safe_load((VIRTUALKEYS / "virtualkey.yaml").read_text())
    xr["metadata"].update(name=f"quota-{tenant.unique}", namespace=quota_namespace)
    xr["spec"]["keyAlias"] = f"quota-{tenant.unique}"
    xr["spec"]["crossplane"] = {"compositionRef": {"name": f"quota-{tenant.unique}"}}
    platform.apply(xr)
    tenant.made.append((quota_namespace, xr["metadata"]["name"]))
    meta = xr["metadata"]

    def exposed() -> str:
        events = platform.kubectl(
            "get", "events", "-n", quota_namespace, "--field-selector",
            f"involvedObject.name={meta['name']}", "-o", "jsonpath={.items[*].message}",
        ).stdout  # fmt: skip
        return events if "unmasked" in events else ""

    events = until(exposed, "the warning that the key is stored unmasked", 180)
    assert "Fix provider-http's access" in events
    key = platform.secret_value(quota_namespace, f"{meta['name']}-litellm-key", "key")
    assert key not in events
    # The warning lasts until the key is rotated: the key's Request remembers it.
    note = until(
        lambda: _exposed_note(platform, quota_namespace, meta["name"]),
        "the exposed key's Request to say so",
    )
    assert note == "true"
    # The fault was real: the quota kept provider-http from writing the Secret
    # that masks the key (the unmasked answer itself is replaced at its next OBSERVE).
    (request,) = _requests(platform, quota_namespace, meta["name"])
    injection = request["spec"]["forProvider"]["secretInjectionConfigs"][0]  # type: ignore[index]
    assert injection["secretRef"]["namespace"] == f"masks-q-{tenant.unique}"
    assert (
        platform.get("secret", injection["secretRef"]["name"], f"masks-q-{tenant.unique}") is None
    )

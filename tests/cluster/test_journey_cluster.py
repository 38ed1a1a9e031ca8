"""The seed's journey on the real control plane: Crossplane core, provider-http, the proxy.

Nothing here is re-implemented: Crossplane composes, server-side applies and
garbage-collects, provider-http calls LiteLLM, kube-controller-manager's garbage
collector deletes what the XR owned. The README's kubectl lines run verbatim.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionUserMessageParam

from tests.cluster.conftest import (
    Plane,
    Tenant,
    condition,
    key_info,
    keys_with_alias,
    platform_policy,
    poll_once,
    run_readme_journey,
    until,
)
from tests.conftest import VIRTUALKEYS, Proxy, chat

pytestmark = pytest.mark.cluster

HELLO = [ChatCompletionUserMessageParam(role="user", content="hello")]


def test_readme_journey_runs_verbatim(platform: Plane, proxy: Proxy) -> None:
    try:
        run_readme_journey(platform, proxy)
        # REMOVE deleted the key on the proxy; the XR owned nothing that is left.
        # (/key/list leaves deleted keys out.)
        until(lambda: keys_with_alias(proxy, "example-service") == [], "the key's deletion")
        until(
            lambda: (
                not platform.items(
                    "requests.http.m.crossplane.io",
                    "team-a",
                    "crossplane.io/composite=example-service",
                )
            ),
            "the Request to be garbage-collected",
        )
        assert platform.get("secret", "example-service-litellm-key", "team-a") is None
        # The advanced seed key is in place too, with its budget.
        research = platform.get("virtualkey", "research-key", "team-a")
        assert condition(research, "Ready").get("status") == "True"
        assert research is not None
        info = key_info(proxy, research["status"]["tokenHash"])
        assert (info["max_budget"], sorted(info["models"])) == (
            250.0,
            ["claude-3-sonnet", "gemini-pro", "gpt-4o"],
        )
    finally:
        platform.kubectl("delete", "-f", str(VIRTUALKEYS / "virtualkey-advanced.yaml"), check=False)
        platform.kubectl("delete", "-f", str(VIRTUALKEYS / "virtualkey.yaml"), check=False)


def test_openai_client_uses_the_secret(tenant: Tenant) -> None:
    xr = tenant.ready(tenant.virtualkey())
    meta = xr["metadata"]
    secret = xr["status"]["keySecretRef"]
    client = openai.OpenAI(
        api_key=tenant.plane.secret_value(meta["namespace"], secret, "key"),
        base_url=tenant.plane.secret_value(meta["namespace"], secret, "baseUrl"),
        max_retries=0,
        timeout=60,
    )
    reply = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert "Hello from the mock gpt-4o" in (reply.choices[0].message.content or "")
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)


def test_update_in_place_and_drift_is_put_back(tenant: Tenant, proxy: Proxy) -> None:
    xr = tenant.ready(tenant.virtualkey())
    meta = xr["metadata"]
    token, key = xr["status"]["tokenHash"], tenant.key(xr)
    tenant.plane.kubectl(
        "patch", "virtualkey", "-n", meta["namespace"], meta["name"], "--type=merge",
        "-p", '{"spec":{"maxBudget":"200"}}',
    )  # fmt: skip
    until(lambda: key_info(proxy, token)["max_budget"] == 200.0, "the new budget on the proxy")
    after = tenant.plane.get("virtualkey", meta["name"], meta["namespace"])
    assert after is not None
    assert after["status"]["tokenHash"] == token
    assert tenant.key(xr) == key
    # Someone changes the key on the proxy: provider-http's next OBSERVE sees it.
    with proxy.admin() as admin:
        admin.post("/key/update", json={"key": token, "max_budget": 3, "models": []})
    until(
        lambda: (
            key_info(proxy, token)["max_budget"] == 200.0
            and key_info(proxy, token)["models"] == ["gpt-4o"]
        ),
        "the drift to be put back",
    )
    assert chat(proxy, key) == 200


def test_block_and_unblock(tenant: Tenant, proxy: Proxy) -> None:
    xr = tenant.ready(tenant.virtualkey())
    meta, key = xr["metadata"], tenant.key(xr)
    patch = ["patch", "virtualkey", "-n", meta["namespace"], meta["name"], "--type=merge", "-p"]
    tenant.plane.kubectl(*patch, '{"spec":{"blocked":true}}')
    until(lambda: chat(proxy, key) == 401, "the blocked key to be refused")
    tenant.plane.kubectl(*patch, '{"spec":{"blocked":false}}')
    until(lambda: chat(proxy, key) == 200, "the unblocked key to work")


def test_a_lost_secret_rotates_the_key(tenant: Tenant, proxy: Proxy) -> None:
    xr = tenant.ready(tenant.virtualkey())
    meta = xr["metadata"]
    old_token, old_key = xr["status"]["tokenHash"], tenant.key(xr)
    tenant.plane.kubectl("delete", "secret", "-n", meta["namespace"], xr["status"]["keySecretRef"])

    def rotated() -> bool:
        found = tenant.plane.get("virtualkey", meta["name"], meta["namespace"])
        return bool(
            found
            and found["status"].get("tokenHash") != old_token
            and condition(found, "Ready").get("status") == "True"
        )

    until(rotated, "a new key to be Ready", 180)
    new_key = tenant.key(xr)
    assert new_key != old_key
    assert chat(proxy, new_key) == 200
    until(lambda: chat(proxy, old_key) == 401, "the old key to be deleted")
    now = tenant.plane.get("virtualkey", meta["name"], meta["namespace"])
    assert now is not None
    live = keys_with_alias(proxy, xr["spec"]["keyAlias"])  # deleted keys are left out
    assert [k["token"] for k in live] == [now["status"]["tokenHash"]]
    events = tenant.plane.kubectl(
        "get", "events", "-n", meta["namespace"], "--field-selector",
        f"involvedObject.name={meta['name']}", "-o", "jsonpath={.items[*].message}",
    ).stdout  # fmt: skip
    assert "Clients must read the new key" in events


def test_wrong_master_key_deletes_nothing_and_recovers(
    tenant: Tenant, proxy: Proxy, platform: Plane
) -> None:
    xr = tenant.ready(tenant.virtualkey())
    meta, key = xr["metadata"], tenant.key(xr)
    secret = ["-n", "litellm", "litellm-example-secrets"]
    try:
        platform.kubectl(
            "patch", "secret", *secret, "--type=merge",
            "-p", '{"stringData":{"masterkey":"sk-wrong-master-key"}}',
        )  # fmt: skip
        # Drift makes provider-http call LiteLLM again, with the wrong key.
        with proxy.admin() as admin:
            admin.post("/key/update", json={"key": xr["status"]["tokenHash"], "max_budget": 1})

        until(lambda: tenant.reason(xr) == "Unauthorized", "KeyReady to say Unauthorized")
        found = platform.get("virtualkey", meta["name"], meta["namespace"])
        assert (
            "Put the proxy's master key in Secret litellm/litellm-example-secrets"
            in (condition(found, "KeyReady")["message"])
        )
        assert chat(proxy, key) == 200
        assert tenant.key(xr) == key
    finally:
        platform.kubectl(
            "patch", "secret", *secret, "--type=merge",
            "-p", f'{{"stringData":{{"masterkey":"{proxy.master_key}"}}}}',
        )  # fmt: skip
    tenant.ready(xr)
    until(lambda: tenant.reason(xr) == "Available", "KeyReady to recover")
    assert chat(proxy, key) == 200


def test_proxy_unreachable_deletes_nothing_and_recovers(
    tenant: Tenant, proxy: Proxy, platform: Plane
) -> None:
    xr = tenant.ready(tenant.virtualkey())
    key, token = tenant.key(xr), xr["status"]["tokenHash"]
    try:
        # The platform moves the instance where nothing listens.
        platform.apply(platform_policy("http://127.0.0.1:9"))
        until(lambda: tenant.reason(xr) == "ProxyUnreachable", "KeyReady: ProxyUnreachable")
        assert tenant.key(xr) == key
        assert key_info(proxy, token).get("status") != "deleted"
    finally:
        platform.apply(platform_policy(proxy.url))
    until(lambda: tenant.reason(xr) == "Available", "KeyReady to recover")
    assert chat(proxy, key) == 200


def test_deleting_removes_the_key_and_leaves_the_mask_secret_to_the_poller(
    tenant: Tenant, proxy: Proxy, platform: Plane, poller_kubeconfig: Path
) -> None:
    """provider-http masks the key /key/generate echoes with a Secret in crossplane-system
    (function.provider_http.mask), where tenants cannot delete it; the Request cannot own it
    there, so the poller deletes it once the Request is gone."""
    xr = tenant.ready(tenant.virtualkey())
    meta, key, token = xr["metadata"], tenant.key(xr), xr["status"]["tokenHash"]
    (request,) = platform.items(
        "requests.http.m.crossplane.io",
        meta["namespace"],
        f"crossplane.io/composite={meta['name']}",
    )
    ref = request["spec"]["forProvider"]["secretInjectionConfigs"][0]["secretRef"]
    assert ref["namespace"] == "crossplane-system"
    mask = platform.get("secret", ref["name"], "crossplane-system")
    assert mask is not None
    assert not mask["metadata"].get("ownerReferences")
    platform.kubectl("delete", "virtualkey", "-n", meta["namespace"], meta["name"])
    until(lambda: key_info(proxy, token).get("status") == "deleted", "REMOVE on the proxy", 180)
    assert chat(proxy, key) == 401

    def collected() -> bool:
        done = poll_once(poller_kubeconfig, "--mask-min-age", "0")
        assert done.returncode == 0, done.stderr
        return platform.get("secret", ref["name"], "crossplane-system") is None

    until(collected, "the poller to delete the orphaned mask Secret", 120)

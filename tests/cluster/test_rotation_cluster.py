"""Rotation and recovery after a reinstall (issue 11) on the real control plane.

1. Bumping `spec.rotation.trigger` rotates the key: the Secret switches to a
   new key, the old one keeps working for the grace period and is deleted
   after it, the spend carries over and the poller keeps reporting it.
2. A key left on the proxy by an earlier cluster, whose provenance names
   this VirtualKey, is replaced: the VirtualKey becomes Ready with the old
   key's spend, and no key is left behind.
3. A key with the alias that names no VirtualKey is never touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from function.keys.secrets import new_key, token_of
from tests.cluster.conftest import (
    Plane,
    Tenant,
    condition,
    key_info,
    keys_with_alias,
    platform_policy,
    poll_once,
    until,
)
from tests.conftest import Proxy, chat

pytestmark = pytest.mark.cluster


def status_of(plane: Plane, xr: dict[str, Any]) -> dict[str, Any]:
    found = plane.get("virtualkey", xr["metadata"]["name"], xr["metadata"]["namespace"])
    assert found is not None
    status: dict[str, Any] = found.get("status") or {}
    return status


def events_of(plane: Plane, xr: dict[str, Any]) -> str:
    meta = xr["metadata"]
    return plane.kubectl(
        "get", "events", "-n", meta["namespace"], "--field-selector",
        f"involvedObject.name={meta['name']}", "-o", "jsonpath={.items[*].message}",
    ).stdout  # fmt: skip


@pytest.fixture
def rotating_often(platform: Plane, proxy: Proxy) -> Iterator[None]:
    """The shipped policy, letting a key rotate a second after its Request was made
    (keys.minRotationInterval counts from then; its default is an hour)."""
    policy = platform_policy(proxy.url)
    policy["spec"]["rules"][0]["keys"] = {"minRotationInterval": "1s"}
    platform.apply(policy)
    yield
    platform.apply(platform_policy(proxy.url))


@pytest.mark.usefixtures("rotating_often")
def test_a_bumped_trigger_rotates_with_a_grace_period(
    tenant: Tenant, proxy: Proxy, poller_kubeconfig: Path
) -> None:
    xr = tenant.ready(tenant.virtualkey(rotation={"trigger": 0, "gracePeriod": "20s"}))
    meta, old_key = xr["metadata"], tenant.key(xr)
    old_token = token_of(old_key)
    until(lambda: chat(proxy, old_key) == 200, "the key to work")
    until(lambda: key_info(proxy, old_token).get("spend"), "the spend on the proxy", 60)
    spent = float(key_info(proxy, old_token)["spend"])
    patch = json.dumps({"spec": {"rotation": {"trigger": 1}}})
    tenant.plane.kubectl(
        "patch", "virtualkey", "-n", meta["namespace"], meta["name"], "--type=merge", "-p", patch
    )
    until(lambda: tenant.key(xr) != old_key, "the Secret to hold a new key", 180)
    new = tenant.key(xr)
    # During the grace period both keys work.
    assert chat(proxy, new) == 200
    assert chat(proxy, old_key) == 200
    assert float(key_info(proxy, token_of(new))["spend"]) >= spent
    status = until(
        lambda: (s := status_of(tenant.plane, xr)).get("tokenHash") == token_of(new) and s,
        "the status to name the new key",
    )
    assert status["rotation"]["lastRotatedAt"]
    # What the function remembers is on the new key's Request, never in the status.
    (new_request,) = [
        r
        for r in tenant.plane.items("requests.http.m.crossplane.io", meta["namespace"])
        if token_of(new)[:8] in r["metadata"]["name"]
    ]
    assert new_request["metadata"]["annotations"]["auth.litellm.ai/rotation-trigger"] == "1"
    # The old key expires on the proxy too, and no budget reset hands it its cap again.
    retired = until(
        lambda: (info := key_info(proxy, old_token)).get("expires") and info,
        "the old key's expiry on the proxy",
        60,
    )
    assert retired["budget_reset_at"] is None
    until(lambda: "keeps working until" in events_of(tenant.plane, xr), "the rotation event")
    # The poller follows the switch.
    done = poll_once(poller_kubeconfig)
    assert done.returncode == 0, done.stderr
    assert float(status_of(tenant.plane, xr)["currentSpend"]) >= spent
    # After it, the old key is deleted; only the new one holds the alias.
    until(lambda: chat(proxy, old_key) == 401, "the old key to be deleted", 180)
    assert chat(proxy, new) == 200
    assert [k["token"] for k in keys_with_alias(proxy, xr["spec"]["keyAlias"])] == [token_of(new)]
    tenant.ready(xr)
    for value in (old_key, new, proxy.master_key):
        assert value not in json.dumps(status_of(tenant.plane, xr))


def left_behind(proxy: Proxy, alias: str, metadata: dict[str, str]) -> str:
    """A key an earlier cluster left on the proxy, with some spend."""
    raw = new_key()
    with proxy.admin() as admin:
        made = admin.post(
            "/key/generate",
            json={"key": raw, "key_alias": alias, "metadata": metadata, "spend": 0.25},
        )
    assert made.status_code == 200, made.text
    return raw


def test_a_reinstalled_virtualkey_replaces_the_key_it_made_before(
    tenant: Tenant, proxy: Proxy
) -> None:
    # The name Tenant.virtualkey gives the next VirtualKey, as the earlier cluster had it.
    name, alias = f"example-service-{tenant.unique}-{len(tenant.made)}", f"re-{tenant.unique}"
    stamp = {"auth.litellm.ai/namespace": "team-a", "auth.litellm.ai/virtualkey": name}
    old = left_behind(proxy, alias, stamp)
    xr = tenant.virtualkey(keyAlias=alias)
    assert xr["metadata"]["name"] == name
    until(lambda: tenant.reason(xr) in ("AliasConflict", "ReplacingOldKey"), "the conflict")

    # The function alone, without the poller: an Observe-only Request lists the holders.
    tenant.ready(xr, 240)
    new = tenant.key(xr)
    live = keys_with_alias(proxy, alias)
    assert [k["token"] for k in live] == [token_of(new)]  # no orphan
    assert float(live[0]["spend"]) == 0.25
    until(lambda: chat(proxy, new) == 200, "the new key to work")
    assert chat(proxy, old) == 401


def test_a_foreign_key_with_the_alias_is_never_touched(
    tenant: Tenant, proxy: Proxy, poller_kubeconfig: Path
) -> None:
    alias = f"foreign-{tenant.unique}"
    foreign = left_behind(proxy, alias, {})
    try:
        xr = tenant.virtualkey(keyAlias=alias)
        until(lambda: tenant.reason(xr) == "AliasConflict", "the conflict")

        def explained() -> str:
            assert poll_once(poller_kubeconfig).returncode == 0
            found = tenant.plane.get("virtualkey", xr["metadata"]["name"], "team-a")
            message = str(condition(found, "KeyReady").get("message") or "")
            return message if "replaceForeignKeys" in message else ""

        message = until(explained, "the condition to say how to release the alias")
        assert status_of(tenant.plane, xr)["aliasHolder"] == {"owner": "unknown"}
        assert f"{alias!r}" in message
        assert tenant.reason(xr) == "AliasConflict"
        assert chat(proxy, foreign) == 200
        assert [k["token"] for k in keys_with_alias(proxy, alias)] == [token_of(foreign)]
    finally:
        with proxy.admin() as admin:
            admin.post("/key/delete", json={"keys": [foreign]})

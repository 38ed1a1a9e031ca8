"""Rotation and recovery after a reinstall (issue 11), on the real proxy.

Crossplane and provider-http are played by tests/e2e/cluster.py; the
function, the poller and LiteLLM are real, and so is time: grace periods
are seconds long here. The same stories run on the real control plane in
tests/cluster/test_rotation_cluster.py.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from function.keys.secrets import new_key, token_of
from tests.conftest import Proxy, chat
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import SpendWatcher, platform_policies

pytestmark = pytest.mark.e2e


def info(proxy: Proxy, token: str) -> dict[str, Any]:
    with proxy.admin() as admin:
        answer = admin.get("/key/info", params={"key": token})
    if answer.status_code != 200:
        return {"status": f"HTTP {answer.status_code}"}
    found: dict[str, Any] = answer.json().get("info") or {}
    return found


def live_with_alias(proxy: Proxy, alias: str) -> list[str]:
    with proxy.admin() as admin:
        listing = admin.get(
            "/key/list", params={"key_alias": alias, "return_full_object": "true"}
        ).json()
    return [k["token"] for k in listing.get("keys", []) if isinstance(k, dict)]


def spend_reaches(proxy: Proxy, token: str, at_least: Decimal, seconds: float = 40) -> Decimal:
    """LiteLLM writes spend to its database every few seconds."""
    deadline = time.monotonic() + seconds
    while True:
        spent = Decimal(repr(info(proxy, token).get("spend") or 0))
        if spent >= at_least or time.monotonic() > deadline:
            return spent
        time.sleep(1)


def spent_key(proxy: Proxy, cluster: Cluster, calls: int = 1) -> tuple[str, str, Decimal]:
    """Converge, make `calls` chat calls with the key, and wait until LiteLLM counted them."""
    cluster.converge()
    key, token = cluster.key(), status(cluster)["tokenHash"]
    assert [chat(proxy, key) for _ in range(calls)] == [200] * calls
    return key, token, spend_reaches(proxy, token, Decimal("0.0048") * calls)


def status(cluster: Cluster) -> dict[str, Any]:
    assert cluster.xr is not None
    found: dict[str, Any] = cluster.xr.setdefault("status", {})
    return found


def alias_of(cluster: Cluster) -> str:
    assert cluster.xr is not None
    return str(cluster.xr["spec"]["keyAlias"])


def rotate_until(cluster: Cluster, done: Callable[[], bool], rounds: int = 8) -> None:
    for _ in range(rounds):
        cluster.converge(rounds=4)
        if done():
            return
    pytest.fail(f"not done after {rounds} rounds: {cluster.condition()} {status(cluster)}")


def often(proxy: Proxy) -> list[dict[str, Any]]:
    """The shipped policy, letting keys rotate a second after they were made."""
    policies = platform_policies(proxy.url)
    policies[0]["spec"]["rules"][0]["keys"] = {"minRotationInterval": "1s"}
    return policies


def bump(cluster: Cluster, trigger: int) -> None:
    assert cluster.xr is not None
    cluster.xr["spec"]["rotation"]["trigger"] = trigger


def test_on_demand_rotation_keeps_the_old_key_for_its_grace_period(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster(policies=often(proxy), rotation={"trigger": 0, "gracePeriod": "6s"})
    old_key, old_token, spent = spent_key(proxy, cluster)
    bump(cluster, 1)
    rotate_until(cluster, lambda: cluster.key() != old_key)
    new_key_value = cluster.key()
    new_token = status(cluster)["tokenHash"]
    assert new_token == token_of(new_key_value) != old_token
    rotated = status(cluster)["rotation"]
    # The new key's Request remembers the trigger it was made for (never the status).
    new_request = cluster.composed[f"request-{new_token[:10]}"]
    assert new_request["metadata"]["annotations"]["auth.litellm.ai/rotation-trigger"] == "1"
    assert "lastRotatedAt" in rotated
    assert "oldKeyExpiresAt" in rotated
    (event,) = [m for s, m in cluster.results if "keeps working until" in m]
    assert f"until {rotated['oldKeyExpiresAt']}" in event
    # Both work during the grace period; the old one under its derived alias.
    assert chat(proxy, old_key) == 200
    assert chat(proxy, new_key_value) == 200
    assert info(proxy, old_token)["key_alias"].startswith(f"{alias_of(cluster)}.rotated-")
    # The new key started where the old one was.
    assert Decimal(repr(info(proxy, new_token)["spend"])) >= spent
    # After it, the old key is deleted on the proxy and refused; the new one works.
    time.sleep(7)
    cluster.converge()
    assert chat(proxy, old_key) == 401
    assert chat(proxy, new_key_value) == 200
    assert live_with_alias(proxy, cluster.xr["spec"]["keyAlias"]) == [new_token]  # type: ignore[index]
    assert [n for n in cluster.composed if n.startswith("request-")] == [
        f"request-{new_token[:10]}"
    ]
    assert cluster.condition()[0] == "True"
    for secret_value in (old_key, new_key_value, proxy.master_key):
        assert secret_value not in json.dumps(status(cluster))
        assert secret_value not in str(cluster.last)


def test_scheduled_rotation(proxy: Proxy, make_cluster: Callable[..., Cluster]) -> None:
    policies = platform_policies(proxy.url)
    policies[0]["spec"]["rules"][0]["keys"] = {"minRotationInterval": "1s"}
    cluster = make_cluster(policies=policies, rotation={"every": "8s", "gracePeriod": "2s"})
    cluster.converge()
    first = cluster.key()
    assert "nextRotationAt" in status(cluster)["rotation"]
    cluster.converge()
    assert cluster.key() == first  # not yet
    time.sleep(9)
    rotate_until(cluster, lambda: cluster.key() != first)
    assert chat(proxy, cluster.key()) == 200
    time.sleep(3)
    cluster.converge()
    assert chat(proxy, first) == 401


def test_rotating_never_escapes_the_budget(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    # Each chat costs $0.0048 on the test proxy: two fit in $0.012, three do not.
    cluster = make_cluster(
        policies=often(proxy),
        maxBudget="0.012",
        rotation={"trigger": 0, "gracePeriod": "1m", "gracePeriodBudget": "0.001"},
    )
    old_key, _, spent = spent_key(proxy, cluster, calls=2)
    assert spent >= Decimal("0.0096")
    cluster.converge()  # the Request's last answer now has that spend
    bump(cluster, 1)
    rotate_until(cluster, lambda: cluster.key() != old_key)
    new_token = status(cluster)["tokenHash"]
    # The new key starts at the old spend plus the old key's grace allowance...
    # (rounded up to the micro-dollar: LiteLLM's float spend is 0.0096000...01)
    started = Decimal(repr(info(proxy, new_token)["spend"]))
    assert Decimal("0.0106") <= started <= Decimal("0.010602"), started
    # ...so it gets one call, not the two a fresh key would.
    codes = [chat(proxy, cluster.key()) for _ in range(2)]
    assert codes[0] == 200
    assert 400 <= codes[1] < 500, codes
    # The old key, capped at the same amount, gets at most one more call too.
    assert 400 <= [chat(proxy, old_key), chat(proxy, old_key)][1] < 500


def reinstall(cluster: Cluster, make_cluster: Callable[..., Cluster]) -> Cluster:
    """The same VirtualKey applied to a fresh control plane; the old one is gone with its state."""
    assert cluster.xr is not None
    fresh = make_cluster(policies=cluster.policies)
    xr = copy.deepcopy(cluster.xr)
    xr.pop("status", None)
    xr["metadata"]["uid"] = str(uuid.uuid4())  # a new object, as in a new cluster
    fresh.apply_xr(xr)
    cluster.xr, cluster.composed = None, {}  # the old cluster and everything it knew
    return fresh


def converge_until(cluster: Cluster, reason: str, rounds: int = 6) -> None:
    for _ in range(rounds):
        cluster.converge()
        if cluster.condition()[1] == reason:
            return
    pytest.fail(f"not {reason} after {rounds} rounds: {cluster.condition()}")


def test_a_reinstalled_virtualkey_recovers_its_alias_with_its_spend(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    before = make_cluster()
    old_key, old_token, spent = spent_key(proxy, before)
    stamp = info(proxy, old_token)["metadata"]
    assert stamp["auth.litellm.ai/virtualkey"] == before.xr["metadata"]["name"]  # type: ignore[index]
    after = reinstall(before, make_cluster)
    # The function alone: it lists the alias's holders with a Request that only observes.
    converge_until(after, "Available")
    replacing = [m for _, m in after.results if "made earlier (a reinstall)" in m]
    assert replacing, after.results
    assert "alias-check" not in after.composed  # dropped once the key exists
    new_token = status(after)["tokenHash"]
    alias = alias_of(after)
    assert live_with_alias(proxy, alias) == [new_token]  # no orphan
    assert info(proxy, old_token).get("status") in ("deleted", "HTTP 404", "HTTP 400")
    assert Decimal(repr(info(proxy, new_token)["spend"])) == spent
    assert chat(proxy, after.key()) == 200
    assert chat(proxy, old_key) == 401


def foreign_key(proxy: Proxy, alias: str) -> str:
    raw = new_key()
    with proxy.admin() as admin:
        made = admin.post("/key/generate", json={"key": raw, "key_alias": alias, "spend": 0.5})
    assert made.status_code == 200, made.text
    return raw


def test_a_foreign_key_with_the_alias_is_never_touched(
    proxy: Proxy, make_cluster: Callable[..., Cluster], watcher: SpendWatcher
) -> None:
    cluster = make_cluster()
    alias = alias_of(cluster)
    raw = foreign_key(proxy, alias)
    for _ in range(4):
        cluster.converge()
    state, reason, message = cluster.condition()
    assert (state, reason) == ("False", "AliasConflict")
    assert '"key_aliases"' in message
    assert "replaceForeignKeys" in message
    assert chat(proxy, raw) == 200
    assert live_with_alias(proxy, alias) == [token_of(raw)]
    assert not [n for n in cluster.composed if n.startswith("stray-")]
    # The poller says who holds it, for people; the function does not rely on it.
    key = watcher.watch(cluster)
    assert watcher.until(key, lambda s: "aliasHolder" in s)["aliasHolder"] == {"owner": "unknown"}
    with proxy.admin() as admin:
        admin.post("/key/delete", json={"keys": [raw]})


def test_a_foreign_key_is_replaced_when_the_platform_opts_in(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    policies = platform_policies(proxy.url)
    policies[0]["spec"]["rules"][0]["keys"] = {"replaceForeignKeys": True}
    cluster = make_cluster(policies=policies)
    alias = alias_of(cluster)
    raw = foreign_key(proxy, alias)
    converge_until(cluster, "Available")
    new_token = status(cluster)["tokenHash"]
    assert live_with_alias(proxy, alias) == [new_token]
    # Its spend (0.5) was its maker's to choose, not this key's history: not carried over.
    assert Decimal(repr(info(proxy, new_token)["spend"])) == Decimal(0)
    assert chat(proxy, raw) == 401


def test_a_lost_secret_does_not_reset_the_budget(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster()
    old_key, _, spent = spent_key(proxy, cluster)
    cluster.converge()  # the Request's last answer now has that spend
    cluster.lose_secret()
    rotate_until(cluster, lambda: cluster.condition()[0] == "True" and cluster.key() != old_key)
    new_token = status(cluster)["tokenHash"]
    assert Decimal(repr(info(proxy, new_token)["spend"])) >= spent
    assert live_with_alias(proxy, alias_of(cluster)) == [new_token]

"""The seed's user journey against the real LiteLLM proxy.

Each test drives one VirtualKey (unique alias) the way the deployed system
does: the function over gRPC, then provider-http's Observe/Create/Update/
Remove (tests/e2e/provider_http.py) against the proxy, then what a tenant
does with the key: the official `openai` client, as the seed's Python
example does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import openai
import pytest
from openai.types.chat import ChatCompletionUserMessageParam

from tests.conftest import Proxy
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import INSTANCE, SpendWatcher

pytestmark = pytest.mark.e2e

HELLO = [ChatCompletionUserMessageParam(role="user", content="hello")]


def client(proxy: Proxy, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=proxy.url, max_retries=0, timeout=30)


def chat(proxy: Proxy, key: str, model: str = "gpt-4o") -> str:
    reply = client(proxy, key).chat.completions.create(model=model, messages=HELLO)
    return reply.choices[0].message.content or ""


def key_info(proxy: Proxy, cluster: Cluster) -> dict[str, object]:
    token = cluster.xr["status"]["tokenHash"] if cluster.xr else ""
    with proxy.admin() as admin:
        info: dict[str, object] = admin.get("/key/info", params={"key": token}).json()["info"]
    return info


def test_seed_keys_are_created_and_work(
    proxy: Proxy, make_cluster: Callable[..., Cluster], watcher: SpendWatcher
) -> None:
    for example in ("virtualkey/virtualkey.yaml", "virtualkey/virtualkey-advanced.yaml"):
        cluster = make_cluster(example)
        cluster.converge()
        assert cluster.condition()[:2] == ("True", "Available"), cluster.condition()
        key = cluster.key()
        assert "Hello from the mock gpt-4o" in chat(proxy, key)
        # One poller cycle shows the spend, an active key, and no expiry.
        watched = watcher.watch(cluster)
        status = watcher.until(watched, lambda s: float(s.get("currentSpend") or 0) > 0)
        assert float(status["currentSpend"]) > 0, status
        assert status["isActive"] is True
        assert "expiryDate" not in status
        assert watcher.reason(watched) == "Active"
        info = key_info(proxy, cluster)
        assert info["key_alias"] == cluster.xr["spec"]["keyAlias"]  # type: ignore[index]
        assert info["max_budget"] == float(cluster.xr["spec"]["maxBudget"])  # type: ignore[index]
        # Neither the Request's spec nor its status holds the raw key.
        assert key not in repr(cluster.request())
    with pytest.raises(openai.PermissionDeniedError):
        chat(proxy, key, model="gpt-4o-mini")  # not in the advanced key's models


def test_budget_update_keeps_the_same_key(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster()
    cluster.converge()
    key = cluster.key()
    assert key_info(proxy, cluster)["max_budget"] == 10.0
    cluster.xr["spec"]["maxBudget"] = "200"  # type: ignore[index]
    history = cluster.converge()
    assert any(r.action == "update" for step in history for r in step.values())
    assert key_info(proxy, cluster)["max_budget"] == 200.0
    assert cluster.key() == key
    assert chat(proxy, key)


def test_drift_on_the_proxy_is_put_back(proxy: Proxy, make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    cluster.converge()
    with proxy.admin() as admin:
        token = cluster.xr["status"]["tokenHash"]  # type: ignore[index]
        admin.post("/key/update", json={"key": token, "max_budget": 55}).raise_for_status()
    assert key_info(proxy, cluster)["max_budget"] == 55.0
    result = cluster.provider_http.reconcile(cluster.request())
    assert result.action == "update"
    assert key_info(proxy, cluster)["max_budget"] == 10.0


def test_over_budget_key_is_refused(
    proxy: Proxy, make_cluster: Callable[..., Cluster], watcher: SpendWatcher
) -> None:
    cluster = make_cluster(maxBudget="0.000001")
    cluster.converge()
    key = cluster.key()
    chat(proxy, key)  # the first call spends more than the whole budget
    with pytest.raises(openai.APIStatusError) as refused:
        chat(proxy, key)
    assert refused.value.status_code == 422
    assert "budget" in str(refused.value).lower()
    watched = watcher.watch(cluster)
    status = watcher.until(watched, lambda s: s.get("isActive") is False)
    assert status["isActive"] is False, status
    assert watcher.reason(watched) == "BudgetExceeded"
    assert "BudgetExceeded" in watcher.events(watched), watcher.events(watched)


def test_expired_key_is_refused(
    proxy: Proxy, make_cluster: Callable[..., Cluster], watcher: SpendWatcher
) -> None:
    cluster = make_cluster(duration="4s")
    cluster.converge()
    key = cluster.key()
    expires = key_info(proxy, cluster)["expires"]
    assert isinstance(expires, str)
    watched = watcher.watch(cluster)
    status = watcher.until(watched, lambda s: "expiryDate" in s, seconds=3)
    # expiryDate is the instant LiteLLM reports, in RFC 3339 to the second.
    reported = datetime.fromisoformat(status["expiryDate"].replace("Z", "+00:00"))
    litellm = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    assert reported == litellm.replace(microsecond=0)
    time.sleep(max(0.0, (reported - datetime.now(UTC)).total_seconds()) + 1)
    with pytest.raises(openai.AuthenticationError) as refused:
        chat(proxy, key)
    assert "expired" in str(refused.value).lower()
    status = watcher.until(watched, lambda s: s.get("isActive") is False)
    assert status["isActive"] is False
    assert watcher.reason(watched) == "Expired"


def test_delete_removes_the_key(
    proxy: Proxy, make_cluster: Callable[..., Cluster], watcher: SpendWatcher
) -> None:
    cluster = make_cluster()
    cluster.converge()
    key = cluster.key()
    token = cluster.xr["status"]["tokenHash"]  # type: ignore[index]
    request = cluster.request()
    # The VirtualKey stays visible while its deletion runs (foreground).
    watched = watcher.watch(cluster)
    assert watcher.until(watched, lambda s: s.get("isActive") is True)["isActive"] is True
    cluster.delete_xr()
    history = cluster.converge()
    actions = [r.action for step in history for r in step.values()]
    assert "delete" in actions
    assert any(r.finalizer_removed for step in history for r in step.values())
    assert not cluster.deleting
    # The removed check now says removed: /key/info answers status "deleted".
    assert cluster.provider_http.observe(request).exists is False
    with proxy.admin() as admin:
        info = admin.get("/key/info", params={"key": token}).json()["info"]
    assert info["status"] == "deleted"
    with pytest.raises(openai.AuthenticationError):
        chat(proxy, key)
    status = watcher.until(watched, lambda s: s.get("isActive") is False)
    assert status["isActive"] is False
    assert watcher.reason(watched) == "KeyNotFound"
    assert "KeyNotFound" in watcher.events(watched)


def test_lost_secret_rotates_the_key(proxy: Proxy, make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    cluster.converge()
    old_key = cluster.key()
    old_token = cluster.xr["status"]["tokenHash"]  # type: ignore[index]
    cluster.lose_secret()
    cluster.compose()  # new key, new Request; the old Request is being deleted
    assert cluster.xr["status"]["tokenHash"] != old_token  # type: ignore[index]
    cluster.provider()  # old key removed; the new CREATE may meet the alias still in use
    cluster.clock.advance(31)  # provider-http retries a create after its 30 s grace
    cluster.converge()
    assert cluster.condition()[:2] == ("True", "Available"), cluster.condition()
    new_key = cluster.key()
    assert new_key != old_key
    assert chat(proxy, new_key)
    with pytest.raises(openai.AuthenticationError):
        chat(proxy, old_key)


def test_wrong_master_key_deletes_nothing_and_recovers(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster()
    cluster.converge()
    key = cluster.key()
    cluster.secrets[INSTANCE]["masterkey"] = "sk-wrong-master-key-for-this-test"
    cluster.converge()
    status, reason, message = cluster.condition()
    assert (status, reason) == ("False", "Unauthorized"), message
    assert "litellm/litellm-example-secrets" in message
    assert "sk-wrong-master-key" not in message
    assert chat(proxy, key)  # the working key kept working
    cluster.secrets[INSTANCE]["masterkey"] = proxy.master_key
    cluster.clock.advance(31)
    cluster.converge()
    assert cluster.condition()[:2] == ("True", "Available"), cluster.condition()
    assert cluster.key() == key
    assert chat(proxy, key)


def test_proxy_down_deletes_nothing_and_recovers(
    proxy: Proxy, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster()
    cluster.converge()
    key = cluster.key()
    assert cluster.policies is not None
    (declared,) = cluster.policies[0]["spec"]["instances"]
    declared["url"] = "http://127.0.0.1:9"  # the platform moves it where nothing listens
    cluster.converge(rounds=3)
    status, reason, _ = cluster.condition()
    assert (status, reason) == ("False", "ProxyUnreachable")
    assert cluster.key() == key
    declared["url"] = proxy.url
    cluster.clock.advance(31)
    cluster.converge()
    assert cluster.condition()[:2] == ("True", "Available"), cluster.condition()
    assert chat(proxy, key)

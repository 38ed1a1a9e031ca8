"""Against the real LiteLLM proxy (`../shared/litellm/up.sh`): spend, blocked,
expired, over budget and deleted keys, seen through VirtualKey status."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import httpx
import pytest

from function.poller.cycle import Poller
from function.poller.kube import KubeCluster
from tests.poller.conftest import (
    MASTER_NAMESPACE,
    MASTER_SECRET,
    make_poller,
    new_raw_key,
    token_of,
    virtualkey,
)
from tests.poller.fake_apiserver import FakeAPIServer, Key

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("LITELLM_URL"), reason="LITELLM_URL is unset: no LiteLLM proxy"
    ),
]
RUN = uuid.uuid4().hex[:8]


def _generate(
    proxy: httpx.Client, apiserver: FakeAPIServer, name: str, **fields: Any
) -> tuple[str, Key]:
    raw = new_raw_key()
    alias = f"poller-{name}-{RUN}"
    response = proxy.post(
        "/key/generate", json={"key": raw, "key_alias": alias, "models": ["gpt-4o"], **fields}
    )
    assert response.status_code == 200, response.text
    assert response.json()["token"] == token_of(raw)
    xr = virtualkey(name, os.environ["LITELLM_URL"], alias=alias, token=token_of(raw))
    return raw, apiserver.add("virtualkeys", xr)


def _chat(raw: str) -> int:
    response = httpx.post(
        f"{os.environ['LITELLM_URL']}/chat/completions",
        headers={"Authorization": f"Bearer {raw}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]},
        timeout=30,
    )
    return response.status_code


def _condition(apiserver: FakeAPIServer, key: Key) -> dict[str, Any]:
    return next(c for c in apiserver.status(key)["conditions"] if c["type"] == "SpendSynced")


def _until(poller: Poller, check: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        poller.cycle()
        if check() or time.monotonic() > deadline:
            return
        time.sleep(1)


@pytest.fixture
def setup(apiserver: FakeAPIServer, cluster: KubeCluster) -> Poller:
    apiserver.add_secret(
        MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": os.environ["LITELLM_MASTER_KEY"]}
    )
    return make_poller(cluster)


def test_spend_rises_after_chat(
    proxy: httpx.Client, apiserver: FakeAPIServer, setup: Poller
) -> None:
    raw, key = _generate(proxy, apiserver, "spend", max_budget=10)
    setup.cycle()
    status = apiserver.status(key)
    assert (status["currentSpend"], status["isActive"]) == ("0", True)
    assert _condition(apiserver, key)["reason"] == "Active"
    assert _chat(raw) == 200
    _until(setup, lambda: apiserver.status(key)["currentSpend"] != "0")
    assert apiserver.status(key)["currentSpend"] == "0.0048"
    assert _chat(raw) == 200
    _until(setup, lambda: apiserver.status(key)["currentSpend"] != "0.0048")
    assert apiserver.status(key)["currentSpend"] == "0.0096"
    assert apiserver.status(key)["isActive"] is True


def test_blocked_expired_over_budget_and_deleted(
    proxy: httpx.Client, apiserver: FakeAPIServer, setup: Poller
) -> None:
    blocked_raw, blocked = _generate(proxy, apiserver, "blocked")
    assert proxy.post("/key/block", json={"key": blocked_raw}).status_code == 200
    _, expired = _generate(proxy, apiserver, "expired", duration="1s")
    over_raw, over = _generate(proxy, apiserver, "over", max_budget=0.000001)
    deleted_raw, deleted = _generate(proxy, apiserver, "deleted")
    setup.cycle()  # everything seen once, deleted still alive
    assert _condition(apiserver, deleted)["reason"] == "Active"
    assert proxy.post("/key/delete", json={"keys": [deleted_raw]}).status_code == 200
    assert _chat(over_raw) == 200  # the first call is allowed and spends $0.0048
    assert _chat(over_raw) == 422  # budget_exceeded; the key is not marked blocked
    time.sleep(1.5)  # let the 1 s key expire
    _until(setup, lambda: _condition(apiserver, over)["reason"] == "BudgetExceeded")
    expected = {
        blocked: "Blocked",
        expired: "Expired",
        over: "BudgetExceeded",
        deleted: "KeyNotFound",
    }
    for key, reason in expected.items():
        status = apiserver.status(key)
        assert _condition(apiserver, key)["reason"] == reason, key
        assert status["isActive"] is False, key
    assert "expiryDate" in apiserver.status(expired)
    reasons = {e["reason"] for e in apiserver.events}
    assert {"KeyBlocked", "KeyExpired", "BudgetExceeded", "KeyNotFound"} <= reasons


def test_requests_are_bulk(proxy: httpx.Client, apiserver: FakeAPIServer, setup: Poller) -> None:
    for i in range(5):
        _generate(proxy, apiserver, f"bulk-{i}")
    total = proxy.get("/key/list", params={"size": 1}).json()["total_count"]
    report = setup.cycle()
    assert report.unavailable == []
    assert report.requests <= -(-total // 100) + 1


HOLDERS = {
    "made-by-this-virtualkey": (
        {"auth.litellm.ai/namespace": "team-a", "auth.litellm.ai/virtualkey": "held"},
        "this",
    ),
    "another-tenants": (
        {"auth.litellm.ai/namespace": "team-b", "auth.litellm.ai/virtualkey": "held"},
        "other",
    ),
    "no-provenance": ({}, "unknown"),
}


@pytest.mark.parametrize("case", sorted(HOLDERS))
def test_the_key_holding_a_missing_keys_alias_is_identified(
    proxy: httpx.Client, apiserver: FakeAPIServer, setup: Poller, case: str
) -> None:
    metadata, owner = HOLDERS[case]
    told = owner == "this"
    # A key left on the proxy by an earlier cluster, with some spend on it.
    raw = new_raw_key()
    alias = f"poller-held-{owner}-{RUN}"
    made = proxy.post(
        "/key/generate", json={"key": raw, "key_alias": alias, "metadata": metadata, "spend": 1.25}
    )
    assert made.status_code == 200, made.text
    # This cluster's VirtualKey wants another key under that alias.
    xr = virtualkey("held", os.environ["LITELLM_URL"], alias=alias, token=token_of(new_raw_key()))
    key = apiserver.add("virtualkeys", xr)
    setup.cycle()
    holder = apiserver.status(key)["aliasHolder"]
    assert holder["owner"] == owner
    if told:
        assert holder == {"owner": "this", "tokenHash": token_of(raw), "spend": "1.25"}
    else:
        assert set(holder) == {"owner"}  # another tenant's key: only that it exists
    assert raw not in json.dumps(apiserver.status(key))
    # Once the holder is gone, so is the field.
    assert proxy.post("/key/delete", json={"keys": [raw]}).status_code == 200
    setup.cycle()
    assert "aliasHolder" not in apiserver.status(key)

"""Against the real LiteLLM proxy (`../shared/litellm/up.sh`): spend, blocked,
expired, over budget and deleted keys, seen through VirtualKey status; and a
hostile tenant's forged status and forged provenance, which match nothing."""

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


def _stamp(namespace: str, name: str) -> dict[str, str]:
    """The provenance the function writes on every key it makes."""
    return {"auth.litellm.ai/namespace": namespace, "auth.litellm.ai/virtualkey": name}


def _generate(
    proxy: httpx.Client,
    apiserver: FakeAPIServer,
    name: str,
    namespace: str = "team-a",
    **fields: Any,
) -> tuple[str, Key]:
    """A key made by the master key for VirtualKey `namespace/name`, as the function makes it."""
    raw = new_raw_key()
    alias = f"poller-{name}-{RUN}"
    body = {"key": raw, "key_alias": alias, "models": ["gpt-4o"], **fields}
    body.setdefault("metadata", _stamp(namespace, name))
    response = proxy.post("/key/generate", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["token"] == token_of(raw)
    xr = virtualkey(
        name, os.environ["LITELLM_URL"], alias=alias, token=token_of(raw), namespace=namespace
    )
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
    "another-tenants": (_stamp("team-b", "held"), "other"),
    "no-provenance": ({}, "unknown"),
}


@pytest.mark.parametrize("case", sorted(HOLDERS))
def test_the_key_holding_a_missing_keys_alias_is_identified(
    proxy: httpx.Client, apiserver: FakeAPIServer, setup: Poller, case: str
) -> None:
    metadata, owner = HOLDERS[case]
    # A key left on the proxy by another VirtualKey, or made before provenance existed.
    raw = new_raw_key()
    alias = f"poller-held-{owner}-{RUN}"
    made = proxy.post(
        "/key/generate", json={"key": raw, "key_alias": alias, "metadata": metadata, "spend": 1.25}
    )
    assert made.status_code == 200, made.text
    xr = virtualkey("held", os.environ["LITELLM_URL"], alias=alias, token=token_of(new_raw_key()))
    key = apiserver.add("virtualkeys", xr)
    setup.cycle()
    status = apiserver.status(key)
    assert status["aliasHolder"] == {"owner": owner}  # only that it exists: not its token
    assert (status["isActive"], "currentSpend" in status) == (False, False)
    assert raw not in json.dumps(status)
    # Once the holder is gone, so is the field.
    assert proxy.post("/key/delete", json={"keys": [raw]}).status_code == 200
    setup.cycle()
    assert "aliasHolder" not in apiserver.status(key)


def test_a_key_this_virtualkey_made_before_a_reinstall_is_its_key(
    proxy: httpx.Client, apiserver: FakeAPIServer, setup: Poller
) -> None:
    # Its provenance names this VirtualKey and the master key made it: whatever token the
    # (rebuilt) status holds, that key is this VirtualKey's, spend and all.
    raw, _ = _generate(proxy, apiserver, "reinstalled", spend=1.25)
    del apiserver.objects[("virtualkeys", "team-a", "reinstalled")]
    xr = virtualkey(
        "reinstalled",
        os.environ["LITELLM_URL"],
        alias=f"poller-reinstalled-{RUN}",
        token=token_of(new_raw_key()),
    )
    key = apiserver.add("virtualkeys", xr)
    setup.cycle()
    status = apiserver.status(key)
    assert (status["currentSpend"], status["isActive"]) == ("1.25", True)
    assert "aliasHolder" not in status
    proxy.post("/key/delete", json={"keys": [raw]})


def _user_key(proxy: httpx.Client, user_id: str, role: str) -> str:
    """A LiteLLM user with `role`, and a key of its own (what a tenant could be given)."""
    made = proxy.post(
        "/user/new", json={"user_id": user_id, "user_role": role, "auto_create_key": False}
    )
    assert made.status_code == 200, made.text
    key = proxy.post("/key/generate", json={"user_id": user_id})
    assert key.status_code == 200, key.text
    return str(key.json()["key"])


def test_a_forged_status_or_a_forged_stamp_gets_no_other_key(
    proxy: httpx.Client, apiserver: FakeAPIServer, setup: Poller
) -> None:
    url = os.environ["LITELLM_URL"]
    # team-b's key, made by the function (the master key) for team-b's VirtualKey, has spent.
    victim_raw, victim = _generate(proxy, apiserver, "victim", namespace="team-b", spend=2.5)
    victim_token = token_of(victim_raw)
    # team-a writes team-b's token into its own VirtualKey's status (its edit role allows it).
    thief_alias = f"poller-thief-{RUN}"
    thief = apiserver.add(
        "virtualkeys", virtualkey("thief", url, alias=thief_alias, token=victim_token)
    )
    # A user who may call /key/generate mints a key with team-a's alias and a stamp naming
    # team-a's VirtualKey: created_by is that user, not the master key.
    mallory = f"poller-mallory-{RUN}"
    minted: list[str] = []
    try:
        forged = proxy.post(
            "/key/generate",
            headers={"Authorization": f"Bearer {_user_key(proxy, mallory, 'internal_user')}"},
            json={"key_alias": thief_alias, "metadata": _stamp("team-a", "thief"), "spend": 7},
        )
        assert forged.status_code == 200, forged.text
        assert forged.json()["created_by"] == mallory
        minted.append(forged.json()["token"])

        setup.cycle()

        assert apiserver.status(victim)["currentSpend"] == "2.5"
        status = apiserver.status(thief)
        reason = next(c for c in status["conditions"] if c["type"] == "SpendSynced")
        assert reason["reason"] == "KeyNotFound"
        assert status["isActive"] is False
        assert "currentSpend" not in status  # neither team-b's 2.5 nor the forged key's 7
        # The alias is held by a key nobody can vouch for: named, never told.
        assert status["aliasHolder"] == {"owner": "unknown"}
        assert status["tokenHash"] == victim_token  # left as the tenant wrote it
    finally:
        proxy.post("/key/delete", json={"keys": [victim_token, *minted]})
        proxy.post("/user/delete", json={"user_ids": [mallory]})

"""Faults: proxy down, 500s, timeouts, malformed JSON, one instance down of two."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from benchmarks.fake_litellm import FakeLiteLLM
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


def _spend_synced(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "SpendSynced")


def _seed(apiserver: FakeAPIServer, litellm: FakeLiteLLM, name: str = "svc") -> Key:
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": litellm.master_key})
    token = token_of(new_raw_key())
    litellm.add(
        token,
        name,
        spend=3.5,
        max_budget=10.0,
        expires="2999-01-01T00:00:00Z",
        owner=("team-a", name),
    )
    return apiserver.add("virtualkeys", virtualkey(name, litellm.url, token=token))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _assert_kept(status: dict[str, Any]) -> None:
    assert status["currentSpend"] == "3.5"
    assert status["isActive"] is True
    assert status["expiryDate"] == "2999-01-01T00:00:00Z"
    cond = _spend_synced(status)
    assert (cond["status"], cond["reason"]) == ("False", "LiteLLMUnavailable")


@pytest.mark.parametrize(
    "fault",
    ["status500", "status502", "malformed", "timeout", "missing-everything"],
)
def test_fault_keeps_last_values_and_backs_off(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster, fault: str
) -> None:
    key = _seed(apiserver, litellm)
    poller = make_poller(cluster, litellm_timeout=0.3)
    poller.cycle()
    assert _spend_synced(apiserver.status(key))["reason"] == "Active"
    if fault.startswith("status"):
        litellm.fail_status = int(fault.removeprefix("status"))
    elif fault == "malformed":
        litellm.malformed = True
    elif fault == "timeout":
        litellm.delay = 1.0
    else:
        litellm.missing = {"/key/list", "/v2/key/info", "/key/info"}
    report = poller.cycle()
    assert len(report.unavailable) == 1
    _assert_kept(apiserver.status(key))
    instance = report.unavailable[0]
    metrics = poller.metrics
    assert metrics.failures.labels(instance)._value.get() == 1
    assert metrics.backoff.labels(instance)._value.get() > 0
    # While backing off, the instance is not asked and nothing is rewritten.
    requests = litellm.total_requests()
    writes = len(apiserver.writes)
    assert poller.cycle().unavailable == [instance]
    assert litellm.total_requests() == requests
    assert len(apiserver.writes) == writes
    litellm.delay = 0.0


def test_proxy_down(apiserver: FakeAPIServer, cluster: KubeCluster) -> None:
    with FakeLiteLLM(master_key=new_raw_key()) as litellm:
        key = _seed(apiserver, litellm)
        poller = make_poller(cluster)
        poller.cycle()
    # The proxy is gone; the URL now refuses connections.
    report = poller.cycle()
    assert len(report.unavailable) == 1
    _assert_kept(apiserver.status(key))
    assert "ConnectError" in _spend_synced(apiserver.status(key))["message"]


def test_unreachable_from_the_start_writes_only_the_condition(
    apiserver: FakeAPIServer, cluster: KubeCluster
) -> None:
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": new_raw_key()})
    url = f"http://127.0.0.1:{_free_port()}"
    key = apiserver.add("virtualkeys", virtualkey("svc", url, token="a" * 64))
    make_poller(cluster).cycle()
    status = apiserver.status(key)
    assert "currentSpend" not in status
    assert "isActive" not in status
    assert _spend_synced(status)["reason"] == "LiteLLMUnavailable"
    assert status["tokenHash"] == "a" * 64


def test_one_instance_down_does_not_stall_the_other(
    apiserver: FakeAPIServer, cluster: KubeCluster
) -> None:
    with FakeLiteLLM(master_key=new_raw_key()) as up, FakeLiteLLM(master_key=up.master_key) as down:
        apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": up.master_key})
        keys = {}
        for fake, name in ((up, "up"), (down, "down")):
            token = token_of(new_raw_key())
            fake.add(token, name, spend=1.0, owner=("team-a", name))
            keys[name] = apiserver.add("virtualkeys", virtualkey(name, fake.url, token=token))
        poller = make_poller(cluster, litellm_timeout=0.5)
        poller.cycle()
        down.delay = 2.0
        next(iter(up.keys.values())).spend = 2.0
        report = poller.cycle()
        assert len(report.unavailable) == 1
        assert down.url in report.unavailable[0]
        assert apiserver.status(keys["up"])["currentSpend"] == "2"
        assert _spend_synced(apiserver.status(keys["up"]))["reason"] == "Active"
        assert apiserver.status(keys["down"])["currentSpend"] == "1"
        assert _spend_synced(apiserver.status(keys["down"]))["reason"] == "LiteLLMUnavailable"
        # The next cycle asks the healthy instance again and skips the other.
        before = up.total_requests()
        down_before = down.total_requests()
        poller.cycle()
        assert up.total_requests() == before + 1
        assert down.total_requests() == down_before
        down.delay = 0.0


def test_recovery_after_backoff(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    key = _seed(apiserver, litellm)
    poller = make_poller(cluster, backoff_base=0.01, backoff_max=0.01)
    poller.cycle()
    litellm.fail_status = 500
    poller.cycle()
    litellm.fail_status = None
    next(iter(litellm.keys.values())).spend = 4.0
    time.sleep(0.02)
    report = poller.cycle()
    assert report.unavailable == []
    status = apiserver.status(key)
    assert status["currentSpend"] == "4"
    assert _spend_synced(status)["reason"] == "Active"
    instance = next(iter(poller.metrics.failures.collect())).samples[0].labels["litellm"]
    assert poller.metrics.failures.labels(instance)._value.get() == 0


def test_wrong_master_key_is_unavailable_not_not_found(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    key = _seed(apiserver, litellm)
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": new_raw_key()})
    make_poller(cluster).cycle()
    cond = _spend_synced(apiserver.status(key))
    assert cond["reason"] == "LiteLLMUnavailable"
    assert "401" in cond["message"]


def test_missing_master_key_secret(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    key = _seed(apiserver, litellm)
    apiserver.secrets.clear()
    report = make_poller(cluster).cycle()
    assert len(report.unavailable) == 1
    assert "Secret litellm/litellm-master" in _spend_synced(apiserver.status(key))["message"]
    assert litellm.total_requests() == 0

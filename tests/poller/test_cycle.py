"""A whole cycle: fake API server (real HTTP) and fake LiteLLM (real HTTP)."""

from __future__ import annotations

import math

import pytest

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.kube import FIELD_MANAGER, KubeCluster
from function.poller.kubeapi import KubeTemporaryError
from tests.poller.conftest import (
    add_master_key,
    condition,
    make_poller,
    new_raw_key,
    token_of,
    virtualkey,
)
from tests.poller.fake_apiserver import FakeAPIServer


def test_writes_spend_state_and_condition_through_the_status_subresource(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    add_master_key(apiserver, litellm.master_key)
    token = token_of(new_raw_key())
    litellm.add(
        token,
        "svc-a",
        spend=0.00480000000000014,
        max_budget=10.0,
        budget_reset_at="2026-11-29T00:00:00Z",
        owner=("team-a", "svc-a"),
    )
    key = apiserver.add("virtualkeys", virtualkey("svc-a", litellm.url, token=token))

    report = make_poller(cluster).cycle()

    assert (report.keys, report.instances, report.writes, report.unavailable) == (1, 1, 1, [])
    status = apiserver.status(key)
    assert status["currentSpend"] == "0.0048"
    assert status["isActive"] is True
    assert "expiryDate" not in status
    assert status["budgetResetAt"] == "2026-11-29T00:00:00Z"
    cond = condition(status)
    assert (cond["status"], cond["reason"]) == ("True", "Active")
    # What the function and Crossplane own is untouched.
    assert status["tokenHash"] == token
    assert status["keySecretRef"] == "svc-a-litellm-key"
    assert condition(status, "KeyReady")["reason"] == "Available"
    assert condition(status, "Ready")["status"] == "True"
    [write] = apiserver.writes_to(key)
    assert write.content_type == "application/merge-patch+json"
    assert write.field_manager == FIELD_MANAGER
    assert write.body["metadata"]["resourceVersion"]
    assert set(write.body["status"]) <= {"currentSpend", "isActive", "budgetResetAt", "conditions"}


def test_only_changed_keys_are_written(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    add_master_key(apiserver, litellm.master_key)
    keys = []
    for i in range(5):
        token = token_of(new_raw_key())
        litellm.add(token, f"svc-{i}", spend=0.0, owner=("team-a", f"svc-{i}"))
        keys.append(apiserver.add("virtualkeys", virtualkey(f"svc-{i}", litellm.url, token=token)))
    poller = make_poller(cluster)
    assert poller.cycle().writes == 5
    assert poller.cycle().writes == 0
    changed = next(iter(litellm.keys.values()))
    changed.spend = 0.5
    apiserver.writes.clear()
    report = poller.cycle()
    assert report.writes == 1
    assert len(apiserver.writes) == 1
    assert apiserver.status(apiserver.writes[0].key)["currentSpend"] == "0.5"


def test_requests_grow_with_keys_over_100(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    add_master_key(apiserver, litellm.master_key)
    for i in range(250):
        token = token_of(f"sk-bulk-{i}")
        litellm.add(token, f"bulk-{i}", spend=i / 100, owner=("team-a", f"bulk-{i}"))
        apiserver.add("virtualkeys", virtualkey(f"bulk-{i}", litellm.url, token=token))
    report = make_poller(cluster).cycle()
    assert report.writes == 250
    assert report.requests == math.ceil(250 / 100)
    assert litellm.requests["/key/list"] == 3
    assert litellm.requests["/key/info"] == 0


def test_list_failure_raises_for_the_loop_to_back_off(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    add_master_key(apiserver, litellm.master_key)
    token = token_of(new_raw_key())
    litellm.add(token, "svc", owner=("team-a", "svc"))
    apiserver.add("virtualkeys", virtualkey("svc", litellm.url, token=token))
    apiserver.fail("GET", "/virtualkeys", 500)
    with pytest.raises(KubeTemporaryError):
        make_poller(cluster).cycle()
    assert apiserver.writes == []

"""A whole cycle: fake API server (real HTTP) and fake LiteLLM (real HTTP)."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.kube import FIELD_MANAGER, KubeCluster
from tests.poller.conftest import (
    MASTER_NAMESPACE,
    MASTER_SECRET,
    make_poller,
    new_raw_key,
    token_of,
    virtualkey,
)
from tests.poller.fake_apiserver import FakeAPIServer


def _condition(status: dict[str, Any], kind: str = "SpendSynced") -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def _setup(apiserver: FakeAPIServer, litellm: FakeLiteLLM) -> None:
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": litellm.master_key})


def test_writes_spend_state_and_condition_through_the_status_subresource(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    _setup(apiserver, litellm)
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
    cond = _condition(status)
    assert (cond["status"], cond["reason"]) == ("True", "Active")
    # What the function and Crossplane own is untouched.
    assert status["tokenHash"] == token
    assert status["keySecretRef"] == "svc-a-litellm-key"
    assert _condition(status, "KeyReady")["reason"] == "Available"
    assert _condition(status, "Ready")["status"] == "True"
    [write] = apiserver.writes_to(key)
    assert write.content_type == "application/merge-patch+json"
    assert write.field_manager == FIELD_MANAGER
    assert write.body["metadata"]["resourceVersion"]
    assert set(write.body["status"]) <= {"currentSpend", "isActive", "budgetResetAt", "conditions"}


def test_only_changed_keys_are_written(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    _setup(apiserver, litellm)
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
    _setup(apiserver, litellm)
    for i in range(250):
        token = token_of(f"sk-bulk-{i}")
        litellm.add(token, f"bulk-{i}", spend=i / 100, owner=("team-a", f"bulk-{i}"))
        apiserver.add("virtualkeys", virtualkey(f"bulk-{i}", litellm.url, token=token))
    report = make_poller(cluster).cycle()
    assert report.writes == 250
    assert report.requests == math.ceil(250 / 100)
    assert litellm.requests["/key/list"] == 3
    assert litellm.requests["/key/info"] == 0


def test_reasons_for_blocked_expired_over_budget_and_missing_keys(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    _setup(apiserver, litellm)
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "blocked": ({"blocked": True}, "Blocked"),
        "expired": ({"expires": "2020-01-01T00:00:00.000000Z"}, "Expired"),
        "over": ({"spend": 1.5, "max_budget": 1.0}, "BudgetExceeded"),
        "never-blocked": ({"blocked": None, "expires": "2999-01-01T00:00:00Z"}, "Active"),
    }
    keys = {}
    for name, (fields, _) in cases.items():
        token = token_of(new_raw_key())
        litellm.add(token, name, owner=("team-a", name), **fields)
        keys[name] = apiserver.add("virtualkeys", virtualkey(name, litellm.url, token=token))
    deleted = token_of(new_raw_key())
    litellm.add(deleted, "deleted", owner=("team-a", "deleted")).deleted = True
    keys["deleted"] = apiserver.add(
        "virtualkeys", virtualkey("deleted", litellm.url, token=deleted)
    )
    keys["unknown"] = apiserver.add(
        "virtualkeys", virtualkey("unknown", litellm.url, token=token_of(new_raw_key()))
    )
    report = make_poller(cluster).cycle()
    expected = {name: reason for name, (_, reason) in cases.items()}
    expected |= {"deleted": "KeyNotFound", "unknown": "KeyNotFound"}
    for name, reason in expected.items():
        status = apiserver.status(keys[name])
        assert _condition(status)["reason"] == reason, name
        assert status["isActive"] is (reason == "Active"), name
    assert apiserver.status(keys["never-blocked"])["expiryDate"] == "2999-01-01T00:00:00Z"
    # The listing is one page; each missing alias no key holds is confirmed once, by alias.
    assert (litellm.requests["/key/list"], report.requests) == (3, 3)
    assert litellm.requests["/v2/key/info"] + litellm.requests["/key/info"] == 0


def test_a_key_is_found_by_alias_and_provenance_whatever_the_status_says(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    _setup(apiserver, litellm)
    litellm.add(token_of(new_raw_key()), "team-a-svc", spend=2.0, owner=("team-a", "svc"))
    # No tokenHash yet, and one that names no key: neither plays a part.
    fresh = apiserver.add("virtualkeys", virtualkey("svc", litellm.url, alias="team-a-svc"))
    make_poller(cluster).cycle()
    assert apiserver.status(fresh)["currentSpend"] == "2"
    apiserver.set_status(fresh, {"tokenHash": "f" * 64})
    apiserver.writes.clear()
    make_poller(cluster).cycle()
    assert apiserver.status(fresh)["currentSpend"] == "2"
    assert apiserver.writes == []


def test_legacy_xvirtualkey_is_polled_and_events_go_to_its_claim(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    _setup(apiserver, litellm)
    token = token_of(new_raw_key())
    litellm.add(token, "legacy", blocked=True, owner=("team-b", "legacy"))
    xr = virtualkey("legacy-x7k2p", litellm.url, alias="legacy", token=token)
    del xr["metadata"]["namespace"]
    xr["metadata"]["labels"] = {
        "crossplane.io/claim-name": "legacy",
        "crossplane.io/claim-namespace": "team-b",
    }
    xr["spec"]["claimRef"] = {
        "apiVersion": "auth.litellm.ai/v1alpha1",
        "kind": "VirtualKey",
        "name": "legacy",
        "namespace": "team-b",
    }
    key = apiserver.add("xvirtualkeys", xr)
    make_poller(cluster).cycle()
    assert _condition(apiserver.status(key))["reason"] == "Blocked"
    [event] = apiserver.events
    assert event["reason"] == "KeyBlocked"
    assert event["involvedObject"]["kind"] == "VirtualKey"
    assert event["involvedObject"]["namespace"] == "team-b"
    assert event["metadata"]["namespace"] == "team-b"


def test_a_legacy_claim_is_left_to_its_xr(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    # With the legacy XRD, `virtualkeys` are the claims; Crossplane copies the
    # XR's status to them. Polling both cost two LiteLLM reads and two writes a key.
    _setup(apiserver, litellm)
    token = token_of(new_raw_key())
    litellm.add(token, "legacy", spend=1.5, owner=("team-a", "legacy"))
    xr = virtualkey("legacy-x7k2p", litellm.url, alias="legacy", token=token)
    del xr["metadata"]["namespace"]
    xr["metadata"]["labels"] = {
        "crossplane.io/claim-name": "legacy",
        "crossplane.io/claim-namespace": "team-a",
    }
    xr["spec"]["claimRef"] = {"kind": "VirtualKey", "name": "legacy", "namespace": "team-a"}
    claim = virtualkey("legacy", litellm.url, alias="legacy", token=token)
    claim["spec"]["resourceRef"] = {
        "apiVersion": "auth.litellm.ai/v1alpha1",
        "kind": "XVirtualKey",
        "name": "legacy-x7k2p",
    }
    xr_key = apiserver.add("xvirtualkeys", xr)
    claim_key = apiserver.add("virtualkeys", claim)
    report = make_poller(cluster).cycle()
    assert (report.keys, report.skipped, report.writes) == (1, 0, 1)
    assert apiserver.status(xr_key)["currentSpend"] == "1.5"
    assert apiserver.writes_to(claim_key) == []


def test_missing_legacy_crd_is_skipped(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    _setup(apiserver, litellm)
    apiserver.served = {"virtualkeys"}
    token = token_of(new_raw_key())
    litellm.add(token, "svc", owner=("team-a", "svc"))
    apiserver.add("virtualkeys", virtualkey("svc", litellm.url, token=token))
    assert make_poller(cluster).cycle().writes == 1


def test_invalid_virtualkeys_are_skipped_not_fatal(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    _setup(apiserver, litellm)
    bad = virtualkey("bad", litellm.url)
    bad["spec"]["connectionRef"] = {
        "url": litellm.url,
        "masterKeySecretRef": {"name": MASTER_SECRET, "namespace": MASTER_NAMESPACE},
    }
    apiserver.add("virtualkeys", bad)
    apiserver.add("virtualkeys", {"metadata": {"name": "nospec", "namespace": "team-a"}})
    report = make_poller(cluster).cycle()
    assert (report.keys, report.skipped, report.writes) == (0, 2, 0)
    assert apiserver.writes == []


def test_list_is_paged(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    _setup(apiserver, litellm)
    for i in range(1203):
        apiserver.add("virtualkeys", virtualkey(f"p-{i:04d}", litellm.url))
    targets, skipped = make_poller(cluster).targets()
    assert (len(targets), skipped) == (1203, 0)
    lists = [
        t
        for m, t in apiserver.requests
        if m == "GET" and t.startswith("/apis/auth.litellm.ai/v1alpha1/virtualkeys")
    ]
    assert len(lists) == 3

"""VirtualKeys through a cycle: each reason, a key by alias and provenance, legacy kinds.

Which VirtualKeys are read (a legacy claim is left to its XR, an invalid one
is skipped) and where their events go, with the fake API server and the fake
LiteLLM over real HTTP.
"""

from __future__ import annotations

from typing import Any

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.kube import KubeCluster
from tests.poller.conftest import (
    MASTER_NAMESPACE,
    MASTER_SECRET,
    add_master_key,
    condition,
    make_poller,
    new_raw_key,
    token_of,
    virtualkey,
)
from tests.poller.fake_apiserver import FakeAPIServer


def test_reasons_for_blocked_expired_over_budget_and_missing_keys(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    add_master_key(apiserver, litellm.master_key)
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
        assert condition(status)["reason"] == reason, name
        assert status["isActive"] is (reason == "Active"), name
    assert apiserver.status(keys["never-blocked"])["expiryDate"] == "2999-01-01T00:00:00Z"
    # The listing is one page; each missing alias no key holds is confirmed once, by alias.
    assert (litellm.requests["/key/list"], report.requests) == (3, 3)
    assert litellm.requests["/v2/key/info"] + litellm.requests["/key/info"] == 0


def test_a_key_is_found_by_alias_and_provenance_whatever_the_status_says(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    add_master_key(apiserver, litellm.master_key)
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
    add_master_key(apiserver, litellm.master_key)
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
    assert condition(apiserver.status(key))["reason"] == "Blocked"
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
    add_master_key(apiserver, litellm.master_key)
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


def test_invalid_virtualkeys_are_skipped_not_fatal(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    add_master_key(apiserver, litellm.master_key)
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

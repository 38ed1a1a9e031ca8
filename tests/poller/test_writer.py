"""Status writes: conflicts re-read and retried, 5xx retried, others' fields kept, one by one."""

from __future__ import annotations

import threading
from typing import Any

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.deadline import Deadline
from function.poller.kube import KubeCluster, XRRef
from function.poller.metrics import Metrics
from function.poller.writer import Writer
from tests.poller.conftest import (
    MASTER_NAMESPACE,
    MASTER_SECRET,
    make_poller,
    new_raw_key,
    token_of,
    virtualkey,
)
from tests.poller.fake_apiserver import FakeAPIServer, Key


def _one_key(apiserver: FakeAPIServer, litellm: FakeLiteLLM, **fields: object) -> Key:
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": litellm.master_key})
    token = token_of(new_raw_key())
    litellm.add(token, "svc", owner=("team-a", "svc"), **fields)
    return apiserver.add("virtualkeys", virtualkey("svc", litellm.url, token=token))


def _types(status: dict[str, Any]) -> list[str]:
    return [c["type"] for c in status["conditions"]]


def test_conflict_rereads_and_keeps_the_other_writer_s_changes(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    key = _one_key(apiserver, litellm, spend=1.0, max_budget=2.0)
    calls: list[Key] = []

    def crossplane_writes_first(k: Key) -> None:
        if not calls:
            # Crossplane flips Ready and the function rotates the token meanwhile.
            apiserver.set_status(
                k,
                {
                    "keySecretRef": "rotated",
                    "conditions": [
                        {"type": "Ready", "status": "False", "reason": "Creating"},
                        {"type": "KeyReady", "status": "True", "reason": "Available"},
                    ],
                },
            )
        calls.append(k)

    apiserver.before_patch = crossplane_writes_first
    report = make_poller(cluster).cycle()
    assert report.writes == 1
    assert len(calls) == 2  # 409 once, then accepted after a re-read
    status = apiserver.status(key)
    assert status["keySecretRef"] == "rotated"
    assert _types(status) == ["Ready", "KeyReady", "SpendSynced"]
    assert status["conditions"][0]["reason"] == "Creating"
    assert status["currentSpend"] == "1"
    assert (
        "GET",
        "/apis/auth.litellm.ai/v1alpha1/namespaces/team-a/virtualkeys/svc",
    ) in apiserver.requests


def test_5xx_on_patch_is_retried(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    key = _one_key(apiserver, litellm, spend=0.25)
    apiserver.fail("PATCH", "/status", 503, times=2)
    poller = make_poller(cluster)
    report = poller.cycle()
    assert (report.writes, report.write_errors) == (1, 0)
    assert apiserver.status(key)["currentSpend"] == "0.25"
    assert poller.metrics.kube_errors.labels("patch")._value.get() == 2


def test_persistent_5xx_gives_up_without_crashing(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    key = _one_key(apiserver, litellm, spend=0.25)
    apiserver.fail("PATCH", "/status", 500, times=100)
    report = make_poller(cluster).cycle()
    assert (report.writes, report.write_errors) == (0, 1)
    assert "currentSpend" not in apiserver.status(key)


def test_spend_synced_is_replaced_in_place_and_transition_time_kept(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    key = _one_key(apiserver, litellm, spend=0.1)
    poller = make_poller(cluster)
    poller.cycle()
    first = apiserver.status(key)["conditions"][2]
    next(iter(litellm.keys.values())).spend = 0.2
    poller.cycle()
    status = apiserver.status(key)
    assert _types(status) == ["Ready", "KeyReady", "SpendSynced"]
    assert status["conditions"][2]["lastTransitionTime"] == first["lastTransitionTime"]
    assert status["conditions"][2]["message"] != first["message"]


def test_deleted_between_list_and_patch_is_not_an_error(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    key = _one_key(apiserver, litellm)

    def delete(k: Key) -> None:
        apiserver.objects.pop(k)

    apiserver.before_patch = delete
    report = make_poller(cluster).cycle()
    assert (report.writes, report.write_errors) == (0, 0)
    assert key not in apiserver.objects


def test_each_write_stays_with_its_object_and_stops_at_the_deadline() -> None:
    writer = Writer(None, Metrics(), retries=0, sleep=lambda _: None)  # type: ignore[arg-type]

    def broken() -> bool:
        raise ZeroDivisionError

    refs = [XRRef("virtualkeys", name, "team-a") for name in ("a", "b", "c")]
    writes = [(refs[0], lambda: True), (refs[1], broken), (refs[2], lambda: False)]
    assert writer.each(writes, Deadline(float("inf"))) == 1
    assert writer.counts() == (0, 1)
    assert writer.counts() == (0, 0)  # counted once
    stop = threading.Event()
    stop.set()
    assert writer.each(writes, Deadline(float("inf"), stop)) == 0
    assert writer.each(writes, Deadline(0.0)) == 0  # the deadline has passed

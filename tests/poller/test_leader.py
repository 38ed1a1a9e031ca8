"""Leader election through a Lease on the fake API server."""

from __future__ import annotations

import threading

from function.poller.kube import KubeCluster
from function.poller.leader import LeaderElector
from tests.poller.fake_apiserver import FakeAPIServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pair(cluster: KubeCluster, clock: Clock) -> tuple[LeaderElector, LeaderElector]:
    def make(identity: str) -> LeaderElector:
        return LeaderElector(cluster, "crossplane-system", "poller", identity, 15.0, clock=clock)

    return make("pod-a"), make("pod-b")


def test_only_one_replica_leads_and_renews(apiserver: FakeAPIServer, cluster: KubeCluster) -> None:
    clock = Clock()
    a, b = _pair(cluster, clock)
    assert a.step()
    assert not b.step()
    clock.now += 5
    assert a.step()
    assert not b.step()
    lease = apiserver.leases[("crossplane-system", "poller")]
    assert lease["spec"]["holderIdentity"] == "pod-a"
    assert lease["spec"]["leaseDurationSeconds"] == 15
    assert a.is_leader
    assert not b.is_leader


def test_standby_takes_over_an_expired_lease(
    apiserver: FakeAPIServer, cluster: KubeCluster
) -> None:
    clock = Clock()
    a, b = _pair(cluster, clock)
    assert a.step()
    assert not b.step()
    clock.now += 16  # a stopped renewing
    assert not a.is_leader  # past its renew deadline, a stops acting on its own
    assert b.step()
    assert apiserver.leases[("crossplane-system", "poller")]["spec"]["leaseTransitions"] == 1
    assert not a.step()


def test_release_hands_over_at_once(cluster: KubeCluster) -> None:
    clock = Clock()
    a, b = _pair(cluster, clock)
    a.step()
    a.release()
    assert not a.is_leader
    assert b.step()


def test_api_errors_keep_leadership_until_the_deadline(
    apiserver: FakeAPIServer, cluster: KubeCluster
) -> None:
    clock = Clock()
    a, _ = _pair(cluster, clock)
    assert a.step()
    apiserver.fail("GET", "/leases/", 500, times=10)
    clock.now += 5
    assert a.step()  # still within the renew deadline
    clock.now += 6
    assert not a.step()


def test_run_releases_on_stop(apiserver: FakeAPIServer, cluster: KubeCluster) -> None:
    stop = threading.Event()
    elector = LeaderElector(cluster, "crossplane-system", "poller", "pod-a", 3.0)
    thread = threading.Thread(target=elector.run, args=(stop,))
    thread.start()
    for _ in range(100):
        if elector.is_leader:
            break
        stop.wait(0.05)
    assert elector.is_leader
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert apiserver.leases[("crossplane-system", "poller")]["spec"]["holderIdentity"] is None

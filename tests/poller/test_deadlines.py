"""The poller never stops, and never waits, for everyone because of one tenant.

- a cycle ends by --cycle-deadline whatever the proxies do; 40 slow tenant
  proxies (each its own instance) neither delay nor starve a platform
  instance, and take turns between cycles;
- a namespace's tenant proxies are read up to its rules'
  tenantProxies.maxInstances, the first ones by instance id; VirtualKeys on
  the others say why in our own words;
- a deeply nested JSON string in a VirtualKey's or User's spec.metadata, or
  a status nested deeper than Python decodes, stops nothing: through
  `function-litellm-keys poll --once`, end to end;
- an error in a cycle is logged and backed off: `Runner.run()` goes on.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.fake_litellm import FakeLiteLLM
from function.main import main
from function.poller import jsondepth
from function.poller.cycle import Poller
from function.poller.kube import KubeCluster
from function.poller.loop import Runner
from function.poller.metrics import Health
from tests.poller.conftest import (
    MASTER_NAMESPACE,
    MASTER_SECRET,
    RawProxy,
    Writer,
    make_poller,
    new_raw_key,
    settings,
    token_of,
    virtualkey,
)
from tests.poller.fake_apiserver import FakeAPIServer, Key

TENANT_SECRET = "proxy-master"


def tenant_policy(namespaces: list[str], max_instances: int | None = None) -> dict[str, Any]:
    """A rule letting `namespaces` run their own proxies, on loopback (the tests' proxies)."""
    proxies: dict[str, Any] = {"allow": True, "allowLoopback": True}
    if max_instances is not None:
        proxies["maxInstances"] = max_instances
    name = f"tenant-proxies-{max_instances}"
    return {
        "apiVersion": "litellm.fn.crossplane.io/v1beta1",
        "kind": "TenancyPolicy",
        "metadata": {"name": name},
        "spec": {
            "rules": [
                {"name": "own", "namespaces": {"names": namespaces}, "tenantProxies": proxies}
            ]
        },
    }


def tenant_key(name: str, namespace: str, url: str, secret: str = TENANT_SECRET) -> dict[str, Any]:
    """A VirtualKey on the tenant's own proxy, its master key in its own namespace."""
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "keyAlias": name,
            "connectionRef": {"url": url, "masterKeySecretRef": {"name": secret}},
        },
        "status": {},
    }


def _condition(apiserver: FakeAPIServer, key: Key) -> dict[str, Any]:
    conditions = apiserver.status(key).get("conditions") or []
    return next((c for c in conditions if c["type"] == "SpendSynced"), {})


class Slow:
    """Proxies that answer nothing for `seconds`, counting who was asked."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.asked: list[int] = []
        self.lock = threading.Lock()

    def writer(self, index: int) -> Writer:
        def write(_sock: socket.socket, _: str) -> None:
            with self.lock:
                self.asked.append(index)
            time.sleep(self.seconds)  # the client has given up long before

        return write


@pytest.fixture
def platform_key(apiserver: FakeAPIServer, litellm: FakeLiteLLM) -> Key:
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": litellm.master_key})
    token = token_of(new_raw_key())
    litellm.add(token, "platform", spend=1.5, owner=("team-a", "platform"))
    return apiserver.add("virtualkeys", virtualkey("platform", litellm.url, token=token))


def test_slow_tenant_proxies_neither_delay_nor_starve_platform_keys(
    apiserver: FakeAPIServer,
    cluster: KubeCluster,
    raw: Callable[[Writer], RawProxy],
    platform_key: Key,
) -> None:
    slow = Slow(seconds=5.0)
    namespaces = [f"tenant-{i:02d}" for i in range(40)]
    apiserver.add_policy(tenant_policy(namespaces))
    keys = []
    for index, namespace in enumerate(namespaces):
        proxy = raw(slow.writer(index))
        apiserver.add_secret(namespace, TENANT_SECRET, {"masterkey": new_raw_key()})
        keys.append(apiserver.add("virtualkeys", tenant_key("own", namespace, proxy.url)))
    # Without a cycle deadline: 40 proxies x 5 s / 4 workers, well over 30 s.
    poller = make_poller(cluster, cycle_deadline=3.0, litellm_timeout=10.0, concurrency=4)
    started = time.monotonic()
    report = poller.cycle()
    took = time.monotonic() - started
    assert took < 3.0 + 1.5, took
    assert report.instances == 41
    # The platform instance was read and written first.
    assert apiserver.status(platform_key)["currentSpend"] == "1.5"
    assert _condition(apiserver, platform_key)["reason"] == "Active"
    # Each tenant proxy had at most a quarter of the cycle; the rest were not reached.
    first = set(slow.asked)
    assert 0 < len(first) < 40
    assert len(report.not_reached) == 40 - len(first)
    # Those not reached keep their (here: no) status; the next cycle starts with them.
    untouched = [k for i, k in enumerate(keys) if i not in first]
    assert all(apiserver.writes_to(k) == [] for k in untouched)
    slow.asked.clear()
    report = poller.cycle()
    assert set(slow.asked)
    assert not set(slow.asked) & first
    assert apiserver.status(platform_key)["currentSpend"] == "1.5"


def test_tenant_proxies_beyond_the_namespaces_limit_are_not_read(
    apiserver: FakeAPIServer, cluster: KubeCluster, litellm: FakeLiteLLM
) -> None:
    namespace = "tenant-t"
    apiserver.add_policy(tenant_policy([namespace]))  # maxInstances: 2 by default
    # Four instances (one proxy, four master-key Secrets), and a User on a fifth.
    for secret in ("s1", "s2", "s3", "s4", "a-first"):
        apiserver.add_secret(namespace, secret, {"masterkey": litellm.master_key})
    keys = {}
    for secret in ("s1", "s2", "s3", "s4"):
        litellm.add(token_of(new_raw_key()), f"on-{secret}", owner=(namespace, f"on-{secret}"))
        keys[secret] = apiserver.add(
            "virtualkeys", tenant_key(f"on-{secret}", namespace, litellm.url, secret)
        )
    user = {
        "metadata": {"name": "u", "namespace": namespace},
        "spec": {
            "userEmail": "u@example.com",
            "connectionRef": {"url": litellm.url, "masterKeySecretRef": {"name": "a-first"}},
        },
    }
    apiserver.add("users", user)
    report = make_poller(cluster).cycle()
    # Sorted by instance id, the User's proxy and s1 come first: those two are read.
    assert report.over_limit == 3
    assert _condition(apiserver, keys["s1"])["reason"] == "Active"
    read_secrets = {t for m, t in apiserver.requests if m == "GET" and "/secrets/" in t}
    assert read_secrets == {
        f"/api/v1/namespaces/{namespace}/secrets/{name}" for name in ("a-first", "s1")
    }
    for secret in ("s2", "s3", "s4"):
        condition = _condition(apiserver, keys[secret])
        assert (condition["status"], condition["reason"]) == ("False", "TooManyTenantProxies")
        assert "tenantProxies.maxInstances" in condition["message"]
        assert "(2," in condition["message"]
        assert litellm.url not in condition["message"]  # our words, not the tenant's URL
        assert "currentSpend" not in apiserver.status(keys[secret])
    # The largest limit of the rules that allow tenant proxies counts.
    apiserver.add_policy(tenant_policy([namespace], max_instances=3))
    report = make_poller(cluster).cycle()
    assert report.over_limit == 2
    assert _condition(apiserver, keys["s2"])["reason"] == "Active"
    assert _condition(apiserver, keys["s3"])["reason"] == "TooManyTenantProxies"


# '{"a":' * 2000 + '1' + '}' * 2000 cut to the 4,096 characters the XRD admits, and the
# deepest JSON object that fits them whole.
CUT = ('{"a":' * 2000 + "1" + "}" * 2000)[:4096]
WHOLE = '{"":' * 819 + "1" + "}" * 819


@pytest.mark.parametrize("text", [CUT, WHOLE], ids=["cut", "whole"])
def test_deeply_nested_json_in_spec_metadata_stops_no_poll(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, tmp_path: Path, text: str
) -> None:
    assert len(text) <= 4096
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": litellm.master_key})
    token = token_of(new_raw_key())
    litellm.add(token, "good", spend=0.25, owner=("team-a", "good"))
    good = apiserver.add("virtualkeys", virtualkey("good", litellm.url, token=token))
    deep = apiserver.add(
        "virtualkeys", virtualkey("deep", litellm.url, spec={"metadata": {"x": text}})
    )
    user = {
        "metadata": {"name": "deep-user", "namespace": "team-a"},
        "spec": {
            "userEmail": "u@example.com",
            "metadata": {"x": text},
            "connectionRef": virtualkey("x", litellm.url)["spec"]["connectionRef"],
        },
    }
    apiserver.add("users", user)
    # A smaller stack than a busy pod may have left: Python's json gives up on the string.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(700)
    try:
        code = main(
            [
                "poll",
                "--once",
                "--kubeconfig",
                apiserver.kubeconfig(tmp_path),
                "--metrics-address",
                "",
            ]
        )
    finally:
        sys.setrecursionlimit(limit)
    assert code in (0, 1)  # no crash (1: the fake proxy has no users to list)
    assert apiserver.status(good)["currentSpend"] == "0.25"
    if text is WHOLE:  # a JSON object in a string: the function refuses it, the poller skips it
        assert apiserver.writes_to(deep) == []


def test_a_status_nested_deeper_than_python_decodes_hides_no_other_object(
    apiserver: FakeAPIServer, cluster: KubeCluster, litellm: FakeLiteLLM
) -> None:
    # status.rotation.pending is open (x-kubernetes-preserve-unknown-fields): a tenant can
    # nest thousands of levels there, and Python's json would fail the whole listing.
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": litellm.master_key})
    for name in ("good", "deep"):
        litellm.add(token_of(new_raw_key()), name, spend=0.5, owner=("team-a", name))
    good = apiserver.add("virtualkeys", virtualkey("good", litellm.url))
    deep = apiserver.add(
        "virtualkeys",
        virtualkey("deep", litellm.url, status={"rotation": {"pending": "@@DEEP@@"}}),
    )
    apiserver.raw["@@DEEP@@"] = '{"a": ' * 5000 + "1" + "}" * 5000
    report = make_poller(cluster).cycle()
    assert report.skipped == 0
    assert apiserver.status(good)["currentSpend"] == "0.5"
    assert apiserver.status(deep)["currentSpend"] == "0.5"
    assert apiserver.status(deep)["rotation"] == {"pending": "@@DEEP@@"}  # not ours: untouched


class _Failing:
    """A poller whose cycle fails as a bug would, then stops the loop."""

    def __init__(self, poller: Poller, stop: threading.Event) -> None:
        self.poller = poller
        self.metrics = poller.metrics
        self.calls = 0
        self.stop = stop

    def cycle(self, **_: Any) -> Any:
        self.calls += 1
        if self.calls >= 3:
            self.stop.set()
        raise RecursionError

    def close(self) -> None:
        self.poller.close()


@pytest.fixture
def failing(cluster: KubeCluster) -> Iterator[_Failing]:
    stop = threading.Event()
    yield _Failing(make_poller(cluster), stop)
    stop.set()


def test_an_error_in_a_cycle_never_ends_the_loop(failing: _Failing) -> None:
    options = settings(interval=0.01, backoff_base=0.01, backoff_max=0.01, leader_elect=False)
    runner = Runner(failing, options, Health(stale_after=60), stop=failing.stop)  # type: ignore[arg-type]
    assert runner.run() == 0
    assert failing.calls == 3
    errors = failing.metrics.cycles.labels("error")._value.get()
    assert errors == 3


def test_listing_json_fallback_keeps_everything_the_poller_reads() -> None:
    body = json.dumps({"items": [{"metadata": {"name": "x"}, "status": {"p": "@"}}]})
    body = body.replace('"@"', "[" * 3000 + "]" * 3000)
    decoded = jsondepth.loads(body.encode())
    assert decoded["items"][0]["metadata"] == {"name": "x"}
    # The root, items, [0], status: 4 levels; then lists down to the 64th, and None below.
    depth, part = 4, decoded["items"][0]["status"]["p"]
    while isinstance(part, list):
        part, depth = part[0], depth + 1
    assert (part, depth) == (None, jsondepth.MAX_DEPTH)

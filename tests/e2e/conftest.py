"""The real LiteLLM proxy for the end-to-end suite, or a one-line skip.

`../shared/litellm/up.sh` starts it and exports LITELLM_URL and
LITELLM_MASTER_KEY. Without them the suite is skipped; with E2E_REQUIRED=1
(as .ci/run sets) a missing or dead proxy fails the run instead.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from function.poller.cycle import Poller
from function.poller.kube import KubeCluster, api_client
from function.poller.metrics import Metrics
from function.poller.settings import Settings
from tests.conftest import Proxy, load_example
from tests.e2e.cluster import Cluster, FakeClock
from tests.e2e.provider_http import ProviderHTTP
from tests.grpc_harness import FunctionServer
from tests.poller.fake_apiserver import FakeAPIServer, Key

INSTANCE = ("litellm", "litellm-example-secrets")


def platform_policies(proxy_url: str) -> list[dict[str, Any]]:
    """The shipped TenancyPolicy, with the seed's instance at the test proxy's URL.

    In a cluster the URL is the instance's Service; here it is wherever up.sh
    started the proxy. Only the platform's declaration changes: the
    VirtualKeys stay verbatim.
    """
    policy = copy.deepcopy(load_example("install/tenancy-policy.yaml"))
    (declared,) = policy["spec"]["instances"]
    declared["url"] = proxy_url
    return [policy]


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def make_cluster(
    proxy: Proxy, function_server: FunctionServer, unique: str
) -> Iterator[Callable[..., Cluster]]:
    """A Cluster holding one seed VirtualKey with a unique alias, pointed at the proxy."""
    made: list[Cluster] = []
    http = httpx.Client(timeout=30)

    def make(
        example: str = "virtualkey/virtualkey.yaml",
        *,
        policies: list[dict[str, Any]] | None = None,
        namespace: str | None = None,
        secrets: dict[tuple[str, str], dict[str, str]] | None = None,
        **spec: Any,
    ) -> Cluster:
        """The example with `spec` changes, under `policies` (default: the shipped one)."""
        xr = load_example(example)
        xr["metadata"]["name"] = f"{xr['metadata']['name']}-{unique}-{len(made)}"
        xr["metadata"]["namespace"] = namespace or xr["metadata"]["namespace"]
        if "keyAlias" in xr["spec"]:
            xr["spec"]["keyAlias"] = f"{xr['spec']['keyAlias']}-{unique}-{len(made)}"
        xr["spec"].update(spec)
        fn_input = {"apiVersion": "litellm.fn.crossplane.io/v1beta1", "kind": "Input"}
        stored = {INSTANCE: {"masterkey": proxy.master_key}, **(secrets or {})}
        clock = FakeClock()
        provider_http = ProviderHTTP(stored, http, clock=clock)
        cluster = Cluster(
            function_server,
            provider_http,
            fn_input,
            clock,
            platform_policies(proxy.url) if policies is None else policies,
        )
        cluster.apply_xr(xr)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:  # never leave keys behind on the shared proxy
        if cluster.xr is not None:
            cluster.delete_xr()
            cluster.converge()
    http.close()


class SpendWatcher:
    """The poller sidecar, watching the VirtualKeys the journey creates.

    The poller talks to the real proxy and to the fake API server of
    tests/poller, which holds each VirtualKey as the function left it.
    """

    def __init__(self, apiserver: FakeAPIServer, kubeconfig: str, proxy: Proxy) -> None:
        self.apiserver = apiserver
        apiserver.add_secret(*INSTANCE, {"masterkey": proxy.master_key})
        for policy in platform_policies(proxy.url):
            apiserver.add_policy(policy)
        settings = Settings(
            write_retries=3,
            kube_timeout=5.0,
            litellm_timeout=10.0,
        )
        kube = KubeCluster(api_client(kubeconfig), timeout=5.0)
        self.poller = Poller(kube, settings, Metrics(), sleep=lambda _: None)

    def watch(self, cluster: Cluster) -> Key:
        assert cluster.xr is not None
        return self.apiserver.add("virtualkeys", cluster.xr)

    def status(self, key: Key) -> dict[str, Any]:
        return self.apiserver.status(key)

    def reason(self, key: Key) -> str:
        conditions = self.status(key).get("conditions") or []
        return next((c["reason"] for c in conditions if c["type"] == "SpendSynced"), "")

    def until(
        self, key: Key, check: Callable[[dict[str, Any]], bool], seconds: float = 40
    ) -> dict[str, Any]:
        """Poll cycles until `check(status)` holds (spend takes 1-6 s to reach LiteLLM's DB)."""
        deadline = time.monotonic() + seconds
        while True:
            self.poller.cycle()
            status = self.status(key)
            if check(status) or time.monotonic() > deadline:
                return status
            time.sleep(1)

    def events(self, key: Key) -> list[str]:
        name = key[2]
        return [e["reason"] for e in self.apiserver.events if e["involvedObject"]["name"] == name]


@pytest.fixture
def watcher(proxy: Proxy, tmp_path: Path) -> Iterator[SpendWatcher]:
    with FakeAPIServer() as apiserver:
        watcher = SpendWatcher(apiserver, apiserver.kubeconfig(tmp_path), proxy)
        yield watcher
        watcher.poller.close()

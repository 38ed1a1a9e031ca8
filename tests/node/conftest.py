"""The node plane for the node suite, or a one-line skip.

`tools/cluster/node.sh up` starts a control plane with a real node (containerd,
kubelet, kube-proxy, CoreDNS), installs Crossplane from its Helm chart,
provider-http and the function as packages with their runtime images, and the
function with the poller sidecar from examples/poller/. It prints `export
NODE_KUBECONFIG=... NODE_STATE_DIR=... NODE_LITELLM_URL=...`. Without them the
suite is skipped; with NODE_REQUIRED=1 (as .ci/run sets) a missing plane fails
the run instead.

Pods reach the LiteLLM proxy at NODE_LITELLM_URL (node.sh relays it from
loopback); the platform's manifests are applied as on the host plane, with that
URL as the seed instance's. The fixtures carry the host plane's names (`plane`,
`platform`, `proxy`, `tenant`), so its journeys run here unchanged
(test_node_journeys.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

# The host plane's fixtures that build on `plane`, `platform` and `proxy`: here
# they get the node plane's.
from tests.cluster.conftest import (  # noqa: F401 - fixtures, found by name.
    Obj,
    Plane,
    install_platform,
    open_plane,
    poller_kubeconfig,
    tenant,
    unique,
)
from tests.conftest import Proxy, unavailable

NAMESPACE = "crossplane-system"
FUNCTION = "pkg.crossplane.io/function=function-litellm-keys"


@pytest.fixture(scope="session")
def plane() -> Plane:
    """The node plane, under the name the host plane's tests use for theirs."""
    return open_plane(
        "NODE_KUBECONFIG", "NODE_STATE_DIR", "NODE_REQUIRED", "tools/cluster/node.sh up  # as root"
    )


@pytest.fixture(scope="session")
def proxy(proxy: Proxy) -> Proxy:
    """The same proxy, at the address the node's pods reach it (and this machine too)."""
    url = os.environ.get("NODE_LITELLM_URL")
    if not url:
        unavailable("NODE_REQUIRED", "node.sh up ran without LITELLM_URL: no NODE_LITELLM_URL")
    return Proxy(url.rstrip("/"), proxy.master_key)


@pytest.fixture(scope="session")
def platform(plane: Plane, proxy: Proxy) -> Iterator[Plane]:
    install_platform(plane, proxy)
    yield plane


def poller_metric(pod: Obj, name: str) -> float | None:
    """One metric of the pod's poller, summed over its labels; None if it has no series."""
    text = httpx.get(f"http://{pod['status']['podIP']}:8089/metrics", timeout=30).text
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{name} ", f"{name}{{"))
    ]
    return sum(values) if values else None


def function_pods(plane: Plane) -> list[Obj]:
    """The function's pods that are not being deleted, oldest first."""
    pods = plane.items("pods", NAMESPACE, FUNCTION)
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return sorted(live, key=lambda p: str(p["metadata"]["creationTimestamp"]))

"""The API server as the poller lists it: a kind whose CRD is missing, lists paged by 500."""

from __future__ import annotations

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.kube import KubeCluster
from tests.poller.conftest import (
    add_master_key,
    make_poller,
    new_raw_key,
    token_of,
    virtualkey,
)
from tests.poller.fake_apiserver import FakeAPIServer


def test_missing_legacy_crd_is_skipped(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    add_master_key(apiserver, litellm.master_key)
    apiserver.served = {"virtualkeys"}
    token = token_of(new_raw_key())
    litellm.add(token, "svc", owner=("team-a", "svc"))
    apiserver.add("virtualkeys", virtualkey("svc", litellm.url, token=token))
    assert make_poller(cluster).cycle().writes == 1


def test_list_is_paged(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    add_master_key(apiserver, litellm.master_key)
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


def test_listed_objects_keep_nothing_the_poller_never_reads(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, cluster: KubeCluster
) -> None:
    xr = virtualkey("svc", litellm.url)
    xr["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 50
    xr["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{" + '"x": 1,' * 1000 + "}",
        "crossplane.io/paused": "true",
    }
    apiserver.add("virtualkeys", xr)
    ((_, listed),) = cluster.list_virtualkeys()
    assert "managedFields" not in listed["metadata"]
    assert listed["metadata"]["annotations"] == {"crossplane.io/paused": "true"}
    assert listed["spec"] == xr["spec"]

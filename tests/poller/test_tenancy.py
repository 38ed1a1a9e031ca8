"""The poller sends a master key only where the function would: the same TenancyPolicies.

The poller reads the policies and the Namespaces' labels from the API server
(here the fake one, over HTTP) each cycle and skips every VirtualKey the
function refuses, before it reads any master key or calls any proxy. The
attacks are the function's own table (tests/tenancy/test_decide.py), so both sides
are checked against the same cases.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.kube import KubeCluster, api_client
from function.poller.tenancy import Tenancy, cap_tenant_proxies
from function.tenancy.policy import load_policies
from tests.poller.conftest import (
    MASTER_NAMESPACE,
    MASTER_SECRET,
    RawProxy,
    Writer,
    key_target,
    make_poller,
    new_raw_key,
    routes,
    user_target,
    virtualkey,
)
from tests.poller.fake_apiserver import FakeAPIServer
from tests.tenancy.policies import SHIPPED, TEAM_B, seed
from tests.tenancy.test_decide import ATTACKS


@pytest.fixture
def plain_apiserver() -> Iterator[FakeAPIServer]:
    """A fake API server with no platform team: only the policies a test adds."""
    with FakeAPIServer() as server:
        yield server


@pytest.fixture
def plain_cluster(plain_apiserver: FakeAPIServer, tmp_path: Path) -> KubeCluster:
    return KubeCluster(api_client(plain_apiserver.kubeconfig(tmp_path)), timeout=5.0)


def _platform(apiserver: FakeAPIServer, url: str, master_key: str) -> dict[str, Any]:
    """The shipped policy with litellm-example at `url`, and its master-key Secret."""
    shipped = copy.deepcopy(SHIPPED)
    shipped["spec"]["instances"][0]["url"] = url
    apiserver.add_policy(shipped)
    apiserver.add_secret("litellm", "litellm-example-secrets", {"masterkey": master_key})
    return shipped


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_poller_skips_what_the_function_refuses(
    plain_apiserver: FakeAPIServer, plain_cluster: KubeCluster, name: str
) -> None:
    attack = ATTACKS[name]
    for policy in attack.policies:
        plain_apiserver.add_policy(policy)
    xr = copy.deepcopy(attack.xr)
    namespace = xr["metadata"]["namespace"]
    plain_apiserver.add_namespace(namespace, attack.labels)
    plain_apiserver.add("virtualkeys", xr)
    targets, skipped = make_poller(plain_cluster).targets()
    assert (targets, skipped) == ([], 1)


def test_master_key_never_goes_to_a_tenant_url(
    plain_apiserver: FakeAPIServer, plain_cluster: KubeCluster
) -> None:
    master_key = new_raw_key()
    with FakeLiteLLM(master_key=master_key) as platform, FakeLiteLLM() as attacker:
        _platform(plain_apiserver, platform.url, master_key)
        plain_apiserver.add_policy(TEAM_B)
        for namespace in ("team-a", "team-b"):
            plain_apiserver.add_namespace(namespace)
            stolen = seed(
                keyAlias=f"steal-{namespace}",
                connectionRef={
                    "url": attacker.url,
                    "masterKeySecretRef": {
                        "name": "litellm-example-secrets",
                        "namespace": "litellm",
                    },
                },
            )
            stolen["metadata"] = {"name": f"steal-{namespace}", "namespace": namespace}
            plain_apiserver.add("virtualkeys", stolen)
        honest = seed()
        plain_apiserver.add("virtualkeys", honest)
        report = make_poller(plain_cluster).cycle()
        assert (report.keys, report.skipped) == (1, 2)
        assert attacker.total_requests() == 0
        assert platform.total_requests() >= 1


def test_another_namespaces_instance_is_not_polled(
    plain_apiserver: FakeAPIServer, plain_cluster: KubeCluster
) -> None:
    master_key = new_raw_key()
    with FakeLiteLLM(master_key=master_key) as other:
        team_b = copy.deepcopy(TEAM_B)
        team_b["spec"]["instances"][0].update(
            url=other.url, masterKeySecretRef={"name": MASTER_SECRET, "namespace": MASTER_NAMESPACE}
        )
        plain_apiserver.add_policy(team_b)
        plain_apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": master_key})
        plain_apiserver.add_namespace("team-a")
        plain_apiserver.add(
            "virtualkeys",
            seed(connectionRef={"instanceRef": {"name": "litellm-b", "namespace": "litellm-b"}}),
        )
        report = make_poller(plain_cluster).cycle()
        assert (report.keys, report.skipped) == (0, 1)
        assert other.total_requests() == 0


def test_without_any_policy_nothing_is_polled(
    plain_apiserver: FakeAPIServer, plain_cluster: KubeCluster
) -> None:
    with FakeLiteLLM() as proxy:
        plain_apiserver.add_secret("litellm", "litellm-example-secrets", {"masterkey": "x"})
        plain_apiserver.add("virtualkeys", seed())
        report = make_poller(plain_cluster).cycle()
        assert (report.keys, report.skipped, report.requests) == (0, 1, 0)
        assert proxy.total_requests() == 0


def test_a_label_selected_namespace_is_polled(
    plain_apiserver: FakeAPIServer, plain_cluster: KubeCluster
) -> None:
    master_key = new_raw_key()
    with FakeLiteLLM(master_key=master_key) as proxy:
        shipped = _platform(plain_apiserver, proxy.url, master_key)
        shipped["spec"]["rules"] = [
            {
                "name": "tenants",
                "namespaces": {"selector": {"matchLabels": {"litellm.ai/tenant": "true"}}},
                "instances": [{"name": "litellm-example", "namespace": "litellm"}],
            }
        ]
        plain_apiserver.add_policy(shipped)
        plain_apiserver.add_namespace("team-a", {"litellm.ai/tenant": "true"})
        plain_apiserver.add("virtualkeys", seed())
        unlabelled = seed(keyAlias="other")
        unlabelled["metadata"] = {"name": "other", "namespace": "team-z"}
        plain_apiserver.add_namespace("team-z")
        plain_apiserver.add("virtualkeys", unlabelled)
        targets, skipped = make_poller(plain_cluster).targets()
        assert [t.tenant for t in targets] == [("team-a", "example-service")]
        assert skipped == 1
        assert targets[0].connection.base_url == proxy.url


def test_policies_and_labels_are_listed_once_a_cycle(
    apiserver: FakeAPIServer, cluster: KubeCluster, raw: Callable[[Writer], RawProxy]
) -> None:
    """VirtualKeys, Users and Teams are all decided from one listing of each."""
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": "sk-master"})
    proxy = raw(
        routes(
            {
                "/key/list": b'{"keys": [], "total_pages": 1}',
                "/user/list": b'{"users": [], "total_pages": 1}',
                "/v2/team/list": b'{"teams": [], "total_pages": 1}',
            }
        )
    )
    apiserver.add("virtualkeys", virtualkey("svc", proxy.url))
    connection = virtualkey("svc", proxy.url)["spec"]["connectionRef"]
    for plural, named in (
        ("users", {"userEmail": "one@example.com"}),
        ("teams", {"teamAlias": "one"}),
    ):
        spec = {"connectionRef": connection, **named}
        apiserver.add(plural, {"metadata": {"name": "one", "namespace": "team-a"}, "spec": spec})
    apiserver.requests.clear()
    report = make_poller(cluster).cycle()
    assert (report.keys, report.accounts, report.skipped) == (1, 2, 0)
    listed = [target.split("?", 1)[0] for method, target in apiserver.requests if method == "GET"]
    assert listed.count("/apis/litellm.fn.crossplane.io/v1beta1/tenancypolicies") == 1
    assert listed.count("/api/v1/namespaces") == 1


def _tenant_rule(namespaces: list[str], max_instances: int) -> dict[str, Any]:
    proxies = {"allow": True, "allowLoopback": True, "maxInstances": max_instances}
    return {
        "apiVersion": "litellm.fn.crossplane.io/v1beta1",
        "kind": "TenancyPolicy",
        "metadata": {"name": f"own-{max_instances}"},
        "spec": {
            "rules": [
                {"name": "own", "namespaces": {"names": namespaces}, "tenantProxies": proxies}
            ]
        },
    }


def test_the_tenant_proxy_cap_reads_the_first_instances_of_each_namespace() -> None:
    tenancy = Tenancy(load_policies([_tenant_rule(["t"], 2), _tenant_rule(["t"], 1)]), {})
    assert tenancy.tenant_proxy_limit("t") == 2  # the largest of the rules that allow them
    assert tenancy.tenant_proxy_limit("other") == 0
    keys = [key_target("t", s) for s in ("s3", "s1", "s4")]
    platform = key_target("t", "platform", tenant_proxy=False)
    accounts = [user_target("t", "s2"), user_target("other", "x")]
    capped = cap_tenant_proxies([*keys, platform], accounts, tenancy)
    # By instance id, s1 and s2 come first; the platform instance is never capped.
    assert [k.ref.name for k in capped.keys] == ["s1", "platform"]
    assert [(k.ref.name, limit) for k, limit in capped.over] == [("s3", 2), ("s4", 2)]
    assert [a.ref.name for a in capped.accounts] == ["s2"]  # "other" allows none
    assert capped.left_out == 3

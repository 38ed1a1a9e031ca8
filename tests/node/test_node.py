"""Everything in pods, as a platform team installs it: tools/cluster/node.sh's plane.

Crossplane (from its Helm chart, with its own RBAC) installs provider-http and
the function from packages with their runtime images, and makes the
function's Deployment with the poller sidecar from examples/poller/. The
seed's journey then runs verbatim, and so do the faults only pods have: a
killed function pod, and two poller replicas.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cluster.conftest import (
    Plane,
    Tenant,
    condition,
    keys_with_alias,
    run_readme_journey,
    until,
)
from tests.conftest import VIRTUALKEYS, Proxy, chat
from tests.node.conftest import NAMESPACE, function_pods, poller_metric

pytestmark = pytest.mark.node

POLLER_SA = "function-litellm-keys-poller"
LEASE = "function-litellm-keys-poller"
LEASE_SECONDS = 15.0  # the poller's default lease duration


def test_crossplane_made_the_function_deployment_with_the_poller_sidecar(plane: Plane) -> None:
    listed = plane.kubectl("get", "pods", "-n", NAMESPACE).stdout
    rows = [line.split() for line in listed.splitlines() if "function-litellm-keys" in line]
    assert [row[1:3] for row in rows] == [["2/2", "Running"]], listed
    pod = function_pods(plane)[0]
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert sorted(containers) == ["package-runtime", "poller"]
    # The sidecar names the public image (examples/poller/ as shipped), which the
    # node's mirror serves; the function runs the package Crossplane resolved: one image.
    assert (
        containers["poller"]["image"] == "xpkg.crossplane.io/litellm/function-litellm-keys:v0.1.0"
    )
    digests = {
        s["name"]: s["imageID"].rpartition("@")[2] for s in pod["status"]["containerStatuses"]
    }
    assert digests["poller"] == digests["package-runtime"], digests
    assert containers["poller"]["args"] == ["poll"]
    guard = containers["poller"]["securityContext"]
    assert (guard["readOnlyRootFilesystem"], guard["runAsNonRoot"]) == (True, True)
    assert pod["spec"]["serviceAccountName"] == POLLER_SA
    function = plane.get("function", "function-litellm-keys")
    assert condition(function, "Healthy").get("status") == "True"
    # Crossplane reaches the function through its Service, by cluster DNS.
    assert plane.get("service", "function-litellm-keys", NAMESPACE) is not None


def test_crossplane_runs_with_its_own_rbac(platform: Plane) -> None:
    crossplane = platform.items("pods", NAMESPACE, "app=crossplane")
    assert [p["spec"]["serviceAccountName"] for p in crossplane] == ["crossplane"]
    who = "--as=system:serviceaccount:crossplane-system:crossplane"

    def can(*what: str) -> str:
        done = platform.kubectl("auth", "can-i", *what, who, check=False)
        return done.stdout.strip()

    assert can("*", "*") == "no"  # not cluster-admin
    # examples/install/crossplane-rbac.yaml, aggregated into Crossplane's ClusterRole.
    assert can("list", "tenancypolicies.litellm.fn.crossplane.io") == "yes"
    assert can("list", "namespaces") == "yes"


def test_the_seed_journey_runs_verbatim(platform: Plane, proxy: Proxy) -> None:
    try:
        run_readme_journey(platform, proxy)
        until(lambda: keys_with_alias(proxy, "example-service") == [], "the key's deletion")
        research = platform.get("virtualkey", "research-key", "team-a")
        assert condition(research, "Ready").get("status") == "True"
    finally:
        platform.kubectl("delete", "-f", str(VIRTUALKEYS / "virtualkey-advanced.yaml"), check=False)
        platform.kubectl("delete", "-f", str(VIRTUALKEYS / "virtualkey.yaml"), check=False)


def _kill(plane: Plane, pod: dict[str, Any]) -> None:
    plane.kubectl(
        "delete", "pod", "-n", NAMESPACE, pod["metadata"]["name"],
        "--grace-period=0", "--force", "--wait=false",
    )  # fmt: skip


def _both_ready(pod: dict[str, Any]) -> bool:
    """The function and the poller both run, ready."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return len(statuses) == 2 and all(s.get("ready") for s in statuses)


def _serving(plane: Plane, old: str) -> bool:
    """A pod other than `old` runs both containers, ready."""
    return any(_both_ready(p) for p in function_pods(plane) if p["metadata"]["name"] != old)


def test_a_killed_function_pod_loses_and_duplicates_no_key(
    tenant: Tenant, proxy: Proxy, plane: Plane
) -> None:
    xr = tenant.virtualkey()
    victim = function_pods(plane)[0]
    _kill(plane, victim)  # while Crossplane composes the new key
    ready = tenant.ready(xr, 240)
    until(lambda: _serving(plane, victim["metadata"]["name"]), "a new function pod", 240)
    alias = xr["spec"]["keyAlias"]
    live = keys_with_alias(proxy, alias)
    assert [k["token"] for k in live] == [ready["status"]["tokenHash"]]
    key = tenant.key(xr)
    assert chat(proxy, key) == 200
    # Killed again, mid-update: the update lands in place on the new pod.
    _kill(plane, function_pods(plane)[0])
    meta = xr["metadata"]
    plane.kubectl(
        "patch", "virtualkey", "-n", meta["namespace"], meta["name"], "--type=merge",
        "-p", '{"spec":{"maxBudget":"200"}}',
    )  # fmt: skip

    def budget() -> float | None:
        found = keys_with_alias(proxy, alias)
        return found[0].get("max_budget") if len(found) == 1 else None

    until(lambda: budget() == 200.0, "the new budget on the proxy", 240)
    assert [k["token"] for k in keys_with_alias(proxy, alias)] == [ready["status"]["tokenHash"]]
    assert tenant.key(xr) == key


def _holder(plane: Plane) -> str:
    lease = plane.get("lease", LEASE, NAMESPACE)
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def _replicas(plane: Plane, count: int) -> None:
    patch = {"spec": {"deploymentTemplate": {"spec": {"replicas": count}}}}
    plane.kubectl(
        "patch", "deploymentruntimeconfig", "function-litellm-keys", "--type=merge",
        "-p", json.dumps(patch),
    )  # fmt: skip


def test_two_pollers_one_writes_and_the_other_takes_over(plane: Plane) -> None:
    _replicas(plane, 2)
    try:

        def two_ready() -> list[dict[str, Any]] | None:
            pods = function_pods(plane)
            ready = [p for p in pods if _both_ready(p)]
            return ready if len(pods) == 2 and len(ready) == 2 else None

        pods = until(two_ready, "two function pods, each with its poller", 240)
        names = {p["metadata"]["name"] for p in pods}
        holder = until(lambda: _holder(plane) in names and _holder(plane), "a Lease holder")
        leader = next(p for p in pods if p["metadata"]["name"] == holder)
        follower = next(p for p in pods if p["metadata"]["name"] != holder)
        until(lambda: poller_metric(leader, "litellm_poller_leader") == 1.0, "the leader's gauge")
        assert poller_metric(follower, "litellm_poller_leader") == 0.0
        # it writes nothing
        assert (poller_metric(follower, "litellm_poller_cycles_total") or 0.0) == 0.0
        _kill(plane, leader)
        # The follower, or the Deployment's replacement for the killed pod if it
        # asks first: a live replica holds the Lease within the Lease's time.
        gone = leader["metadata"]["name"]

        def new_holder() -> str:
            live = {p["metadata"]["name"] for p in function_pods(plane)} - {gone}
            return _holder(plane) if _holder(plane) in live else ""

        holder = until(new_holder, "a live poller to take the Lease", LEASE_SECONDS * 2)
        until(
            lambda: (
                [
                    poller_metric(p, "litellm_poller_leader")
                    for p in function_pods(plane)
                    if p.get("status", {}).get("podIP") and p["metadata"]["name"] != gone
                ].count(1.0)
                == 1
            ),
            "exactly one leader among the live pollers",
            LEASE_SECONDS * 2,
        )
        now = next(p for p in function_pods(plane) if p["metadata"]["name"] == holder)
        until(
            lambda: (poller_metric(now, "litellm_poller_cycles_total") or 0.0) >= 1.0,
            "the new leader's first cycle",
            LEASE_SECONDS * 3,
        )
    finally:
        _replicas(plane, 1)
        until(lambda: len(function_pods(plane)) == 1, "one function pod again", 240)

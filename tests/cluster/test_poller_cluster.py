"""The poller on the real control plane, as its ServiceAccount with examples/poller/rbac.yaml.

The API server enforces the shipped RBAC, the status subresource, resourceVersion
conflicts and Leases for real. Budget and expiry come from the real proxy.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import SERVICE_ACCOUNT, Plane, Tenant, condition, poll_once, until
from tests.conftest import ROOT, Proxy, chat

pytestmark = pytest.mark.cluster

LEASE = ("crossplane-system", "function-litellm-keys-poller")


def status_of(plane: Plane, xr: dict[str, Any]) -> dict[str, Any]:
    found = plane.get("virtualkey", xr["metadata"]["name"], xr["metadata"]["namespace"])
    assert found is not None
    status: dict[str, Any] = found.get("status") or {}
    return status


def test_the_poller_works_with_exactly_the_shipped_rbac(
    tenant: Tenant, proxy: Proxy, poller_kubeconfig: Path
) -> None:
    xr = tenant.ready(tenant.virtualkey())
    assert chat(proxy, tenant.key(xr)) == 200

    def spent() -> bool:
        done = poll_once(poller_kubeconfig)
        assert done.returncode == 0, done.stderr
        return float(status_of(tenant.plane, xr).get("currentSpend") or 0) > 0

    until(spent, "the spend in status", 60)
    status = status_of(tenant.plane, xr)
    assert status["isActive"] is True
    assert condition({"status": status}, "SpendSynced")["reason"] == "Active"
    # Crossplane's own status survives the poller's writes, and the reverse.
    assert condition({"status": status}, "Ready")["status"] == "True"
    assert status["keySecretRef"]
    # Least privilege, as the API server sees it.
    who = f"system:serviceaccount:crossplane-system:{SERVICE_ACCOUNT}"
    for verb, resource, namespace, allowed in (
        ("get", "secrets/litellm-example-secrets", "litellm", "yes"),
        ("get", "secrets", "team-a", "no"),
        ("list", "secrets", "litellm", "no"),
        ("update", "virtualkeys.auth.litellm.ai", "team-a", "no"),
        ("patch", "virtualkeys.auth.litellm.ai --subresource=status", "team-a", "yes"),
        ("list", "tenancypolicies.litellm.fn.crossplane.io", "", "yes"),
    ):
        where = ["-n", namespace] if namespace else []
        answer = tenant.plane.kubectl(
            "auth", "can-i", verb, *resource.split(), *where, "--as", who, check=False
        ).stdout.strip()
        assert answer == allowed, (verb, resource, namespace, answer)


def test_budget_and_expiry_reach_status(
    tenant: Tenant, proxy: Proxy, poller_kubeconfig: Path
) -> None:
    spent = tenant.ready(tenant.virtualkey(maxBudget="0.000001"))
    expiring = tenant.ready(tenant.virtualkey(duration="3s"))
    assert chat(proxy, tenant.key(spent)) == 200  # the first call is allowed
    until(lambda: chat(proxy, tenant.key(spent)) != 200, "the budget to stop the key")
    until(lambda: chat(proxy, tenant.key(expiring)) == 401, "the key to expire", 30)

    def reported() -> bool:
        assert poll_once(poller_kubeconfig).returncode == 0
        reasons = [
            condition({"status": status_of(tenant.plane, xr)}, "SpendSynced").get("reason")
            for xr in (spent, expiring)
        ]
        return reasons == ["BudgetExceeded", "Expired"]

    until(reported, "BudgetExceeded and Expired in status", 60)
    for xr in (spent, expiring):
        assert status_of(tenant.plane, xr)["isActive"] is False
    assert status_of(tenant.plane, expiring)["expiryDate"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Replica:
    """One `function-litellm-keys poll` process with leader election."""

    def __init__(self, kubeconfig: Path, name: str) -> None:
        self.name = name
        self.port = _free_port()
        env = {
            **{k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"},
            "KUBECONFIG": str(kubeconfig),
            "POD_NAME": name,
            "POD_NAMESPACE": LEASE[0],
            "POLLER_INTERVAL": "1",
            "POLLER_LEASE_DURATION": "4",
            "POLLER_METRICS_ADDRESS": f"127.0.0.1:{self.port}",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "function.main", "poll"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def leader(self) -> float | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/metrics", timeout=2
            ) as answer:
                text = answer.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("litellm_poller_leader "):
                return float(line.split()[1])
        return None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def replicas(poller_kubeconfig: Path) -> Iterator[list[Replica]]:
    made = [Replica(poller_kubeconfig, f"poller-{i}") for i in range(2)]
    yield made
    for replica in made:
        replica.stop()


def test_two_replicas_share_one_lease(tenant: Tenant, replicas: list[Replica]) -> None:
    xr = tenant.ready(tenant.virtualkey())

    def holder() -> str | None:
        lease = tenant.plane.get("lease", LEASE[1], LEASE[0])
        return ((lease or {}).get("spec") or {}).get("holderIdentity")

    first = until(holder, "a replica to take the Lease", 60)
    leaders = until(
        lambda: (
            [r.name for r in replicas if r.leader() == 1.0]
            if all(r.leader() is not None for r in replicas)
            else None
        ),
        "both replicas to serve metrics",
        60,
    )
    assert leaders == [first]
    until(lambda: "isActive" in status_of(tenant.plane, xr), "the leader to write status", 60)
    # The leader dies without a word: the other takes over once the Lease expires.
    (leader,) = [r for r in replicas if r.name == first]
    leader.stop(signal.SIGKILL)
    second = until(lambda: (h := holder()) != first and h, "the standby to take over", 60)
    (standby,) = [r for r in replicas if r.name != first]
    assert second == standby.name
    until(lambda: standby.leader() == 1.0, "the standby to lead", 30)
    # Clear a field the poller writes; only a leader writes it back.
    cleared = json.dumps({"status": {"isActive": None}})
    tenant.plane.kubectl(
        "patch", "virtualkey", "-n", xr["metadata"]["namespace"], xr["metadata"]["name"],
        "--subresource", "status", "--type", "merge", "-p", cleared,
    )  # fmt: skip
    until(lambda: "isActive" in status_of(tenant.plane, xr), "the new leader to write status", 60)

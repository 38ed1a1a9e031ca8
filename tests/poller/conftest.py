"""Fixtures for the poller: a fake API server, a fake LiteLLM, VirtualKeys.

`virtualkey(name, url)` names its proxy by instanceRef, as tenants do. The
`apiserver` fixture plays the platform team: when a VirtualKey is added, a
TenancyPolicy declaring that instance (its URL, and the master key in
Secret litellm/litellm-master) and granting it to the VirtualKey's
namespace is added too. What happens without a grant is tested in
tests/poller/test_tenancy.py with a plain FakeAPIServer.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.cycle import Poller
from function.poller.kube import KubeCluster, api_client
from function.poller.metrics import Metrics
from function.poller.settings import Settings
from tests.poller.fake_apiserver import FakeAPIServer, Key

MASTER_NAMESPACE = "litellm"
MASTER_SECRET = "litellm-master"
# Instances the tests' VirtualKeys name, by URL.
_INSTANCES: dict[str, str] = {}


def instance_name(url: str) -> str:
    """The instance a test VirtualKey names for a proxy at `url`."""
    name = "inst-" + hashlib.sha256(url.encode()).hexdigest()[:10]
    _INSTANCES[name] = url
    return name


def grant(name: str, url: str, namespaces: list[str]) -> dict[str, Any]:
    """A TenancyPolicy declaring instance `name` at `url` and granting it to `namespaces`."""
    ref = {"name": name, "namespace": MASTER_NAMESPACE}
    return {
        "apiVersion": "litellm.fn.crossplane.io/v1beta1",
        "kind": "TenancyPolicy",
        "metadata": {"name": f"grant-{name}"},
        "spec": {
            "instances": [
                {
                    **ref,
                    "url": url,
                    "masterKeySecretRef": {"name": MASTER_SECRET, "key": "masterkey"},
                }
            ],
            "rules": [{"name": "tenants", "namespaces": {"names": namespaces}, "instances": [ref]}],
        },
    }


class GrantingAPIServer(FakeAPIServer):
    """The fake API server with a platform team that grants what tests' VirtualKeys use."""

    def add(self, plural: str, obj: dict[str, Any]) -> Key:
        ref = ((obj.get("spec") or {}).get("connectionRef") or {}).get("instanceRef") or {}
        name = ref.get("name")
        if name in _INSTANCES:
            meta = obj.get("metadata") or {}
            labels = meta.get("labels") or {}
            namespace = meta.get("namespace") or labels.get("crossplane.io/claim-namespace")
            existing = self.policies.get(f"grant-{name}")
            namespaces = existing["spec"]["rules"][0]["namespaces"]["names"] if existing else []
            if namespace and namespace not in namespaces:
                self.add_policy(grant(name, _INSTANCES[name], [*namespaces, namespace]))
        return super().add(plural, obj)


def new_raw_key() -> str:
    return "sk-" + secrets.token_urlsafe(32)


def token_of(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def virtualkey(
    name: str,
    url: str,
    *,
    namespace: str = "team-a",
    alias: str | None = None,
    token: str | None = None,
    status: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A v2 VirtualKey XR as the function leaves it."""
    base_status: dict[str, Any] = {
        "keySecretRef": f"{name}-litellm-key",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Available",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            },
            {
                "type": "KeyReady",
                "status": "True",
                "reason": "Available",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            },
        ],
    }
    if token:
        base_status["tokenHash"] = token
    base_status.update(status or {})
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "keyAlias": alias or name,
            "connectionRef": {
                "instanceRef": {"name": instance_name(url), "namespace": MASTER_NAMESPACE}
            },
            **(spec or {}),
        },
        "status": base_status,
    }


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "backoff_base": 30.0,
        "write_retries": 3,
        "litellm_timeout": 2.0,
        "kube_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def apiserver() -> Iterator[FakeAPIServer]:
    with GrantingAPIServer() as server:
        yield server


@pytest.fixture
def litellm() -> Iterator[FakeLiteLLM]:
    with FakeLiteLLM(master_key=new_raw_key()) as fake:
        yield fake


@pytest.fixture
def cluster(apiserver: FakeAPIServer, tmp_path: Path) -> KubeCluster:
    return KubeCluster(api_client(apiserver.kubeconfig(tmp_path)), timeout=5.0)


def make_poller(cluster: KubeCluster, **overrides: Any) -> Poller:
    return Poller(cluster, settings(**overrides), Metrics(), sleep=lambda _: None)


@pytest.fixture
def proxy() -> Iterator[httpx.Client]:
    """An admin client of the real proxy (tests that use it skip without LITELLM_URL)."""
    with httpx.Client(
        base_url=os.environ["LITELLM_URL"],
        headers={"Authorization": f"Bearer {os.environ['LITELLM_MASTER_KEY']}"},
        timeout=30,
    ) as client:
        yield client

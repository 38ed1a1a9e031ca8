"""Fixtures for the poller: a fake API server, a fake LiteLLM, VirtualKeys."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.cycle import Poller
from function.poller.kube import KubeCluster, api_client
from function.poller.metrics import Metrics
from function.poller.settings import Settings
from tests.poller.fake_apiserver import FakeAPIServer

MASTER_NAMESPACE = "litellm"
MASTER_SECRET = "litellm-master"


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
                "url": url,
                "masterKeySecretRef": {
                    "name": MASTER_SECRET,
                    "namespace": MASTER_NAMESPACE,
                    "key": "masterkey",
                },
            },
            **(spec or {}),
        },
        "status": base_status,
    }


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "allowed_master_key_namespaces": (MASTER_NAMESPACE,),
        "backoff_base": 30.0,
        "write_retries": 3,
        "litellm_timeout": 2.0,
        "kube_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def apiserver() -> Iterator[FakeAPIServer]:
    with FakeAPIServer() as server:
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

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
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.accounts import AccountTarget
from function.poller.cycle import Poller
from function.poller.fetch import Wanted
from function.poller.keys import KeyTarget
from function.poller.kube import KubeCluster, XRRef, api_client
from function.poller.metrics import Metrics
from function.poller.settings import Settings
from function.tenancy.connection import Connection, MasterKeyRef
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


def add_master_key(apiserver: FakeAPIServer, master_key: str) -> None:
    """The master-key Secret that the instances of `grant` name."""
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": master_key})


def condition(status: dict[str, Any], kind: str = "SpendSynced") -> dict[str, Any]:
    """One condition of a status, by type."""
    return next(c for c in status["conditions"] if c["type"] == kind)


def proxy_connection(namespace: str, secret: str) -> Connection:
    """A proxy whose master key is in Secret `secret` of `namespace`: one instance each."""
    return Connection("http://127.0.0.1:4000", MasterKeyRef(secret, namespace, "masterkey"))


def key_target(namespace: str, secret: str, *, tenant_proxy: bool = True) -> KeyTarget:
    """A VirtualKey named `secret`, read from the instance of `proxy_connection`."""
    owner = (namespace, secret)
    ref = XRRef("virtualkeys", secret, namespace)
    connection = proxy_connection(namespace, secret)
    return KeyTarget(ref, {}, Wanted(secret, owner), connection, owner, tenant_proxy=tenant_proxy)


def user_target(namespace: str, secret: str) -> AccountTarget:
    """A User named `secret` on a tenant proxy, read from the instance of `proxy_connection`."""
    ref = XRRef("users", secret, namespace)
    connection = proxy_connection(namespace, secret)
    owner = (namespace, secret)
    return AccountTarget(ref, {}, f"{namespace}.{secret}", connection, owner, tenant_proxy=True)


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


# --- raw-socket proxies: the bytes on the wire are exactly the hostile ones ---------------

Writer = Callable[[socket.socket, str], None]


class RawProxy:
    """An HTTP server that answers every request by calling `write(socket, path)`."""

    def __init__(self, write: Writer) -> None:
        self.requests = 0
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                proxy.requests += 1
                path = data.split(b" ", 2)[1].decode()
                try:
                    write(self.request, path)
                except OSError:
                    pass  # the client gave up, as it should

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def raw() -> Iterator[Callable[[Writer], RawProxy]]:
    made: list[RawProxy] = []

    def make(write: Writer) -> RawProxy:
        made.append(RawProxy(write))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


def answer(body: bytes, status: str = "200 OK") -> Writer:
    def write(sock: socket.socket, _: str) -> None:
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode() + body)

    return write


def routes(table: dict[str, bytes]) -> Writer:
    """Answer each path (query string aside) from `table`; FastAPI's 404 for any other."""

    def write(sock: socket.socket, path: str) -> None:
        body = table.get(path.split("?", 1)[0])
        if body is None:
            answer(b'{"detail": "Not Found"}', "404 Not Found")(sock, path)
        else:
            answer(body)(sock, path)

    return write


def stamp(kind: str, namespace: str, name: str) -> dict[str, str]:
    """The provenance the function writes on a user (kind `user`) or team (`team`)."""
    return {"auth.litellm.ai/namespace": namespace, f"auth.litellm.ai/{kind}": name}

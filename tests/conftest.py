"""Shared fixtures: the function's gRPC server and the seed VirtualKeys."""

from __future__ import annotations

import contextlib
import copy
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import yaml

from tests.grpc_harness import FunctionServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The examples by feature, as function-go-templating's example/<feature>/.
INSTALL = EXAMPLES / "install"  # what the platform team applies once
VIRTUALKEYS = EXAMPLES / "virtualkey"
ACCOUNTS = EXAMPLES / "accounts"  # Users and Teams
LEGACY = EXAMPLES / "legacy"
POLLER = EXAMPLES / "poller"
# ../shared beside the checkout: the LiteLLM harness, samples and CRD schemas.
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def function_server() -> Iterator[FunctionServer]:
    with FunctionServer() as server:
        yield server


def load_example(name: str) -> dict[str, Any]:
    """One example by its path under examples/, e.g. `virtualkey/virtualkey.yaml`."""
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def seed_xr() -> dict[str, Any]:
    """The seed's example-service VirtualKey, as a v2 XR."""
    xr = copy.deepcopy(load_example("virtualkey/virtualkey.yaml"))
    xr["metadata"]["uid"] = "5e1f1c57-0000-4000-8000-000000000001"
    return xr


@dataclass(frozen=True)
class Proxy:
    url: str
    master_key: str

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.master_key}"},
            timeout=30,
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def unavailable(required_by: str, message: str) -> NoReturn:
    """Skip with `message`, or fail when the environment variable `required_by` is 1 (CI)."""
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{required_by}=1, but {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def proxy() -> Proxy:
    url, key = os.environ.get("LITELLM_URL"), os.environ.get("LITELLM_MASTER_KEY")
    if not url or not key:
        unavailable(
            "E2E_REQUIRED",
            'no LiteLLM proxy (LITELLM_URL): run `eval "$(bash ../shared/litellm/up.sh)"` first',
        )
    try:
        httpx.get(f"{url}/health/liveliness", timeout=10).raise_for_status()
    except httpx.HTTPError as e:
        unavailable("E2E_REQUIRED", f"the LiteLLM proxy at {url} does not answer: {e}")
    return Proxy(url.rstrip("/"), key)


@contextlib.contextmanager
def platform_admin(proxy: Proxy, user_id: str) -> Iterator[str]:
    """A proxy_admin user the platform made on the proxy itself, and a key of it; deleted after."""
    with proxy.admin() as admin:
        made = admin.post(
            "/user/new",
            json={"user_id": user_id, "user_role": "proxy_admin", "auto_create_key": False},
        )
        assert made.status_code == 200, made.text
        key = str(admin.post("/key/generate", json={"user_id": user_id}).json()["key"])
    try:
        yield key
    finally:
        with proxy.admin() as admin:
            admin.post("/user/delete", json={"user_ids": [user_id]})


def chat(proxy: Proxy, key: str, model: str = "gpt-4o") -> int:
    """One chat completion with `key` on the test proxy: its HTTP status."""
    answer = httpx.post(
        f"{proxy.url}/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hello"}]},
        timeout=60,
    )
    return answer.status_code

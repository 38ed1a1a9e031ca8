"""The `poll` command: --once, the loop with metrics and health, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.fake_litellm import FakeLiteLLM
from function.main import main
from tests.poller.conftest import MASTER_NAMESPACE, MASTER_SECRET, new_raw_key, token_of, virtualkey
from tests.poller.fake_apiserver import FakeAPIServer

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _seed(apiserver: FakeAPIServer, litellm: FakeLiteLLM) -> None:
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": litellm.master_key})
    token = token_of(new_raw_key())
    litellm.add(token, "svc", spend=0.85, max_budget=1.0, owner=("team-a", "svc"))
    apiserver.add("virtualkeys", virtualkey("svc", litellm.url, token=token))


def test_once(apiserver: FakeAPIServer, litellm: FakeLiteLLM, tmp_path: Path) -> None:
    _seed(apiserver, litellm)
    code = main(
        [
            "poll",
            "--once",
            "--kubeconfig",
            apiserver.kubeconfig(tmp_path),
            "--metrics-address",
            "",
        ]
    )
    assert code == 0
    status = apiserver.status(("virtualkeys", "team-a", "svc"))
    assert status["currentSpend"] == "0.85"
    assert [e["reason"] for e in apiserver.events] == ["BudgetAlmostSpent"]


def test_bad_settings_exit_2() -> None:
    assert main(["poll", "--once", "--jitter", "2"]) == 2


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local test URL.
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_loop_serves_metrics_and_stops_cleanly_on_sigterm(
    apiserver: FakeAPIServer, litellm: FakeLiteLLM, tmp_path: Path
) -> None:
    _seed(apiserver, litellm)
    port = _free_port()
    env = {
        **os.environ,
        "KUBECONFIG": apiserver.kubeconfig(tmp_path),
        "POLLER_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "POLLER_INTERVAL": "0.5",
        "POLLER_LEASE_DURATION": "3",
        "POD_NAME": "poller-0",
        "POD_NAMESPACE": "crossplane-system",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "function.main", "poll"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        body = ""
        while time.monotonic() < deadline:
            try:
                code, body = _get(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                code = 0
            if code == 200 and "litellm_virtualkey_spend_dollars{litellm=" in body:
                break
            time.sleep(0.2)
        assert 'litellm_virtualkey_spend_dollars{litellm="' in body
        assert "litellm_poller_leader 1.0" in body
        assert 'litellm_poller_litellm_requests_total{litellm="' in body
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        assert (
            apiserver.leases[("crossplane-system", "function-litellm-keys-poller")]["spec"][
                "holderIdentity"
            ]
            == "poller-0"
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "received SIGTERM" in stderr
    assert litellm.master_key not in stderr
    lease = apiserver.leases[("crossplane-system", "function-litellm-keys-poller")]
    assert lease["spec"]["holderIdentity"] is None
    assert apiserver.status(("virtualkeys", "team-a", "svc"))["currentSpend"] == "0.85"

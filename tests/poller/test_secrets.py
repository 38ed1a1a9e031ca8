"""No master key and no raw key in logs, events, metrics, status or messages."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from prometheus_client import generate_latest

from benchmarks.fake_litellm import FakeLiteLLM
from function.poller.kube import KubeCluster
from function.poller.litellm import LiteLLMClient, LiteLLMError
from function.poller.redact import RedactingFilter, redact
from tests.poller.conftest import (
    MASTER_NAMESPACE,
    MASTER_SECRET,
    make_poller,
    new_raw_key,
    token_of,
    virtualkey,
)
from tests.poller.fake_apiserver import FakeAPIServer


def test_no_key_anywhere_across_success_and_error_paths(
    apiserver: FakeAPIServer,
    litellm: FakeLiteLLM,
    cluster: KubeCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    raw_keys = [new_raw_key() for _ in range(3)]
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": litellm.master_key})
    for i, raw in enumerate(raw_keys):
        litellm.add(
            token_of(raw),
            f"svc-{i}",
            spend=2.0,
            max_budget=1.0,
            blocked=i == 1,
            owner=("team-a", f"svc-{i}"),
        )
        apiserver.add("virtualkeys", virtualkey(f"svc-{i}", litellm.url, token=token_of(raw)))
    poller = make_poller(cluster, backoff_base=0.001, backoff_max=0.001)
    poller.cycle()  # success: writes and events
    wrong = new_raw_key()
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": wrong})
    poller.cycle()  # 401 from LiteLLM
    apiserver.add_secret(MASTER_NAMESPACE, MASTER_SECRET, {"masterkey": litellm.master_key})
    for fault in ("fail_status", "malformed"):
        setattr(litellm, fault, 500 if fault == "fail_status" else True)
        poller.cycle()
        setattr(litellm, fault, None if fault == "fail_status" else False)
    apiserver.fail("PATCH", "/status", 500, times=100)
    next(iter(litellm.keys.values())).spend = 5.0
    poller.cycle()  # API-server errors on write

    assert apiserver.events, "the scenario should have emitted events"
    texts = [r.getMessage() for r in caplog.records]
    texts += [str(r.exc_info) for r in caplog.records if r.exc_info]
    texts.append(json.dumps(apiserver.events))
    texts.append(json.dumps(list(apiserver.objects.values())))
    texts.append(generate_latest(poller.metrics.registry).decode())
    joined = "\n".join(texts)
    for secret in [litellm.master_key, wrong, *raw_keys]:
        assert secret not in joined
    assert "sk-" not in joined
    assert "401" in joined  # the error path did run and was logged


def test_error_messages_redact_keys_echoed_by_the_proxy() -> None:
    master = new_raw_key()
    echoed = new_raw_key()

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401, json={"error": {"message": f"bad key {echoed} / {master}", "type": "auth_error"}}
        )

    client = LiteLLMClient("http://proxy", master, transport=httpx.MockTransport(handler))
    with pytest.raises(LiteLLMError) as caught:
        client.list_keys(1)
    assert master not in str(caught.value)
    assert echoed not in str(caught.value)
    assert "sk-REDACTED" in str(caught.value)


def test_redacting_filter_scrubs_log_records() -> None:
    key = new_raw_key()
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "header Bearer %s and %s", (key, key), None
    )
    RedactingFilter().filter(record)
    assert key not in record.getMessage()
    assert redact(f"Authorization: Bearer {key}") == "Authorization: Bearer REDACTED"

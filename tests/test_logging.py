"""No raw key in the function's logs, even in a traceback (issue 9, item 8).

An unexpected error inside `compose`, where a frame holds the raw key: the
Fatal result says nothing of it, and the log line keeps the traceback but
never a frame's locals. The SDK's own configuration (structlog's
`dict_tracebacks`) prints them; `function.logs.configure` does not.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from crossplane.function import logging as sdk_logging
from crossplane.function.logging import Level
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import logs
from function.fn import run
from function.keys import context as compose_module
from tests.fixtures import FIXED_KEY, observed_request, observed_secret, request_resource_name
from tests.grpc_harness import make_request


def _crash_with_the_key_in_a_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    def build_request(**_: Any) -> Any:
        raise RecursionError

    monkeypatch.setattr(compose_module, "build_request", build_request)


def _run_steady(seed_xr: dict[str, Any]) -> fnv1.RunFunctionResponse:
    observed = {"key": observed_secret(), request_resource_name(): observed_request()}
    return run(make_request(seed_xr, observed))


@pytest.mark.parametrize("level", [Level.INFO, Level.DEBUG], ids=["json", "console"])
def test_a_traceback_never_shows_the_raw_key(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    seed_xr: dict[str, Any],
    level: Level,
) -> None:
    _crash_with_the_key_in_a_frame(monkeypatch)
    logs.configure(level)
    try:
        rsp = _run_steady(seed_xr)
    finally:
        logs.configure(Level.DISABLED)
    (result,) = rsp.results
    assert result.severity == fnv1.SEVERITY_FATAL
    assert FIXED_KEY not in result.message
    out = capsys.readouterr().out
    assert "RecursionError" in out  # the traceback is kept
    assert FIXED_KEY not in out
    assert "sk-REDACTED" not in out or FIXED_KEY not in out
    if level == Level.INFO:
        line = json.loads(out.strip().splitlines()[-1])
        frames = line["exception"][0]["frames"]
        assert all("locals" not in frame for frame in frames)


def test_the_sdk_configuration_would_have_printed_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], seed_xr: dict[str, Any]
) -> None:
    # Why function.logs exists: the same crash under the SDK's own logging.
    _crash_with_the_key_in_a_frame(monkeypatch)
    sdk_logging.configure(Level.INFO)
    try:
        _run_steady(seed_xr)
    finally:
        logs.configure(Level.DISABLED)
    assert FIXED_KEY in capsys.readouterr().out

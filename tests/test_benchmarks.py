"""The benchmarks still run (./dev bench), at a tiny size: their inputs move with the examples.

Nothing here times anything; the figures are the benchmarks' own output.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from tests.conftest import ROOT


@dataclass(frozen=True)
class Case:
    reason: str
    command: list[str]
    prints: str  # a line every complete run prints


CASES = {
    "function": Case(
        "RunFunction against the no-op floor, over real gRPC",
        ["benchmarks/function_bench.py", "--calls", "20", "--warmup", "2", "--in-process"],
        "p50 function / p50 noop",
    ),
    "forged status": Case(
        "a forged status beside none, from the examples' XRD",
        ["-m", "benchmarks.hostile_status_bench", "--calls", "2"],
        "the responses are the same size: True",
    ),
    "poller": Case(
        "bulk fetching against one request per key",
        ["benchmarks/poller_bench.py", "--keys", "200", "--instances", "2"],
        "steady cycle: LiteLLM requests",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_benchmark_runs(case: Case) -> None:
    done = subprocess.run(  # noqa: S603 - our own benchmarks, with fixed arguments.
        [sys.executable, *case.command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{case.reason}: {done.stderr[-2000:]}"
    assert case.prints in done.stdout, case.reason

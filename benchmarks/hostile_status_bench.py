"""RunFunction with a forged 1.3 MB status against the same VirtualKey without one.

    .venv/bin/python -m benchmarks.hostile_status_bench [--calls 50]

A tenant with Crossplane's edit roles may write its XR's status. Before, 20,000
forged tokens there composed 20,000 Requests (a 74 MB response, about 20 s a
run). The function now reads no status: this measures what such a status
still costs (gRPC carries it, the cache key hashes it) beside the baseline,
the same VirtualKey with no status, in the same run, over real gRPC, each call
with a new tag so that no response comes from the cache.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from typing import Any

from tests.grpc_harness import FunctionServer, make_request
from tests.test_untrusted_status import ROTATING, _virtualkey, forged_status


def _measure(
    server: FunctionServer, xr: dict[str, Any], calls: int
) -> tuple[int, int, list[float]]:
    times = []
    request_bytes = response_bytes = 0
    for i in range(calls):
        request = make_request(xr, ROTATING, tag=f"call-{i}")
        started = time.perf_counter()
        response = server.run(request)
        times.append(time.perf_counter() - started)
        request_bytes, response_bytes = request.ByteSize(), response.ByteSize()
    return request_bytes, response_bytes, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    hostile = _virtualkey()
    hostile["status"] = forged_status("install/definition.yaml", many=20_000)
    hostile["status"]["strayTokens"] = [
        hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)
    ]
    rows = []
    with FunctionServer() as server:
        for name, xr in (
            ("no status (baseline)", _virtualkey()),
            ("20,000 forged tokens", hostile),
        ):
            request_bytes, response_bytes, times = _measure(server, xr, args.calls)
            rows.append((name, request_bytes, response_bytes, times))
    print(f"{'':24} {'request B':>10} {'response B':>11} {'p50 ms':>8} {'max ms':>8}")
    for name, request_bytes, response_bytes, times in rows:
        print(
            f"{name:24} {request_bytes:>10} {response_bytes:>11} "
            f"{statistics.median(times) * 1000:>8.1f} {max(times) * 1000:>8.1f}"
        )
    ratio = statistics.median(rows[1][3]) / statistics.median(rows[0][3])
    print(
        f"p50 forged / p50 baseline = {ratio:.2f}x; the responses are the same size: "
        f"{rows[0][2] == rows[1][2]}"
    )


if __name__ == "__main__":
    main()

"""RunFunction latency and throughput over real gRPC: the function against a no-op floor.

    .venv/bin/python -m benchmarks.function_bench [--calls 2000] [--warmup 200]
        [--threads 4] [--in-process] [--profile] [--check]

Both servers are `tests.grpc_harness.FunctionServer` (grpc.aio on loopback),
one with `function.fn.FunctionRunner`, one with `benchmarks.noop_function
.NoopRunner`. By default each runs in a subprocess of its own, as Crossplane
calls a function in another process, so the client's work does not share the
server's GIL; `--in-process` runs them in this process instead.

Both get the same request: the seed VirtualKey in steady state, with its
key Secret and its Request observed (the Request as the function composed
it, with LiteLLM's last answer in its status). That is what nearly every
reconcile looks like.

Phases, for each server, interleaved in rounds so that drift hits both alike:
warm-up, then `--calls` sequential calls (latency), then `--calls` calls
from `--threads` client threads (throughput). The target is p50(function)
within 1.5x of p50(noop); it is printed as PASS or FAIL, and only `--check`
makes FAIL exit 1. `--profile` adds a cProfile of the function's own code.
"""

from __future__ import annotations

import argparse
import base64
import copy
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import json_format

from benchmarks.noop_function import NoopRunner
from function.fn import FunctionRunner, run
from tests.grpc_harness import FunctionServer, make_request

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.5
ROUNDS = 10
KEY = "sk-" + "BenchKey0123456789abcdefghijklmnopqrstuvwxyz"
SERVICERS: dict[str, Callable[[], grpcv1.FunctionRunnerServiceServicer]] = {
    "noop": NoopRunner,
    "function": FunctionRunner,
    # Every call composes from scratch: what a changed VirtualKey costs.
    "uncached": lambda: FunctionRunner(cache_bytes=0),
}
LABELS = {
    "noop": "noop (floor)",
    "function": "function",
    "uncached": "function, cache off",
}


# --- the request ----------------------------------------------------------------------


def steady_state_request() -> fnv1.RunFunctionRequest:
    """The seed VirtualKey with its Secret and Request observed, as after a good reconcile."""
    xr = yaml.safe_load((ROOT / "examples" / "virtualkey" / "virtualkey.yaml").read_text())
    xr["metadata"]["uid"] = "5e1f1c57-0000-4000-8000-000000000001"
    fn_input = yaml.safe_load((ROOT / "examples" / "install" / "composition.yaml").read_text())[
        "spec"
    ]["pipeline"][0]["input"]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "example-service-litellm-key", "namespace": "team-a"},
        "type": "Opaque",
        "data": {"key": base64.b64encode(KEY.encode()).decode()},
    }
    # Let the function compose the Request once, then observe it as provider-http left it.
    first = run(make_request(xr, {"key": secret}, fn_input))
    names = [n for n in first.desired.resources if n.startswith("request-")]
    if len(names) != 1:
        sys.exit(f"expected one composed Request, got {names}")
    request = json_format.MessageToDict(first.desired.resources[names[0]].resource)
    secret_desired = json_format.MessageToDict(first.desired.resources["key"].resource)
    token = json.loads(request["spec"]["forProvider"]["payload"]["body"])["token"]
    request["status"] = {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Available"},
            {"type": "Synced", "status": "True", "reason": "ReconcileSuccess"},
        ],
        "response": {
            "statusCode": 200,
            "body": json.dumps(
                {
                    "key": token,
                    "info": {
                        "key_alias": "example-service",
                        "models": ["gpt-4o"],
                        "max_budget": 10.0,
                        "budget_duration": "1h",
                        "spend": 0.42,
                        "metadata": {},
                    },
                }
            ),
            "headers": {"Content-Type": ["application/json"]},
        },
        "requestDetails": {
            "method": "GET",
            "url": f"http://litellm-example-service.litellm.svc.cluster.local:4000/key/info?key={token}",
        },
    }
    return make_request(xr, {"key": secret_desired, names[0]: request}, fn_input)


def check_response(kind: str, rsp: fnv1.RunFunctionResponse) -> None:
    fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    if fatal:
        sys.exit(f"{kind}: Fatal result, nothing to benchmark: {fatal}")
    if kind != "noop":
        resources = sorted(rsp.desired.resources)
        if len(resources) != 2 or "key" not in resources:
            sys.exit(f"function: unexpected desired resources {resources}")
        ready = [rsp.desired.resources[n].ready for n in resources]
        if ready != [fnv1.READY_TRUE] * 2:
            sys.exit("function: steady state is not ready; the request is not what it should be")


# --- servers ----------------------------------------------------------------------------


def serve_forever(kind: str) -> None:
    """Subprocess entry point: serve one servicer, print the address, wait for stdin EOF."""
    with FunctionServer(SERVICERS[kind]()) as server:
        print(server.address, flush=True)
        sys.stdin.read()


@contextmanager
def remote_server(kind: str, *, in_process: bool) -> Iterator[str]:
    """The address of a server for `kind`, in a subprocess or in this process."""
    if in_process:
        with FunctionServer(SERVICERS[kind]()) as server:
            yield server.address
        return
    child = subprocess.Popen(  # noqa: S603 - our own module, with our own interpreter
        [sys.executable, "-m", "benchmarks.function_bench", "--serve", kind],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if child.stdout is None or child.stdin is None:
        sys.exit("no pipes to the server subprocess")
    try:
        address = child.stdout.readline().strip()
        if not address:
            sys.exit(f"the {kind} server did not start")
        yield address
    finally:
        child.stdin.close()
        child.wait(timeout=30)


# --- measuring --------------------------------------------------------------------------


@dataclass
class Stats:
    latencies_ns: list[int]
    concurrent_calls: int = 0
    concurrent_seconds: float = 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        index = min(len(ordered) - 1, round(q * (len(ordered) - 1)))
        return ordered[index] / 1e6

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies_ns) / 1e6

    @property
    def throughput(self) -> float:
        return self.concurrent_calls / self.concurrent_seconds if self.concurrent_seconds else 0.0


def sequential(stub: Any, req: fnv1.RunFunctionRequest, calls: int) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        stub.RunFunction(req, timeout=30)
        out.append(clock() - start)
    return out


def concurrent(stub: Any, req: fnv1.RunFunctionRequest, calls: int, threads: int) -> float:
    """Seconds for `calls` calls spread over `threads` client threads."""
    per_thread = [calls // threads + (1 if i < calls % threads else 0) for i in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def worker(n: int) -> None:
        barrier.wait()
        for _ in range(n):
            stub.RunFunction(req, timeout=30)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker, n) for n in per_thread]
        barrier.wait()
        start = time.perf_counter()
        for future in futures:
            future.result()
        return time.perf_counter() - start


def benchmark(args: argparse.Namespace) -> dict[str, Stats]:
    req = steady_state_request()
    stats = {kind: Stats([]) for kind in SERVICERS}
    with (
        remote_server("noop", in_process=args.in_process) as noop_address,
        remote_server("function", in_process=args.in_process) as fn_address,
        remote_server("uncached", in_process=args.in_process) as uncached_address,
    ):
        channels = {
            k: grpc.insecure_channel(a)
            for k, a in (
                ("noop", noop_address),
                ("function", fn_address),
                ("uncached", uncached_address),
            )
        }
        stubs = {k: grpcv1.FunctionRunnerServiceStub(c) for k, c in channels.items()}
        for kind, stub in stubs.items():
            check_response(kind, stub.RunFunction(req, timeout=30))
            sequential(stub, req, args.warmup)
        per_round = max(1, args.calls // ROUNDS)
        for _ in range(ROUNDS):
            for kind, stub in stubs.items():
                stats[kind].latencies_ns += sequential(stub, req, per_round)
        per_round_concurrent = max(args.threads, args.calls // ROUNDS)
        for _ in range(ROUNDS):
            for kind, stub in stubs.items():
                stats[kind].concurrent_seconds += concurrent(
                    stub, req, per_round_concurrent, args.threads
                )
                stats[kind].concurrent_calls += per_round_concurrent
        for channel in channels.values():
            channel.close()
    return stats


def report(stats: dict[str, Stats], args: argparse.Namespace, request_bytes: int) -> bool:
    where = "in this process" if args.in_process else "each in its own subprocess"
    print(
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs, {platform.machine()} {platform.system()}; "
        f"grpcio {grpc.__version__}; servers {where}"
    )
    print(
        f"request: steady state, {request_bytes} bytes; {args.warmup} warm-up calls, "
        f"{len(stats['noop'].latencies_ns)} sequential calls and "
        f"{stats['noop'].concurrent_calls} calls from {args.threads} threads per server\n"
    )
    header = f"{'':<22}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'calls/s':>10}"
    print(header)
    print("-" * len(header))
    for kind, label in LABELS.items():
        s = stats[kind]
        print(
            f"{label:<22}{s.quantile(0.5):>9.3f}{s.quantile(0.9):>9.3f}"
            f"{s.quantile(0.99):>9.3f}{s.mean_ms:>9.3f}{s.throughput:>10.0f}"
        )
    ratio = stats["function"].quantile(0.5) / stats["noop"].quantile(0.5)
    passed = ratio <= TARGET_RATIO
    print(
        f"\np50 function / p50 noop = {ratio:.2f}x (target <= {TARGET_RATIO}x): "
        f"{'PASS' if passed else 'FAIL'}"
    )
    uncached = stats["uncached"].quantile(0.5) / stats["noop"].quantile(0.5)
    print(f"p50 function with its response cache off / p50 noop = {uncached:.2f}x")
    throughput_ratio = stats["function"].throughput / stats["noop"].throughput
    print(f"throughput function / noop = {throughput_ratio:.2f}")
    return passed


def profile(calls: int) -> None:
    """Where the function's own time goes: `function.fn.run`, no gRPC, cProfile."""
    req = steady_state_request()
    for _ in range(50):
        run(copy.deepcopy(req))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        run(req)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(25)
    print(f"\ncProfile of function.fn.run over {calls} calls (in-process, no gRPC):")
    print(out.getvalue())
    start = time.perf_counter()
    for _ in range(calls):
        run(req)
    per_call = (time.perf_counter() - start) / calls * 1e3
    print(f"function.fn.run alone, without the profiler: {per_call:.3f} ms per call")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per phase and server")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up calls per server")
    parser.add_argument("--threads", type=int, default=4, help="client threads for throughput")
    parser.add_argument("--in-process", action="store_true", help="servers in this process")
    parser.add_argument("--profile", action="store_true", help="also cProfile the function")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    parser.add_argument("--serve", choices=sorted(SERVICERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_forever(args.serve)
        return 0
    stats = benchmark(args)
    passed = report(stats, args, steady_state_request().ByteSize())
    if args.profile:
        profile(args.calls)
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the status poller: bulk fetching against the naive per-key way.

    .venv/bin/python benchmarks/poller_bench.py [--keys 10000] [--instances 2]

Starts one LiteLLM-compatible fake proxy per instance (`fake_litellm.py`,
answers copied from the real samples) holding N/instances keys each, then
runs each approach in its own subprocess so that its peak RSS is its own:

- cycle 1 (cold): every VirtualKey's status is new, so every key is written;
- cycle 2 (steady): 1% of the keys spent more; only they must be written.

Every key is made by the master key (`created_by`, `updated_by`) and carries
the function's provenance naming its VirtualKey, so the poller matches it by
alias and provenance, as on a real proxy. `per-key` asks
`/key/list?key_alias=` once per VirtualKey.

The Kubernetes side is `MemoryCluster`, an in-memory stand-in with the same
interface as `function.poller.kube.KubeCluster` (merge patch of status,
resourceVersion checks) that counts writes. Prints one table, bulk and
per-key side by side, and exits 1 if a target is missed (bulk approach:
cycle <= 10 s, requests <= ceil(N/100) + 1 per instance, writes == changed
keys, peak RSS <= 200 MB).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.fake_litellm import FakeLiteLLM  # noqa: E402
from function.poller.kube import XRRef  # noqa: E402
from function.poller.kubeapi import KubeConflictError, KubeNotFoundError  # noqa: E402
from function.poller.state import Event  # noqa: E402

MASTER_KEY = "sk-bench-" + "0" * 16  # a fake proxy's; not a secret
CHANGED_FRACTION = 0.01


def token(i: int) -> str:
    return hashlib.sha256(f"sk-bench-{i}".encode()).hexdigest()


def merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge(result.get(k), v)
    return result


class MemoryCluster:
    """The poller's `Cluster` in memory, counting status writes."""

    def __init__(self, objects: dict[XRRef, dict[str, Any]], secret: str, urls: list[str]) -> None:
        self.objects = objects
        self.secret = secret
        self.urls = urls
        self.writes = 0
        self.events = 0
        self.version = 1

    def list_virtualkeys(self) -> list[tuple[XRRef, dict[str, Any]]]:
        # A real listing decodes fresh objects every time.
        return [(ref, copy.deepcopy(obj)) for ref, obj in self.objects.items()]

    def list_accounts(self) -> list[tuple[XRRef, dict[str, Any]]]:
        return []  # the benchmark measures keys

    def get_virtualkey(self, ref: XRRef) -> dict[str, Any]:
        if ref not in self.objects:
            raise KubeNotFoundError(str(ref))
        return copy.deepcopy(self.objects[ref])

    def patch_status(self, ref: XRRef, patch: dict[str, Any]) -> dict[str, Any]:
        obj = self.objects[ref]
        if patch["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise KubeConflictError(str(ref))
        obj["status"] = merge(obj.get("status") or {}, patch["status"])
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.writes += 1
        return copy.deepcopy(obj)

    def list_policies(self) -> list[dict[str, Any]]:
        return [policy(self.urls)]

    def namespace_labels(self) -> dict[str, dict[str, str]]:
        return {}

    def read_secret_value(self, namespace: str, name: str, key: str) -> str:  # noqa: ARG002
        return self.secret

    def list_secret_metadata(self, namespace: str) -> list[dict[str, Any]]:  # noqa: ARG002
        return []  # no mask Secrets: the benchmark measures keys

    def list_request_names(self, label_selector: str) -> list[tuple[str, str]]:  # noqa: ARG002
        return []

    def delete_secret(self, namespace: str, name: str, uid: str, resource_version: str) -> None:
        msg = f"{namespace}/{name} {uid} {resource_version}"
        raise KubeNotFoundError(msg)

    def emit_event(self, target: dict[str, Any], event: Event) -> None:  # noqa: ARG002
        self.events += 1

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:  # noqa: ARG002
        return None

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:  # noqa: ARG002
        return body

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:  # noqa: ARG002
        return body


def instance(index: int) -> dict[str, str]:
    return {"name": f"bench-{index}", "namespace": "litellm"}


def policy(urls: list[str]) -> dict[str, Any]:
    """One TenancyPolicy: every fake LiteLLM an instance, granted to every namespace."""
    return {
        "apiVersion": "litellm.fn.crossplane.io/v1beta1",
        "kind": "TenancyPolicy",
        "metadata": {"name": "bench"},
        "spec": {
            "instances": [
                {
                    **instance(j),
                    "url": url,
                    "masterKeySecretRef": {"name": "litellm-secrets", "key": "masterkey"},
                }
                for j, url in enumerate(urls)
            ],
            "rules": [
                {
                    "name": "everyone",
                    "namespaces": {"selector": {}},
                    "instances": [instance(j) for j in range(len(urls))],
                }
            ],
        },
    }


def owner(i: int) -> tuple[str, str]:
    """The VirtualKey (namespace, name) of key i, as its provenance names it."""
    return f"team-{i % 50}", f"vk-{i:05d}"


def virtualkeys(urls: list[str], keys: int) -> dict[XRRef, dict[str, Any]]:
    objects = {}
    for i in range(keys):
        namespace, name = owner(i)
        ref = XRRef("virtualkeys", name, namespace)
        objects[ref] = {
            "apiVersion": "auth.litellm.ai/v1alpha1",
            "kind": "VirtualKey",
            "metadata": {
                "name": name,
                "namespace": ref.namespace,
                "resourceVersion": "1",
                "generation": 1,
            },
            "spec": {
                "keyAlias": f"bench-{i}",
                "maxBudget": "10",
                "connectionRef": {"instanceRef": instance(i % len(urls))},
            },
            "status": {
                "keySecretRef": f"{name}-litellm-key",
                "tokenHash": token(i),
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Available"},
                    {"type": "KeyReady", "status": "True", "reason": "Available"},
                ],
            },
        }
    return objects


def child(mode: str, urls: list[str], keys: int) -> None:
    from function.poller.cycle import Poller  # noqa: PLC0415
    from function.poller.fetch import FetchMode  # noqa: PLC0415
    from function.poller.settings import Settings  # noqa: PLC0415

    cluster = MemoryCluster(virtualkeys(urls, keys), MASTER_KEY, urls)
    settings = Settings(fetch_mode=FetchMode(mode), litellm_timeout=30.0)
    poller = Poller(cluster, settings)
    results = []
    for cycle in (1, 2):
        if cycle == 2:
            for url in urls:
                per_instance = math.ceil(keys * CHANGED_FRACTION / len(urls))
                bump = f"{url}/_fake/bump?count={per_instance}"
                req = urllib.request.Request(bump, method="POST")  # noqa: S310 - the 127.0.0.1 fake.
                urllib.request.urlopen(req, timeout=30).read()  # noqa: S310 - the 127.0.0.1 fake.
        writes_before = cluster.writes
        started = time.perf_counter()
        report = poller.cycle()
        seconds = time.perf_counter() - started
        results.append(
            {
                "cycle": cycle,
                "seconds": seconds,
                "requests": report.requests,
                "writes": cluster.writes - writes_before,
                "unavailable": len(report.unavailable),
            }
        )
    poller.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "cycles": results, "rss_mb": rss_mb}))


def run(mode: str, fakes: list[FakeLiteLLM], keys: int) -> dict[str, Any]:
    before = [f.total_requests() for f in fakes]
    out = subprocess.run(  # noqa: S603 - our own script, our own arguments.
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--keys",
            str(keys),
            "--urls",
            ",".join(f.url for f in fakes),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["served"] = sum(f.total_requests() for f in fakes) - sum(before)
    return result


def _failures(results: dict[str, Any], request_target: int, changed: list[int]) -> list[str]:
    bulk = results["bulk"]
    failures = []
    for index, cycle in enumerate(bulk["cycles"]):
        if cycle["seconds"] > 10:
            failures.append(f"cycle {index + 1} took {cycle['seconds']:.1f} s")
        if cycle["requests"] > request_target:
            failures.append(f"cycle {index + 1} sent {cycle['requests']} requests")
    if bulk["rss_mb"] > 200:
        failures.append(f"peak RSS {bulk['rss_mb']:.0f} MB")
    for m in ("bulk", "per-key"):
        for index, cycle in enumerate(results[m]["cycles"]):
            if cycle["writes"] != changed[index]:
                failures.append(
                    f"{m} cycle {index + 1} wrote {cycle['writes']}, not {changed[index]}"
                )
    return sorted(set(failures))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.urls.split(","), args.keys)
        return 0

    fakes = [FakeLiteLLM(master_key=MASTER_KEY).start() for _ in range(args.instances)]
    try:
        for i in range(args.keys):
            # Made by the master key, with the provenance naming its VirtualKey: the poller
            # matches a key by alias and provenance (the status's tokenHash plays no part).
            fakes[i % len(fakes)].add(
                token(i),
                f"bench-{i}",
                spend=round((i % 900) / 100, 2),
                max_budget=10.0,
                owner=owner(i),
            )
        results = {mode: run(mode, fakes, args.keys) for mode in ("bulk", "per-key")}
    finally:
        for fake in fakes:
            fake.stop()

    per_instance = math.ceil(args.keys / args.instances)
    request_target = args.instances * (math.ceil(per_instance / 100) + 1)
    changed = [args.keys, args.instances * math.ceil(args.keys * CHANGED_FRACTION / args.instances)]
    print(
        f"{args.keys} VirtualKeys on {args.instances} LiteLLM instances "
        "(fake proxy, real sample shapes)"
    )
    print(f"{'':34}{'bulk':>14}{'per-key':>14}   target (bulk)")
    for index, name in enumerate(("cold cycle", "steady cycle")):
        rows = [
            ("wall time (s)", "seconds", "{:.2f}", "<= 10"),
            ("LiteLLM requests", "requests", "{:d}", f"<= {request_target}"),
            ("API-server writes", "writes", "{:d}", f"== {changed[index]} changed"),
        ]
        for label, field, fmt, target in rows:
            values = [fmt.format(results[m]["cycles"][index][field]) for m in ("bulk", "per-key")]
            print(f"{name + ': ' + label:34}{values[0]:>14}{values[1]:>14}   {target}")
    served = [str(results[m]["served"]) for m in ("bulk", "per-key")]
    print(f"{'requests served by the fakes':34}{served[0]:>14}{served[1]:>14}   (both cycles)")
    rss = [f"{results[m]['rss_mb']:.0f}" for m in ("bulk", "per-key")]
    print(f"{'peak RSS (MB)':34}{rss[0]:>14}{rss[1]:>14}   <= 200")

    failures = _failures(results, request_target, changed)
    print("targets met" if not failures else "targets missed: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

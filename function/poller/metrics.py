"""Prometheus metrics and the health endpoints, on one small HTTP server.

- `Metrics`: the poller's metrics in their own registry. Per key:
  `litellm_virtualkey_spend_dollars`, `litellm_virtualkey_max_budget_dollars`
  and `litellm_virtualkey_active` (labels `namespace`, `name`, `litellm`;
  series of keys that are gone are removed each cycle). Per instance
  (`litellm`, the instance's URL and master-key Secret, never the key):
  requests, errors by kind, consecutive failures and the current backoff.
  Per cycle: duration, status writes, events, API-server errors,
  leadership.
- `Health`: the loop's heartbeat (`/healthz`: alive while the loop has run
  within the stale limit) and readiness (`/readyz`: after the first
  cycle, or the first leadership check on a standby replica).
- `serve(metrics, health, address)`: `/metrics`, `/healthz`, `/readyz` on a
  daemon thread; returns the server so that it can be shut down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

KEY_LABELS = ("namespace", "name", "litellm")


class Metrics:
    """The poller's metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create every metric in `registry` (a fresh one by default)."""
        self.registry = registry or CollectorRegistry()
        # Per key.
        self.key_spend = self._gauge(
            "litellm_virtualkey_spend_dollars", "Spend of a VirtualKey in dollars", KEY_LABELS
        )
        self.key_max_budget = self._gauge(
            "litellm_virtualkey_max_budget_dollars",
            "Max budget of a VirtualKey in dollars (absent when unlimited)",
            KEY_LABELS,
        )
        self.key_active = self._gauge(
            "litellm_virtualkey_active", "1 when the VirtualKey's key is usable", KEY_LABELS
        )
        # Per cycle.
        self.cycle_duration = Histogram(
            "litellm_poller_cycle_duration_seconds",
            "Wall time of one poll cycle",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.cycles = self._counter("litellm_poller_cycles", "Poll cycles run", ("result",))
        self.last_success = self._gauge(
            "litellm_poller_last_success_timestamp_seconds",
            "Unix time of the last cycle that finished without an API-server error",
        )
        self.not_reached = self._counter(
            "litellm_poller_instances_not_reached",
            "Instances a cycle's deadline left unread (their objects keep their last values)",
        )
        self.leader = self._gauge("litellm_poller_leader", "1 while this replica holds the Lease")
        self._instance_metrics()
        self._write_metrics()
        self._key_series: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def _instance_metrics(self) -> None:
        """Per instance (`litellm`: the instance's URL and master-key Secret)."""
        litellm = ("litellm",)
        self.requests = self._counter(
            "litellm_poller_litellm_requests", "HTTP requests sent to LiteLLM", litellm
        )
        self.errors = self._counter(
            "litellm_poller_litellm_errors",
            "Failed fetches from a LiteLLM instance, by kind",
            ("litellm", "kind"),
        )
        self.failures = self._gauge(
            "litellm_poller_instance_consecutive_failures",
            "Consecutive failed cycles for an instance",
            litellm,
        )
        self.backoff = self._gauge(
            "litellm_poller_instance_backoff_seconds",
            "Seconds until an instance is tried again (0: not backing off)",
            litellm,
        )
        self.keys = self._gauge(
            "litellm_poller_virtualkeys", "VirtualKeys per instance in the last cycle", litellm
        )

    def _write_metrics(self) -> None:
        """What the API server was asked to do."""
        self.writes = self._counter(
            "litellm_poller_status_writes", "Status patches accepted by the API server"
        )
        self.kube_errors = self._counter(
            "litellm_poller_kube_errors", "Failed API-server calls, by operation", ("operation",)
        )
        self.events = self._counter(
            "litellm_poller_events", "Events emitted, by reason", ("reason",)
        )
        self.masks_deleted = self._counter(
            "litellm_poller_mask_secrets_deleted",
            "Mask Secrets deleted because their Request is gone",
        )

    def _gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def _counter(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def set_keys(
        self, values: dict[tuple[str, str, str], tuple[float | None, float | None, bool]]
    ) -> None:
        """Set per-key gauges (spend, max budget, active) and drop keys now gone.

        A key whose spend is None (instance unavailable) keeps its last series.
        """
        with self._lock:
            for labels, (spend, budget, active) in values.items():
                if spend is not None:
                    self.key_spend.labels(*labels).set(spend)
                if budget is not None:
                    self.key_max_budget.labels(*labels).set(budget)
                else:
                    self._remove(self.key_max_budget, labels)
                self.key_active.labels(*labels).set(1 if active else 0)
            for labels in self._key_series - set(values):
                for gauge in (self.key_spend, self.key_max_budget, self.key_active):
                    self._remove(gauge, labels)
            self._key_series = set(values)

    @staticmethod
    def _remove(gauge: Gauge, labels: tuple[str, str, str]) -> None:
        try:
            gauge.remove(*labels)
        except KeyError:
            pass


class Health:
    """Liveness and readiness of the poll loop."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Alive while `beat()` was called within `stale_after` seconds."""
        self.stale_after = stale_after
        self._clock = clock
        self._last_beat = self._clock()
        self.ready = False

    def beat(self) -> None:
        """The loop is making progress."""
        self._last_beat = self._clock()

    def alive(self) -> bool:
        """Whether the loop beat recently."""
        return self._clock() - self._last_beat <= self.stale_after


def _handler(metrics: Metrics, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = health.alive()
                self._send(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
            elif path == "/readyz":
                ok = health.ready
                self._send(200 if ok else 503, b"ok\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # probes every few seconds would drown the log

    return Handler


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` or `:port` -> (host, port); an empty host means all interfaces."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - a server in a pod.


def serve(metrics: Metrics, health: Health, address: str) -> ThreadingHTTPServer:
    """Serve /metrics, /healthz and /readyz on a daemon thread."""
    server = ThreadingHTTPServer(parse_address(address), _handler(metrics, health))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server

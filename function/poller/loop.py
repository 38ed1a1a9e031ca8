"""The poll loop: cycles at an interval with jitter, under a Lease, until SIGTERM.

`Runner(poller, settings, health, elector, stop)`:

- `run_once()`: one cycle, no leader election; exit code 0, or 1 when the
  API server failed or an instance was unavailable.
- `run()`: cycles every `interval` seconds, spread by `jitter`, while this
  replica holds the Lease (`leader.LeaderElector` renews it on its own
  thread). A failed listing backs off exponentially (`backoff.Backoff`);
  LiteLLM instances have their own backoff inside the cycle. Any other
  error in a cycle is logged and backed off the same way: nothing a proxy
  or a tenant's object holds ends the loop for everyone. SIGTERM and
  SIGINT set `stop`: the current cycle stops reading and writing, the
  Lease is released, and `run()` returns 0.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from types import FrameType

from function.poller.backoff import Backoff
from function.poller.cycle import CycleReport, Poller
from function.poller.kubeapi import KubeError
from function.poller.leader import LeaderElector
from function.poller.metrics import Health
from function.poller.redact import redact
from function.poller.settings import Settings

log = logging.getLogger(__name__)


def next_delay(interval: float, jitter: float, rng: random.Random | None = None) -> float:
    """The interval spread uniformly by +-jitter (a fraction)."""
    spread = (rng or random).uniform(-jitter, jitter)
    return max(0.0, interval * (1 + spread))


class Runner:
    """Drives a Poller."""

    def __init__(
        self,
        poller: Poller,
        settings: Settings,
        health: Health,
        elector: LeaderElector | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Run `poller` with `settings`; `elector` None means always active."""
        self.poller = poller
        self.settings = settings
        self.health = health
        self.elector = elector
        self.stop = stop or threading.Event()
        self.kube_backoff = Backoff(settings.backoff_base, settings.backoff_max)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop (main thread only)."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _leading(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def _cycle(self) -> CycleReport | None:
        metrics = self.poller.metrics
        started = time.monotonic()
        try:
            report = self.poller.cycle(should_write=self._leading, stop=self.stop)
        except KubeError as e:
            delay = self.kube_backoff.failed(redact(e))
            metrics.cycles.labels("kube_error").inc()
            metrics.kube_errors.labels("list").inc()
            log.warning("cannot list VirtualKeys: %s; next try in %.0f s", redact(e), delay)
            return None
        except Exception as e:  # a bug must not end the loop for everyone
            delay = self.kube_backoff.failed(type(e).__name__)
            metrics.cycles.labels("error").inc()
            log.error(
                "the cycle failed (%s); next try in %.0f s", type(e).__name__, delay, exc_info=True
            )
            return None
        finally:
            metrics.cycle_duration.observe(time.monotonic() - started)
        self.kube_backoff.succeeded()
        metrics.cycles.labels("ok" if not report.unavailable else "partial").inc()
        metrics.last_success.set(time.time())
        log.info(
            "cycle: %d VirtualKeys on %d instances (%d skipped), %d Users and Teams, "
            "%d LiteLLM requests, %d status writes, %d events, %d unavailable instances, "
            "%d not reached, %d mask Secrets deleted, %.2f s",
            report.keys,
            report.instances,
            report.skipped,
            report.accounts,
            report.requests,
            report.writes,
            report.events,
            len(report.unavailable),
            len(report.not_reached),
            report.masks_deleted,
            report.seconds,
        )
        return report

    def run_once(self) -> int:
        """One cycle; 0 when everything was read and written."""
        report = self._cycle()
        self.health.beat()
        self.health.ready = True
        if report is None or report.unavailable or report.not_reached or report.write_errors:
            return 1
        return 0

    def run(self) -> int:
        """Cycle until stopped; returns 0."""
        lease_thread = None
        if self.elector is not None:
            lease_thread = threading.Thread(
                target=self.elector.run, args=(self.stop,), name="lease", daemon=True
            )
            lease_thread.start()
        try:
            while not self.stop.is_set():
                self.health.beat()
                if not self._leading():
                    self.poller.metrics.leader.set(0)
                    self.health.ready = True
                    self.stop.wait(1.0)
                    continue
                self.poller.metrics.leader.set(1)
                if not self.kube_backoff.ready():
                    self.stop.wait(min(self.kube_backoff.remaining(), 1.0))
                    continue
                report = self._cycle()
                self.health.beat()
                self.health.ready = True
                if report is None:
                    continue
                self.stop.wait(next_delay(self.settings.interval, self.settings.jitter))
        finally:
            self.stop.set()
            if lease_thread is not None:
                lease_thread.join(timeout=self.settings.kube_timeout + 5)
            self.poller.metrics.leader.set(0)
            self.poller.close()
            log.info("stopped")
        return 0

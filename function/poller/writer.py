"""Status writes and events: retried where that helps; one object's error stays with it.

`Writer(cluster, metrics, retries, sleep)`:

- `write_status(ref, obj, prepare, should_write)`: a JSON merge patch of the
  status subresource, as `prepare(obj)` makes it (`Prepared`: the patch with
  `metadata.resourceVersion`, the events, where they go). A 409 re-reads
  the object and prepares again; 5xx, 429 and transport errors are retried
  up to `retries` times with a short backoff; a 404 (deleted since the
  listing) is no error. Events follow a write that was accepted, so a
  conflict cannot repeat one. Returns the object as written, or None.
- `patch(ref, body)`: one merge patch, not retried (a User's or Team's
  fields are the poller's alone: the next cycle writes them again).
- `each(writes, deadline)`: runs `(ref, write)` pairs until the deadline or
  the stop signal; an error in one is logged and counted, and the others go on.
- `counts()`: events sent and write errors since the last call (for the
  cycle's report).

Nothing is written unless `should_write()` holds (this replica leads).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from function.poller.deadline import Deadline
from function.poller.kube import Cluster, XRRef
from function.poller.kubeapi import (
    KubeConflictError,
    KubeError,
    KubeNotFoundError,
    KubeTemporaryError,
)
from function.poller.metrics import Metrics
from function.poller.redact import redact
from function.poller.state import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """One status write: the merge patch, and the events to emit once it is accepted."""

    body: dict[str, Any]
    events: list[Event]
    involved: dict[str, Any]  # what the events are about (an object or a reference)


class Writer:
    """Writes statuses and events; counts what it sent and what failed."""

    def __init__(
        self,
        cluster: Cluster,
        metrics: Metrics,
        retries: int,
        sleep: Callable[[float], None],
    ) -> None:
        """Write through `cluster`; retry a temporary error `retries` times."""
        self.cluster = cluster
        self.metrics = metrics
        self.retries = retries
        self._sleep = sleep
        self._lock = threading.Lock()
        self._events_sent = 0
        self._write_errors = 0

    def counts(self) -> tuple[int, int]:
        """Events sent and write errors since the last call."""
        with self._lock:
            found = (self._events_sent, self._write_errors)
            self._events_sent = self._write_errors = 0
        return found

    def each(self, writes: Iterable[tuple[XRRef, Callable[[], bool]]], deadline: Deadline) -> int:
        """Run each write until the deadline; how many wrote. Never raises."""
        written = 0
        for ref, write in writes:
            if deadline.over():
                break
            try:
                written += write()
            except Exception:
                log.exception("could not write the status of %s", ref)
                self._count_error()
        return written

    def write_status(
        self,
        ref: XRRef,
        obj: dict[str, Any],
        prepare: Callable[[dict[str, Any]], Prepared | None],
        should_write: Callable[[], bool],
    ) -> dict[str, Any] | None:
        """Write `prepare(obj)` if there is anything to write; the object as written, or None."""
        current: dict[str, Any] | None = obj
        for attempt in range(self.retries + 1):
            assert current is not None  # noqa: S101 - the loop stops on None.
            prepared = prepare(current)
            if prepared is None or not should_write():
                return None
            try:
                updated = self.cluster.patch_status(ref, prepared.body)
            except KubeError as e:
                current = self._after_failure(ref, current, e, attempt)
                if current is None:
                    return None
                continue
            self.metrics.writes.inc()
            self.emit(prepared.involved, prepared.events)
            return updated or current
        self._give_up(ref, KubeConflictError("the object kept changing under the poller"))
        return None

    def patch(self, ref: XRRef, body: dict[str, Any]) -> bool:
        """One merge patch of `ref`'s status, not retried; whether it was accepted."""
        try:
            self.cluster.patch_status(ref, body)
        except KubeError as e:
            self._give_up(ref, e)
            return False
        self.metrics.writes.inc()
        return True

    def emit(self, involved: dict[str, Any], found: list[Event]) -> None:
        """Record each event about `involved`; a failed one is logged and skipped."""
        for event in found:
            try:
                self.cluster.emit_event(involved, event)
            except KubeError as e:
                self.metrics.kube_errors.labels("event").inc()
                log.warning("could not record event %s: %s", event.reason, redact(e))
                continue
            self.metrics.events.labels(event.reason).inc()
            with self._lock:
                self._events_sent += 1

    def _after_failure(
        self, ref: XRRef, obj: dict[str, Any], error: KubeError, attempt: int
    ) -> dict[str, Any] | None:
        """The object to try the write again with, or None to stop trying."""
        if isinstance(error, KubeNotFoundError):
            return None  # deleted since the listing
        if isinstance(error, KubeConflictError):
            self.metrics.kube_errors.labels("patch_conflict").inc()
            return self._read_again(ref)
        self.metrics.kube_errors.labels("patch").inc()
        if isinstance(error, KubeTemporaryError) and attempt < self.retries:
            self._sleep(min(5.0, 0.2 * 2**attempt))
            return obj
        self._give_up(ref, error)
        return None

    def _read_again(self, ref: XRRef) -> dict[str, Any] | None:
        """The object as it is now, after someone else changed it; None if gone or unreadable."""
        try:
            return self.cluster.get_virtualkey(ref)
        except KubeNotFoundError:
            return None
        except KubeError as e:
            self._give_up(ref, e)
            return None

    def _give_up(self, ref: XRRef, error: Exception) -> None:
        self._count_error()
        log.warning("could not write the status of %s: %s", ref, redact(error))

    def _count_error(self) -> None:
        with self._lock:
            self._write_errors += 1

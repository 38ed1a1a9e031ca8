"""Leader election through a coordination.k8s.io/v1 Lease, as client-go does it.

`LeaderElector(cluster, namespace, name, identity, lease_duration)`:

- `step()` acquires or renews the Lease once and says whether this replica
  leads. The Lease's resourceVersion makes every write a compare-and-swap:
  two replicas cannot both win.
- Another holder's Lease is taken over only after it went unrenewed for
  `lease_duration` seconds of *our* clock (the time we last saw it change),
  so clock skew between nodes does not matter.
- A leader that cannot renew for `renew_deadline` (2/3 of the duration)
  stops leading before anyone else may take over.
- `run(stop)` calls `step()` every `lease_duration / 3` seconds until
  `stop` is set, then `release()`s the Lease so a standby takes over at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from function.poller.kube import Cluster
from function.poller.kubeapi import KubeConflictError, KubeError

log = logging.getLogger(__name__)


def _micro_time(moment: datetime) -> str:
    # Not function.units.rfc3339: a Lease's times are MicroTime, with microseconds.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Holds or waits for one Lease."""

    def __init__(  # noqa: PLR0913 - each is a distinct, documented setting.
        self,
        cluster: Cluster,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        """Elect among replicas sharing `namespace`/`name`."""
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = lease_duration * 2 / 3
        self._clock = clock
        self._on_change = on_change
        self._leading = False
        self._last_renew = 0.0
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0

    @property
    def is_leader(self) -> bool:
        """Whether this replica leads now (renewed within the deadline)."""
        return self._leading and self._clock() - self._last_renew < self.renew_deadline

    def _set(self, leading: bool) -> None:  # noqa: FBT001
        if leading != self._leading:
            log.info(
                "%s the Lease %s/%s as %s",
                "acquired" if leading else "lost",
                self.namespace,
                self.name,
                self.identity,
            )
            if self._on_change:
                self._on_change(leading)
        self._leading = leading

    def _spec(self, lease: dict[str, Any] | None, *, renew_only: bool) -> dict[str, Any]:
        now = _micro_time(datetime.now(UTC))
        old = (lease or {}).get("spec") or {}
        transitions = int(old.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": old.get("acquireTime") if renew_only else now,
            "renewTime": now,
            "leaseTransitions": transitions if renew_only or not lease else transitions + 1,
        }

    def step(self) -> bool:
        """Acquire or renew once; whether this replica leads."""
        try:
            lease = self.cluster.get_lease(self.namespace, self.name)
            if lease is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(None, renew_only=False),
                }
                self.cluster.create_lease(self.namespace, body)
                return self._won()
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            meta = lease.get("metadata") or {}
            observed = (holder, spec.get("renewTime"), meta.get("resourceVersion"))
            if observed != self._observed:
                self._observed, self._observed_at = observed, self._clock()
            duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
            if holder and holder != self.identity and self._clock() - self._observed_at < duration:
                self._set(leading=False)
                return False
            lease["spec"] = self._spec(lease, renew_only=holder == self.identity)
            self.cluster.replace_lease(self.namespace, self.name, lease)
            return self._won()
        except KubeConflictError:
            self._set(leading=False)
            return False
        except KubeError as e:
            log.warning("leader election: %s", e)
            # Keep leading until the renew deadline passes (see is_leader).
            self._set(leading=self.is_leader)
            return self._leading

    def _won(self) -> bool:
        self._last_renew = self._clock()
        self._set(leading=True)
        return True

    def release(self) -> None:
        """Give the Lease up, if held, so another replica takes over at once."""
        if not self._leading:
            return
        try:
            lease = self.cluster.get_lease(self.namespace, self.name)
            spec = (lease or {}).get("spec") or {}
            if lease is not None and spec.get("holderIdentity") == self.identity:
                spec["holderIdentity"] = None
                spec["leaseDurationSeconds"] = 1
                lease["spec"] = spec
                self.cluster.replace_lease(self.namespace, self.name, lease)
        except KubeError as e:
            log.warning("leader election: could not release the Lease: %s", e)
        self._set(leading=False)

    def run(self, stop: threading.Event) -> None:
        """Renew until `stop` is set, then release."""
        period = max(0.5, self.lease_duration / 3)
        while not stop.is_set():
            self.step()
            stop.wait(period)
        self.release()

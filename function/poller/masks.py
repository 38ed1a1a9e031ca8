"""Deleting the mask Secrets whose Request is gone (see `function.provider_http.mask`).

provider-http stores the raw key `/key/generate` echoes in a Secret named
`mask.secret_name(<Request namespace>, <Request name>)` in the platform's
mask namespace, so that it masks the echo in the Request's
status. A Request cannot own a Secret in another namespace, so nothing
deletes it with its Request: `collect(cluster, namespace, now, ...)` does,
and `MaskCollector` runs it every `--mask-gc-interval` seconds, as the
leader, within the cycle's deadline.

Deleted is only a Secret that:

- is in the mask namespace and is named `litellm-generated-` and 40 hex digits;
- matches no Request labelled `app.kubernetes.io/managed-by=function-litellm-keys`
  in any namespace (the list of Requests is read after the Secrets, so a
  Secret's Request, if alive, is in it);
- is older than `MIN_AGE` by its creationTimestamp (a Request being made
  while the lists were read is not mistaken for a gone one);
- is still the object that was listed (uid and resourceVersion
  preconditions on the DELETE).

Both lists are metadata only: the poller never reads a Secret's data here.
If either list fails, or the Requests' type is not served, nothing is
deleted. At most `MAX_DELETES` Secrets go per run, before the caller's
deadline.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from function.composed import MANAGED_BY
from function.poller.kube import Cluster
from function.poller.kubeapi import KubeConflictError, KubeError, KubeNotFoundError
from function.poller.metrics import Metrics
from function.poller.redact import redact
from function.provider_http import mask
from function.units import parse_time

log = logging.getLogger(__name__)

MIN_AGE = timedelta(minutes=10)  # the default of --mask-min-age
MAX_DELETES = 100
SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
_NAME = re.compile(rf"^{re.escape(mask.PREFIX)}[0-9a-f]{{40}}$")


@dataclass
class MaskReport:
    """What one collection did."""

    candidates: int = 0  # mask Secrets listed
    orphans: int = 0  # of them, matching no Request
    young: int = 0  # orphans kept, younger than MIN_AGE
    deleted: int = 0
    failed: bool = False  # a listing failed: nothing was deleted


def collect(  # noqa: PLR0913 - each argument is one independent fact.
    cluster: Cluster,
    namespace: str,
    now: datetime,
    *,
    until: float = float("inf"),
    should_write: Callable[[], bool] = lambda: True,
    min_age: timedelta = MIN_AGE,
) -> MaskReport:
    """Delete the mask Secrets in `namespace` whose Request is gone; never anything else."""
    report = MaskReport()
    try:
        secrets = [
            m
            for m in cluster.list_secret_metadata(namespace)
            if isinstance(m.get("name"), str) and _NAME.fullmatch(m["name"])
        ]
        report.candidates = len(secrets)
        if not secrets:
            return report
        requests = cluster.list_request_names(SELECTOR)
    except KubeError as e:
        report.failed = True
        log.warning("mask Secrets: %s; none deleted this time", redact(e))
        return report
    expected = {mask.secret_name(ns, name) for ns, name in requests}
    orphans = sorted(
        (m for m in secrets if m["name"] not in expected and not m.get("deletionTimestamp")),
        key=lambda m: str(m["name"]),
    )
    report.orphans = len(orphans)
    for meta in orphans:
        created = parse_time(meta.get("creationTimestamp"))  # as Kubernetes writes it
        if created is None or now - created < min_age:
            report.young += 1
            continue
        if report.deleted >= MAX_DELETES or time.monotonic() > until or not should_write():
            break
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        if not isinstance(uid, str) or not isinstance(version, str):
            continue
        try:
            cluster.delete_secret(namespace, meta["name"], uid, version)
        except (KubeNotFoundError, KubeConflictError):
            continue  # gone already, or changed since the listing: the next run looks again
        except KubeError as e:
            log.warning("mask Secrets: %s; the next run tries again", redact(e))
            break
        report.deleted += 1
    if report.deleted:
        log.info("deleted %d mask Secrets in %s whose Request is gone", report.deleted, namespace)
    return report


@dataclass
class MaskCollector:
    """Runs `collect` every `interval` seconds, only as the leader; never raises."""

    cluster: Cluster
    namespace: str  # empty: never
    interval: float
    min_age: timedelta
    metrics: Metrics
    now: Callable[[], datetime]
    _last: float | None = None  # when the mask Secrets were last collected

    def run(self, until: float, should_write: Callable[[], bool]) -> int:
        """Delete mask Secrets whose Request is gone, if due; how many."""
        due = self._last is None or time.monotonic() - self._last >= self.interval
        if not self.namespace or not due or not should_write():
            return 0
        self._last = time.monotonic()
        try:
            report = collect(
                self.cluster,
                self.namespace,
                self.now(),
                until=until,
                should_write=should_write,
                min_age=self.min_age,
            )
        except Exception:
            log.exception("collecting mask Secrets failed; the next run tries again")
            return 0
        self.metrics.masks_deleted.inc(report.deleted)
        return report.deleted

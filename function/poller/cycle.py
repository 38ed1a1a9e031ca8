"""One poll cycle: list VirtualKeys, Users and Teams, read them per instance, write status.

`Poller(cluster, settings, metrics).cycle()` -> `CycleReport`:

1. List both kinds of VirtualKey, then every TenancyPolicy and the
   Namespaces' labels, once (`tenancy.Tenancy`), then the Users and Teams. A
   VirtualKey listing error is the API server's problem: it raises
   `KubeError` and the loop backs off.
2. Decide each object's instance with the function's own rules
   (`keys.key_targets`, `accounts.account_targets`): one the function would
   refuse, or that cannot be read at all, is skipped, so no master key is
   ever sent where the function would not send it. A namespace's
   tenant-owned proxies are read up to its rules' `maxInstances`
   (`tenancy.cap_tenant_proxies`); VirtualKeys on the others get a
   `TooManyTenantProxies` condition.
3. Per instance, in parallel (`--concurrency`), unless it is backing off:
   read the master key from its Secret, fetch every key in bulk
   (`fetch.KeyFetcher`, matching by alias and provenance, never by status)
   and observe each (`keys.observe_all`), then the Users and Teams
   (`accounts.read_accounts`). A failure there marks all of that instance's
   keys LiteLLMUnavailable, which keeps their last known values, and backs
   the instance off (`instances.Instances`); other instances go on.
4. Write each status that changed (`writer.Writer`: retried merge patches,
   then the events).

**Time.** A cycle ends by `--cycle-deadline` whatever the proxies do:
every request is cut at it, and nothing is written after it, so what the
cycle did not reach keeps its last values. Platform instances are started
first (sorted), then the mask Secrets' collection, then tenant-owned
proxies, in an order that takes turns between cycles (`instances.in_order`).
One tenant proxy may take at most `TENANT_PROXY_SHARE` of the cycle (or
`--litellm-deadline`, if shorter), so slow tenant proxies neither delay nor
starve platform keys. An error while handling one object stays with that
object.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from function.poller.accounts import (
    Account,
    AccountTarget,
    account_writes,
    listed_account_targets,
    read_accounts,
)
from function.poller.deadline import CYCLE_LIMIT, Deadline, Interrupted
from function.poller.instances import (
    ClientFactory,
    Group,
    Instance,
    InstanceResult,
    Instances,
    default_client,
    groups,
    in_order,
    next_turn,
    summary,
)
from function.poller.keys import (
    KeyTarget,
    key_metrics,
    key_targets,
    key_writes,
    observe_all,
    unavailable_all,
)
from function.poller.kube import Cluster
from function.poller.masks import MaskCollector
from function.poller.metrics import Metrics
from function.poller.settings import Settings
from function.poller.state import too_many_proxies
from function.poller.tenancy import Capped, Tenancy, cap_tenant_proxies
from function.poller.writer import Writer

log = logging.getLogger(__name__)

ShouldWrite = Callable[[], bool]


@dataclass
class CycleReport:
    """What one cycle did."""

    keys: int = 0
    skipped: int = 0
    instances: int = 0
    unavailable: list[str] = field(default_factory=list)
    requests: int = 0
    writes: int = 0
    events: int = 0
    write_errors: int = 0
    accounts: int = 0
    seconds: float = 0.0
    # Instances the cycle's deadline (or the stop signal) left unread.
    not_reached: list[str] = field(default_factory=list)
    # Objects on tenant proxies beyond their namespace's tenantProxies.maxInstances.
    over_limit: int = 0
    masks_deleted: int = 0

    def add(self, result: InstanceResult) -> None:
        """Count what one instance's read and writes did."""
        self.writes += result.writes
        self.requests += result.requests
        if result.unavailable:
            self.unavailable.append(result.instance_id)
        if not result.reached:
            self.not_reached.append(result.instance_id)


class Poller:
    """Runs cycles; keeps per-instance clients and backoff between them."""

    def __init__(  # noqa: PLR0913 - the last three are seams for tests.
        self,
        cluster: Cluster,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        client_factory: ClientFactory = default_client,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Poll through `cluster` with `settings`."""
        self.cluster = cluster
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._now = now
        self.instances = Instances(cluster, settings, self.metrics, client_factory)
        self.writer = Writer(cluster, self.metrics, settings.write_retries, sleep)
        self.masks = MaskCollector(
            cluster,
            settings.mask_namespace,
            settings.mask_gc_interval,
            timedelta(seconds=settings.mask_min_age),
            self.metrics,
            now,
        )
        self._tenant_turn = 0  # where the next cycle starts among the tenant proxies

    def close(self) -> None:
        """Close every LiteLLM client."""
        self.instances.close()

    def instance(self, instance_id: str) -> Instance:
        """The state kept for one instance (made on first use)."""
        return self.instances.get(instance_id)

    def targets(self) -> tuple[list[KeyTarget], int]:
        """Every VirtualKey this poller can poll, and how many it skipped."""
        virtualkeys = self.cluster.list_virtualkeys()
        return key_targets(virtualkeys, Tenancy.read(self.cluster))

    def cycle(
        self, should_write: ShouldWrite = lambda: True, stop: threading.Event | None = None
    ) -> CycleReport:
        """One cycle. Raises KubeError only when the listing fails."""
        started = time.monotonic()
        deadline = Deadline(started + self.settings.cycle_seconds, stop, CYCLE_LIMIT)
        report = CycleReport()
        planned = self._plan(report)
        found = groups(planned.keys, planned.accounts)
        report.instances = len(found)
        now = self._now()
        results = self._run(found, now, deadline, should_write, report)
        # The VirtualKeys whose tenant proxy is not read: TooManyTenantProxies.
        over = [(target, None, too_many_proxies(limit)) for target, limit in planned.over]
        report.writes += self.writer.each(
            key_writes(self.writer, over, now, should_write), deadline
        )
        self.metrics.set_keys(key_metrics((r.instance_id, r.observed) for r in results))
        self._finish(report, results, started)
        return report

    def _plan(self, report: CycleReport) -> Capped[KeyTarget, AccountTarget]:
        """List everything once; what to read, within each namespace's tenant-proxy limit."""
        virtualkeys = self.cluster.list_virtualkeys()
        tenancy = Tenancy.read(self.cluster)
        keys, report.skipped = key_targets(virtualkeys, tenancy)
        # Each target holds its object, replaced by the API server's answer once written:
        # holding the listing too would keep two copies of every written object.
        del virtualkeys
        accounts = listed_account_targets(self.cluster, tenancy)
        planned = cap_tenant_proxies(keys, accounts, tenancy)
        report.keys, report.accounts = len(planned.keys), len(planned.accounts)
        report.over_limit = planned.left_out
        return planned

    def _run(
        self,
        found: dict[str, Group],
        now: datetime,
        deadline: Deadline,
        should_write: ShouldWrite,
        report: CycleReport,
    ) -> list[InstanceResult]:
        """Every instance read and written, platform instances first; and the masks deleted."""
        platform, tenants = in_order(found, self._tenant_turn)
        workers = max(1, min(self.settings.concurrency, len(found) + 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="instance") as pool:

            def submit(group: Group) -> Future[InstanceResult]:
                return pool.submit(self._poll_instance, group, now, deadline, should_write)

            # The queue is first in, first out: platform instances start first.
            platform_futures = [submit(g) for g in platform]
            masks_future = pool.submit(self.masks.run, deadline.until, should_write)
            tenant_futures = [submit(g) for g in tenants]
            results = [f.result() for f in platform_futures + tenant_futures]
            report.masks_deleted = masks_future.result()
        self._tenant_turn = next_turn(self._tenant_turn, results[len(platform) :])
        return results

    def _poll_instance(
        self, group: Group, now: datetime, deadline: Deadline, should_write: ShouldWrite
    ) -> InstanceResult:
        """Read one instance and write what changed; never raises."""
        result = InstanceResult(group.instance_id)
        try:
            self._read_instance(group, result, now, deadline)
        except Interrupted:
            result.reached = False
            result.observed = []
            return result
        except Exception as e:
            log.exception("unexpected error polling %s", group.instance_id)
            result.accounts = []
            self._unavailable(result, group.keys, summary(e))
        if result.reached:
            self._write_instance(result, now, deadline, should_write)
        return result

    def _read_instance(
        self, group: Group, result: InstanceResult, now: datetime, cycle: Deadline
    ) -> None:
        """Fetch an instance's keys, then its Users and Teams, into `result`."""
        state = self.instances.get(group.instance_id)
        self.metrics.keys.labels(group.instance_id).set(len(group.keys))
        if cycle.over():
            result.reached = False
            return
        if not state.backoff.ready():
            self._unavailable(result, group.keys, state.backoff.last_error)
            self.instances.publish(state, group.instance_id)
            return
        mark = state.mark()
        try:
            self._read(state, group, result, now, self.instances.deadline(group, cycle))
        finally:
            result.requests = self.instances.finish(state, group.instance_id, mark)

    def _read(
        self,
        state: Instance,
        group: Group,
        result: InstanceResult,
        now: datetime,
        deadline: Deadline,
    ) -> None:
        """Keys, then Users and Teams; a failure backs the instance off."""
        try:
            fetcher = self.instances.fetcher(state, group.connection)
            records = fetcher.fetch([t.wanted for t in group.keys], deadline)
        except Interrupted:
            raise
        except Exception as e:
            count = len(group.keys) + len(group.accounts)
            self.instances.failed(state, group.instance_id, e, count)
            self._unavailable(result, group.keys, summary(e))
            return
        state.backoff.succeeded()
        result.observed = observe_all(group.keys, records, now, fetcher.holders)
        found = self._read_accounts(state, group, deadline)
        if found is not None:
            result.accounts = list(zip(group.accounts, found, strict=True))

    def _read_accounts(
        self, state: Instance, group: Group, deadline: Deadline
    ) -> list[Account | None] | None:
        """The instance's Users and Teams, or None when the proxy failed (it backs off)."""
        if not group.accounts:
            return None
        assert state.client is not None  # noqa: S101 - Instances.fetcher made it.
        try:
            return read_accounts(
                state.client, group.accounts, self.settings.litellm_max_pages, deadline
            )
        except Interrupted:
            raise
        except Exception as e:
            count = len(group.accounts)
            self.instances.failed(state, group.instance_id, e, count, "users and teams")
            return None

    def _write_instance(
        self, result: InstanceResult, now: datetime, deadline: Deadline, should_write: ShouldWrite
    ) -> None:
        """Write what one instance's read found, until the cycle's end; never raises."""
        writer = self.writer
        result.writes += writer.each(
            key_writes(writer, result.observed, now, should_write), deadline
        )
        result.writes += writer.each(
            account_writes(writer, result.accounts, should_write), deadline
        )

    @staticmethod
    def _unavailable(result: InstanceResult, keys: list[KeyTarget], reason: str) -> None:
        """Every key of the instance keeps its last values, with a LiteLLMUnavailable condition."""
        result.unavailable = True
        result.observed = unavailable_all(result.instance_id, keys, reason)

    def _finish(self, report: CycleReport, results: list[InstanceResult], started: float) -> None:
        """The report's totals; the log and the metrics hear of instances left unread."""
        for result in results:
            report.add(result)
        if report.not_reached:
            self.metrics.not_reached.inc(len(report.not_reached))
            log.warning(
                "the cycle's deadline (%.0f s) left %d instances unread; their objects keep "
                "their last values",
                self.settings.cycle_seconds,
                len(report.not_reached),
            )
        report.events, report.write_errors = self.writer.counts()
        report.seconds = time.monotonic() - started

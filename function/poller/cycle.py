"""One poll cycle: list VirtualKeys, Users and Teams, read them per instance, write status.

`Poller(cluster, settings, metrics).cycle()` -> `CycleReport`:

1. List both kinds of VirtualKey, and the Users and Teams. A VirtualKey
   listing error is the API server's problem: it raises `KubeError` and the
   loop backs off.
2. Read every TenancyPolicy and the Namespaces' labels, and decide each
   object's instance with the function's own rules
   (`function.composed.owner_of`, `function.keys.spec.parse_spec`,
   `function.tenancy.authorize`). One that the function would refuse, or
   that cannot be read at all, is skipped, so no master key is ever sent
   where the function would not send it; the function already reports it.
   A namespace's tenant-owned proxies are read up to its rules'
   `tenantProxies.maxInstances` (the first ones, sorted by instance id);
   VirtualKeys on the others get a `TooManyTenantProxies` condition.
3. Per instance, in parallel (`--concurrency`), unless it is backing off:
   read the master key from its Secret, fetch every key in bulk
   (`fetch.KeyFetcher`, matching by alias and provenance, never by status)
   and the Users and Teams (`accounts.read_accounts`), and compute each
   key's observation (`state.observe`). Any error there marks all of that
   instance's keys LiteLLMUnavailable, which keeps their last known values,
   and backs the instance off; other instances go on.
4. Write each status that changed: a merge patch of the status subresource
   with `metadata.resourceVersion`; a 409 re-reads the object and
   recomputes; 5xx, 429 and transport errors are retried a few times.
   Events follow a write that was accepted, so a conflict cannot repeat one.

**Time.** A cycle ends by `--cycle-deadline` whatever the proxies do:
every request is cut at it, and nothing is written after it, so what the
cycle did not reach keeps its last values. Platform instances are started
first (sorted), then the mask Secrets' collection, then tenant-owned
proxies, in an order that takes turns between cycles. One tenant proxy may
take at most `TENANT_PROXY_SHARE` of the cycle (or `--litellm-deadline`,
if shorter), so slow tenant proxies neither delay nor starve platform keys.

Clients are kept per instance between cycles, and replaced when the master
key in the Secret changes. The master key never leaves this module's
`_client_for` and the client's headers. An error while handling one object
stays with that object.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from function.composed import owner_of
from function.keys.spec import parse_spec
from function.poller import masks
from function.poller.accounts import (
    Account,
    AccountTarget,
    account_patch,
    account_targets,
    read_accounts,
)
from function.poller.backoff import Backoff
from function.poller.deadline import Deadline, Interrupted
from function.poller.fetch import KeyFetcher, Wanted
from function.poller.kube import LEGACY_KIND, PLURAL, Cluster, XRRef
from function.poller.kubeapi import (
    KubeConflictError,
    KubeError,
    KubeNotFoundError,
    KubeTemporaryError,
)
from function.poller.litellm import LiteLLMClient, LiteLLMError
from function.poller.metrics import Metrics
from function.poller.records import KeyRecord
from function.poller.redact import redact
from function.poller.settings import Settings
from function.poller.state import (
    KEEPS_LAST,
    Event,
    Observation,
    Reason,
    alias_holder,
    events,
    observe,
    status_patch,
    too_many_proxies,
    unavailable,
)
from function.tenancy.connection import Connection
from function.tenancy.decide import authorize
from function.tenancy.policy import Policies, Tenant, load_policies
from function.validation import InvalidInputError

log = logging.getLogger(__name__)

ClientFactory = Callable[[str, str, Settings], LiteLLMClient]
# The most of a cycle one tenant-owned proxy may take.
TENANT_PROXY_SHARE = 0.25


@dataclass
class Target:
    """One VirtualKey to poll."""

    ref: XRRef
    obj: dict[str, Any]
    wanted: Wanted
    connection: Connection
    tenant: tuple[str, str]  # (namespace, name) as the tenant sees it
    replace_foreign: bool = False  # its TenancyPolicy lets it replace keys it did not make
    tenant_proxy: bool = False  # on a tenant-owned proxy (connectionRef.url)


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


@dataclass
class _Group:
    """Everything one instance is read for."""

    instance_id: str
    connection: Connection
    tenant_proxy: bool
    keys: list[Target] = field(default_factory=list)
    accounts: list[AccountTarget] = field(default_factory=list)


@dataclass
class _InstanceResult:
    instance_id: str
    observed: list[tuple[Target, KeyRecord | None, Observation]] = field(default_factory=list)
    accounts: list[tuple[AccountTarget, Account | None]] = field(default_factory=list)
    writes: int = 0
    requests: int = 0
    unavailable: bool = False
    reached: bool = True


@dataclass
class _Instance:
    backoff: Backoff
    client: LiteLLMClient | None = None
    fetcher: KeyFetcher | None = None
    key_digest: str = ""


def _tenant_namespace(obj: dict[str, Any]) -> tuple[str, str]:
    owner = owner_of(obj)
    return owner.namespace, owner.virtualkey


def _is_claim(ref: XRRef, obj: dict[str, Any]) -> bool:
    """A legacy claim (served as `virtualkeys` by the legacy XRD), bound to its XR."""
    resource_ref = (obj.get("spec") or {}).get("resourceRef")
    return (
        ref.plural == PLURAL
        and isinstance(resource_ref, dict)
        and resource_ref.get("kind") == LEGACY_KIND
    )


def _event_target(obj: dict[str, Any]) -> dict[str, Any]:
    """Where tenants look: the XR itself, or a legacy XR's claim."""
    meta = obj.get("metadata") or {}
    claim = (obj.get("spec") or {}).get("claimRef")
    if not meta.get("namespace") and isinstance(claim, dict) and claim.get("namespace"):
        return claim
    return obj


def _prepare(
    obj: dict[str, Any], record: KeyRecord | None, obs: Observation, now: datetime
) -> tuple[dict[str, Any], list[Event]] | None:
    """The merge patch and the events for `obj`, or None when its status is current."""
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    generation = meta.get("generation")
    patch = status_patch(status, obs, now, generation if isinstance(generation, int) else None)
    if patch is None:
        return None
    body = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": patch}
    return body, events(status, record, obs)


def _skip_reason(error: Exception) -> str:
    """Why an object is skipped, for the log: a refusal's text, else only its kind."""
    if isinstance(error, InvalidInputError):
        return redact(error)
    return f"it cannot be read ({type(error).__name__})"


def tenant_proxy_limit(policies: Policies, tenant: Tenant) -> int:
    """How many tenant-owned proxies a namespace's objects may have read: the rules' largest."""
    return max(
        (
            r.spec.tenant_proxies.max_instances
            for r in policies.rules_for(tenant)
            if r.spec.tenant_proxies.allow
        ),
        default=0,
    )


def default_client(base_url: str, master_key: str, settings: Settings) -> LiteLLMClient:
    """A real LiteLLM client."""
    return LiteLLMClient(
        base_url, master_key, settings.litellm_timeout, max_bytes=settings.litellm_max_bytes
    )


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
        self._client_factory = client_factory
        self._now = now
        self._sleep = sleep
        self._instances: dict[str, _Instance] = {}
        self._events_sent = 0
        self._write_errors = 0
        self._lock = threading.Lock()
        self._tenant_turn = 0  # where the next cycle starts among the tenant proxies
        self._last_masks: float | None = None  # when the mask Secrets were last collected

    def close(self) -> None:
        """Close every LiteLLM client."""
        for instance in self._instances.values():
            if instance.client is not None:
                instance.client.close()

    def instance(self, instance_id: str) -> _Instance:
        """The state kept for one instance (made on first use)."""
        with self._lock:
            if instance_id not in self._instances:
                self._instances[instance_id] = _Instance(
                    Backoff(self.settings.backoff_base, self.settings.backoff_max)
                )
            return self._instances[instance_id]

    def targets(self) -> tuple[list[Target], int]:
        """Every VirtualKey this poller can poll, and how many it skipped."""
        virtualkeys = self.cluster.list_virtualkeys()
        policies = load_policies(self.cluster.list_policies())
        return self._key_targets(virtualkeys, policies, self.cluster.namespace_labels())

    def _key_targets(
        self,
        virtualkeys: list[tuple[XRRef, dict[str, Any]]],
        policies: Policies,
        labels: dict[str, dict[str, str]],
    ) -> tuple[list[Target], int]:
        found: list[Target] = []
        skipped = 0
        for ref, obj in virtualkeys:
            try:
                if _is_claim(ref, obj):
                    continue  # its XR is polled; Crossplane copies the XR's status to it
                tenant = _tenant_namespace(obj)
                spec = parse_spec(obj.get("spec"))
                granted = authorize(spec, Tenant(tenant[0], labels.get(tenant[0])), policies)
            except Exception as e:  # a refusal, or anything else: this object alone
                log.debug("skipping %s: %s", ref, _skip_reason(e))
                skipped += 1
                continue
            found.append(
                Target(
                    ref,
                    obj,
                    Wanted(spec.key_alias, tenant),
                    granted.connection,
                    tenant,
                    replace_foreign=granted.replace_foreign_keys,
                    tenant_proxy=spec.connection_ref.instance_ref is None,
                )
            )
        return found, skipped

    def _account_targets(
        self, policies: Policies, labels: dict[str, dict[str, str]]
    ) -> list[AccountTarget]:
        try:
            objects = self.cluster.list_accounts()
        except KubeError as e:
            # Keys go on without them (an older RBAC may not grant users and teams).
            log.warning("cannot list Users and Teams: %s; their status is not updated", redact(e))
            return []
        return account_targets(
            objects,
            policies,
            labels,
            lambda ref, e: log.debug("skipping %s: %s", ref, _skip_reason(e)),
        )

    def cycle(
        self,
        should_write: Callable[[], bool] = lambda: True,
        stop: threading.Event | None = None,
    ) -> CycleReport:
        """One cycle. Raises KubeError only when the listing fails."""
        started = time.monotonic()
        cycle_end = started + self.settings.cycle_seconds
        report = CycleReport()
        virtualkeys = self.cluster.list_virtualkeys()
        policies = load_policies(self.cluster.list_policies())
        labels = self.cluster.namespace_labels()
        keys, report.skipped = self._key_targets(virtualkeys, policies, labels)
        # Each target holds its object, replaced by the API server's answer once written:
        # holding the listing too would keep two copies of every written object.
        del virtualkeys
        accounts = self._account_targets(policies, labels)
        keys, accounts, over, report.over_limit = _limit_tenant_proxies(
            keys, accounts, policies, labels
        )
        report.keys, report.accounts = len(keys), len(accounts)
        groups = _groups(keys, accounts)
        report.instances = len(groups)
        now = self._now()
        results, report.masks_deleted = self._run(groups, now, cycle_end, should_write, stop)
        for result in results:
            report.writes += result.writes
            report.requests += result.requests
            if result.unavailable:
                report.unavailable.append(result.instance_id)
            if not result.reached:
                report.not_reached.append(result.instance_id)
        report.writes += self._write_over_limit(over, now, cycle_end, should_write, stop)
        self.metrics.set_keys(_key_metrics(results))
        if report.not_reached:
            self.metrics.not_reached.inc(len(report.not_reached))
            log.warning(
                "the cycle's deadline (%.0f s) left %d instances unread; their objects keep "
                "their last values",
                self.settings.cycle_seconds,
                len(report.not_reached),
            )
        with self._lock:
            report.events, self._events_sent = self._events_sent, 0
            report.write_errors, self._write_errors = self._write_errors, 0
        report.seconds = time.monotonic() - started
        return report

    def _run(
        self,
        groups: dict[str, _Group],
        now: datetime,
        cycle_end: float,
        should_write: Callable[[], bool],
        stop: threading.Event | None,
    ) -> tuple[list[_InstanceResult], int]:
        """Every instance read and written, platform instances first; and the masks deleted."""
        platform = sorted((g for g in groups.values() if not g.tenant_proxy), key=_by_id)
        tenants = sorted((g for g in groups.values() if g.tenant_proxy), key=_by_id)
        if tenants:  # take turns: the first one left unread last time goes first
            turn = self._tenant_turn % len(tenants)
            tenants = tenants[turn:] + tenants[:turn]
        workers = max(1, min(self.settings.concurrency, len(groups) + 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="instance") as pool:

            def submit(group: _Group) -> Future[_InstanceResult]:
                return pool.submit(self._poll_instance, group, now, cycle_end, should_write, stop)

            # The queue is first in, first out: platform instances start first.
            platform_futures = [submit(g) for g in platform]
            masks_future = pool.submit(self._collect_masks, cycle_end, should_write)
            tenant_futures = [submit(g) for g in tenants]
            results = [f.result() for f in platform_futures + tenant_futures]
            deleted = masks_future.result()
        if tenants:
            reached = sum(1 for r in results[len(platform) :] if r.reached)
            self._tenant_turn = (self._tenant_turn + reached) % len(tenants)
        return results, deleted

    def _write_over_limit(
        self,
        over: list[tuple[Target, int]],
        now: datetime,
        cycle_end: float,
        should_write: Callable[[], bool],
        stop: threading.Event | None,
    ) -> int:
        """The TooManyTenantProxies condition on each VirtualKey whose proxy is not read."""
        writes = 0
        for target, limit in over:
            if (stop is not None and stop.is_set()) or time.monotonic() >= cycle_end:
                break
            try:
                writes += self._write(target, None, too_many_proxies(limit), now, should_write)
            except Exception:
                log.exception("could not write the status of %s", target.ref)
                with self._lock:
                    self._write_errors += 1
        return writes

    def _collect_masks(self, cycle_end: float, should_write: Callable[[], bool]) -> int:
        """Delete mask Secrets whose Request is gone, every --mask-gc-interval; how many."""
        namespace = self.settings.mask_namespace
        due = self._last_masks is None or (
            time.monotonic() - self._last_masks >= self.settings.mask_gc_interval
        )
        if not namespace or not due or not should_write():
            return 0
        self._last_masks = time.monotonic()
        try:
            report = masks.collect(
                self.cluster,
                namespace,
                self._now(),
                until=cycle_end,
                should_write=should_write,
                min_age=timedelta(seconds=self.settings.mask_min_age),
            )
        except Exception:
            log.exception("collecting mask Secrets failed; the next run tries again")
            return 0
        self.metrics.masks_deleted.inc(report.deleted)
        return report.deleted

    def _write_account(
        self, target: AccountTarget, account: Account | None, should_write: Callable[[], bool]
    ) -> bool:
        """Merge-patch what changed into one User's or Team's status; whether it was written.

        No resourceVersion: the fields are the poller's alone, and a stale
        value is replaced by the next cycle.
        """
        if account is not None and account.problem is not None:
            log.warning(
                "LiteLLM's object for %s cannot be read (%s); its status keeps its last values",
                target.ref,
                account.problem,
            )
            return False
        status = target.obj.get("status") or {}
        patch = account_patch(status, account, team=target.is_team)
        if patch is None or not should_write():
            return False
        try:
            self.cluster.patch_status(target.ref, {"status": patch})
        except KubeError as e:
            with self._lock:
                self._write_errors += 1
            log.warning("could not write the status of %s: %s", target.ref, redact(e))
            return False
        self.metrics.writes.inc()
        return True

    def _client_for(self, state: _Instance, connection: Connection) -> KeyFetcher:
        ref = connection.master_key
        master_key = self.cluster.read_secret_value(ref.namespace, ref.name, ref.key)
        if not master_key:
            msg = f"Secret {ref.namespace}/{ref.name} has an empty {ref.key!r}"
            raise KubeError(msg)
        digest = hashlib.sha256(master_key.encode()).hexdigest()
        if state.client is None or state.fetcher is None or digest != state.key_digest:
            if state.client is not None:
                state.client.close()
            state.client = self._client_factory(connection.base_url, master_key, self.settings)
            state.fetcher = KeyFetcher(
                state.client,
                self.settings.fetch_mode,
                max_pages=self.settings.litellm_max_pages,
                deadline=self.settings.litellm_deadline,
            )
            state.key_digest = digest
        return state.fetcher

    def _deadline(self, group: _Group, cycle_end: float, stop: threading.Event | None) -> Deadline:
        """How long this instance may be read: a tenant proxy gets a share of the cycle."""
        seconds = self.settings.litellm_deadline
        if group.tenant_proxy:
            seconds = min(seconds, self.settings.cycle_seconds * TENANT_PROXY_SHARE)
        return Deadline.within(seconds, cycle_end, stop)

    def _poll_instance(
        self,
        group: _Group,
        now: datetime,
        cycle_end: float,
        should_write: Callable[[], bool],
        stop: threading.Event | None,
    ) -> _InstanceResult:
        """Read one instance and write what changed; never raises."""
        result = _InstanceResult(group.instance_id)
        try:
            self._read_instance(group, result, now, cycle_end, stop)
        except Interrupted:
            result.reached = False
            result.observed = []
            return result
        except Exception as e:
            log.exception("unexpected error polling %s", group.instance_id)
            result.accounts = []
            _mark_unavailable(result, group.keys, _summary(e))
        if result.reached:
            self._write_instance(result, now, cycle_end, should_write, stop)
        return result

    def _write_instance(
        self,
        result: _InstanceResult,
        now: datetime,
        cycle_end: float,
        should_write: Callable[[], bool],
        stop: threading.Event | None,
    ) -> None:
        """Write what one instance's read found, until the cycle's end; never raises."""
        for target, record, obs in result.observed:
            if (stop is not None and stop.is_set()) or time.monotonic() >= cycle_end:
                return
            try:
                result.writes += self._write(target, record, obs, now, should_write)
            except Exception:
                log.exception("could not write the status of %s", target.ref)
                with self._lock:
                    self._write_errors += 1
        for account_target, account in result.accounts:
            if (stop is not None and stop.is_set()) or time.monotonic() >= cycle_end:
                return
            try:
                result.writes += self._write_account(account_target, account, should_write)
            except Exception:
                log.exception("could not write the status of %s", account_target.ref)
                with self._lock:
                    self._write_errors += 1

    def _read_instance(
        self,
        group: _Group,
        result: _InstanceResult,
        now: datetime,
        cycle_end: float,
        stop: threading.Event | None,
    ) -> None:
        """Fetch an instance's keys, then its Users and Teams, into `result`."""
        instance_id = group.instance_id
        state = self.instance(instance_id)
        metrics = self.metrics
        metrics.keys.labels(instance_id).set(len(group.keys))
        if (stop is not None and stop.is_set()) or time.monotonic() >= cycle_end:
            result.reached = False
            return
        if not state.backoff.ready():
            _mark_unavailable(result, group.keys, state.backoff.last_error)
            self._instance_metrics(state, instance_id)
            return
        deadline = self._deadline(group, cycle_end, stop)
        client_before = state.client
        before = state.client.requests if state.client else 0
        found: list[Account | None] | None = None
        try:
            fetcher = self._client_for(state, group.connection)
            records = fetcher.fetch([t.wanted for t in group.keys], deadline)
        except Interrupted:
            raise
        except Exception as e:
            self._failed(state, instance_id, e, len(group.keys) + len(group.accounts))
            _mark_unavailable(result, group.keys, _summary(e))
        else:
            state.backoff.succeeded()
            result.observed = [
                (t, r, _observe(t, r, now, fetcher.holders.get(t.wanted.alias)))
                for t, r in zip(group.keys, records, strict=True)
            ]
            found = self._read_accounts(state, group, deadline)
        finally:
            if state.client is not None:
                start = before if state.client is client_before else 0
                result.requests = state.client.requests - start
                metrics.requests.labels(instance_id).inc(result.requests)
            self._instance_metrics(state, instance_id)
        if found is not None:
            result.accounts = list(zip(group.accounts, found, strict=True))

    def _read_accounts(
        self, state: _Instance, group: _Group, deadline: Deadline
    ) -> list[Account | None] | None:
        """The instance's Users and Teams, or None when the proxy failed (it backs off)."""
        if not group.accounts:
            return None
        assert state.client is not None  # noqa: S101 - _client_for made it.
        try:
            return read_accounts(
                state.client, group.accounts, self.settings.litellm_max_pages, deadline
            )
        except Interrupted:
            raise
        except Exception as e:
            self._failed(state, group.instance_id, e, len(group.accounts), "users and teams")
            return None

    def _failed(
        self,
        state: _Instance,
        instance_id: str,
        error: Exception,
        count: int,
        what: str = "objects",
    ) -> None:
        """Back an instance off after `error`; logs get the (redacted) detail."""
        summary = _summary(error)
        delay = state.backoff.failed(summary)
        self.metrics.errors.labels(instance_id, type(error).__name__).inc()
        if isinstance(error, LiteLLMError | KubeError):
            detail = redact(error)
        else:
            log.error("unexpected error polling %s", instance_id, exc_info=error)
            detail = summary
        log.warning(
            "LiteLLM at %s: %s; %d %s keep their last values; next try in %.0f s",
            instance_id,
            detail,
            count,
            what,
            delay,
        )

    def _instance_metrics(self, state: _Instance, instance_id: str) -> None:
        self.metrics.failures.labels(instance_id).set(state.backoff.failures)
        self.metrics.backoff.labels(instance_id).set(state.backoff.remaining())

    def _write(
        self,
        target: Target,
        record: KeyRecord | None,
        obs: Observation,
        now: datetime,
        should_write: Callable[[], bool],
    ) -> bool:
        """Write one status if it changed; whether a write was accepted."""
        obj: dict[str, Any] | None = target.obj
        for attempt in range(self.settings.write_retries + 1):
            assert obj is not None  # noqa: S101 - the loop stops on None.
            prepared = _prepare(obj, record, obs, now)
            if prepared is None or not should_write():
                return False
            body, to_emit = prepared
            try:
                updated = self.cluster.patch_status(target.ref, body)
            except KubeError as e:
                obj = self._after_failure(target, obj, e, attempt)
                if obj is None:
                    return False
                continue
            target.obj = updated or obj
            self.metrics.writes.inc()
            self._emit(_event_target(obj), to_emit)
            return True
        self._give_up(target, KubeConflictError("the object kept changing under the poller"))
        return False

    def _after_failure(
        self, target: Target, obj: dict[str, Any], error: KubeError, attempt: int
    ) -> dict[str, Any] | None:
        """The object to try the write again with, or None to stop trying."""
        if isinstance(error, KubeNotFoundError):
            return None  # deleted since the listing
        if isinstance(error, KubeConflictError):
            self.metrics.kube_errors.labels("patch_conflict").inc()
            try:
                return self.cluster.get_virtualkey(target.ref)
            except KubeNotFoundError:
                return None
            except KubeError as e:
                self._give_up(target, e)
                return None
        self.metrics.kube_errors.labels("patch").inc()
        if isinstance(error, KubeTemporaryError) and attempt < self.settings.write_retries:
            self._sleep(min(5.0, 0.2 * 2**attempt))
            return obj
        self._give_up(target, error)
        return None

    def _give_up(self, target: Target, error: Exception) -> None:
        with self._lock:
            self._write_errors += 1
        log.warning("could not write the status of %s: %s", target.ref, redact(error))

    def _emit(self, involved: dict[str, Any], found: list[Event]) -> None:
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


def _key_metrics(
    results: list[_InstanceResult],
) -> dict[tuple[str, str, str], tuple[float | None, float | None, bool]]:
    """Per key: spend, max budget and whether it is active (None: keep the last series)."""
    found: dict[tuple[str, str, str], tuple[float | None, float | None, bool]] = {}
    for result in results:
        for target, record, obs in result.observed:
            labels = (*target.tenant, result.instance_id)
            if obs.reason in KEEPS_LAST or record is None:
                last = (target.obj.get("status") or {}).get("isActive")
                active = last is True if obs.reason in KEEPS_LAST else False
                found[labels] = (None, None, active)
            else:
                budget = record.max_budget
                found[labels] = (
                    float(record.spend),
                    float(budget) if budget is not None else None,
                    obs.fields.get("isActive") is True,
                )
    return found


def _by_id(group: _Group) -> str:
    return group.instance_id


def _groups(keys: list[Target], accounts: list[AccountTarget]) -> dict[str, _Group]:
    """What each instance is read for."""
    groups: dict[str, _Group] = {}
    for key in keys:
        group = groups.setdefault(
            key.connection.instance_id,
            _Group(key.connection.instance_id, key.connection, key.tenant_proxy),
        )
        group.keys.append(key)
    for account in accounts:
        group = groups.setdefault(
            account.connection.instance_id,
            _Group(account.connection.instance_id, account.connection, account.tenant_proxy),
        )
        group.accounts.append(account)
    return groups


def _proxies_read(
    keys: list[Target],
    accounts: list[AccountTarget],
    policies: Policies,
    labels: dict[str, dict[str, str]],
) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Per namespace with tenant-owned proxies: its limit, and the instance ids read."""
    used: dict[str, set[str]] = {}
    for key in keys:
        if key.tenant_proxy:
            used.setdefault(key.tenant[0], set()).add(key.connection.instance_id)
    for account in accounts:
        if account.tenant_proxy:
            used.setdefault(account.owner[0], set()).add(account.connection.instance_id)
    limits: dict[str, int] = {}
    read: dict[str, set[str]] = {}
    for namespace, ids in used.items():
        limits[namespace] = tenant_proxy_limit(policies, Tenant(namespace, labels.get(namespace)))
        read[namespace] = set(sorted(ids)[: limits[namespace]])
    return limits, read


def _limit_tenant_proxies(
    keys: list[Target],
    accounts: list[AccountTarget],
    policies: Policies,
    labels: dict[str, dict[str, str]],
) -> tuple[list[Target], list[AccountTarget], list[tuple[Target, int]], int]:
    """Keep each namespace to its rules' tenantProxies.maxInstances tenant-owned proxies.

    The proxies read are the first ones by instance id (URL and master-key
    Secret), so the choice is the same every cycle. Returns the keys and
    accounts to read, the keys left out with their namespace's limit, and how
    many objects were left out.
    """
    limits, read = _proxies_read(keys, accounts, policies, labels)
    kept_keys: list[Target] = []
    over: list[tuple[Target, int]] = []
    for key in keys:
        namespace = key.tenant[0]
        if key.tenant_proxy and key.connection.instance_id not in read[namespace]:
            over.append((key, limits[namespace]))
        else:
            kept_keys.append(key)
    kept_accounts: list[AccountTarget] = []
    left_out = len(over)
    for account in accounts:
        namespace = account.owner[0]
        if account.tenant_proxy and account.connection.instance_id not in read[namespace]:
            log.debug(
                "not reading %s: its namespace's tenant proxies are over the limit", account.ref
            )
            left_out += 1
        else:
            kept_accounts.append(account)
    if left_out:
        log.warning(
            "%d VirtualKeys, Users and Teams are on tenant-owned proxies beyond their "
            "namespace's tenantProxies.maxInstances; they are not read",
            left_out,
        )
    return kept_keys, kept_accounts, over, left_out


def _summary(error: BaseException) -> str:
    """Our own words for an error: its kind, never its text."""
    if isinstance(error, LiteLLMError):
        return error.summary
    if isinstance(error, KubeError):
        return redact(error)
    return f"an internal error ({type(error).__name__}); the poller's log has the details"


def _observe(
    target: Target, record: KeyRecord | None, now: datetime, holder: KeyRecord | None = None
) -> Observation:
    """The observation of one key; an error in it stays with that key."""
    try:
        found = observe(record, now)
        if found.reason is Reason.UNREADABLE:
            return found
        held = alias_holder(
            holder if found.reason is Reason.KEY_NOT_FOUND else None,
            target.tenant,
            replace_foreign=target.replace_foreign,
        )
        return replace(found, fields={**found.fields, "aliasHolder": held})
    except Exception:
        log.error("could not read the key of %s", target.ref, exc_info=True)
        return unavailable(
            "LiteLLM's answer for this key could not be read; showing the last known values"
        )


def _mark_unavailable(result: _InstanceResult, group: list[Target], reason: str) -> None:
    """Every key of an instance keeps its last values, with a LiteLLMUnavailable condition."""
    result.unavailable = True
    obs = unavailable(
        f"LiteLLM at {result.instance_id} is unavailable: {reason}; "
        "showing the last known values, retrying with backoff"
    )
    result.observed = [(t, None, obs) for t in group]

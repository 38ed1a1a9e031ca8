"""One poll cycle: list VirtualKeys, fetch their keys per instance, write status.

`Poller(cluster, settings, metrics).cycle()` -> `CycleReport`:

1. List both kinds of VirtualKey. A listing error is the API server's
   problem: it raises `KubeError` and the loop backs off.
2. Read every TenancyPolicy and the Namespaces' labels, and decide each
   VirtualKey's instance with the function's own rules
   (`function.compose.owner_of`, `function.model.parse_spec`,
   `function.tenancy.authorize`). One that the function would refuse is
   skipped, so no master key is ever sent where the function would not
   send it; the function already reports it.
3. Per instance, in parallel (`--concurrency`), unless it is backing off:
   read the master key from its Secret, fetch every key in bulk
   (`fetch.KeyFetcher`), and compute each key's observation
   (`state.observe`). Any error there marks all of that instance's keys
   LiteLLMUnavailable, which keeps their last known values, and backs the
   instance off; other instances go on.
4. Write each status that changed: a merge patch of the status subresource
   with `metadata.resourceVersion`; a 409 re-reads the object and
   recomputes; 5xx, 429 and transport errors are retried a few times.
   Events follow a write that was accepted, so a conflict cannot repeat one.

Clients are kept per instance between cycles, and replaced when the master
key in the Secret changes. The master key never leaves this module's
`_client_for` and the client's headers.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from function.compose import owner_of
from function.connection import Connection
from function.model import InvalidInputError, parse_spec
from function.policy import Tenant, load_policies
from function.poller.accounts import (
    Account,
    AccountTarget,
    account_patch,
    account_targets,
    read_accounts,
)
from function.poller.backoff import Backoff
from function.poller.fetch import KeyFetcher, Wanted
from function.poller.kube import (
    LEGACY_KIND,
    PLURAL,
    Cluster,
    KubeConflictError,
    KubeError,
    KubeNotFoundError,
    KubeTemporaryError,
    XRRef,
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
    unavailable,
)
from function.tenancy import authorize

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[0-9a-f]{64}")
ClientFactory = Callable[[str, str, Settings], LiteLLMClient]


@dataclass
class Target:
    """One VirtualKey to poll."""

    ref: XRRef
    obj: dict[str, Any]
    wanted: Wanted
    connection: Connection
    tenant: tuple[str, str]  # (namespace, name) as the tenant sees it
    replace_foreign: bool = False  # its TenancyPolicy lets it replace keys it did not make


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


@dataclass
class _InstanceResult:
    instance_id: str
    observed: list[tuple[Target, KeyRecord | None, Observation]] = field(default_factory=list)
    writes: int = 0
    requests: int = 0
    unavailable: bool = False


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


def _wanted(obj: dict[str, Any], alias: str) -> Wanted:
    token = (obj.get("status") or {}).get("tokenHash")
    return Wanted(token if isinstance(token, str) and _TOKEN.fullmatch(token) else None, alias)


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
        found: list[Target] = []
        skipped = 0
        virtualkeys = self.cluster.list_virtualkeys()
        policies = load_policies(self.cluster.list_policies())
        labels = self.cluster.namespace_labels()
        for ref, obj in virtualkeys:
            if _is_claim(ref, obj):
                continue  # its XR is polled; Crossplane copies the XR's status to it
            try:
                tenant = _tenant_namespace(obj)
                spec = parse_spec(obj.get("spec"))
                granted = authorize(spec, Tenant(tenant[0], labels.get(tenant[0])), policies)
                connection = granted.connection
            except InvalidInputError as e:
                log.debug("skipping %s: %s", ref, redact(e))
                skipped += 1
                continue
            found.append(
                Target(
                    ref,
                    obj,
                    _wanted(obj, spec.key_alias),
                    connection,
                    tenant,
                    replace_foreign=granted.replace_foreign_keys,
                )
            )
        return found, skipped

    def cycle(
        self,
        should_write: Callable[[], bool] = lambda: True,
        stop: threading.Event | None = None,
    ) -> CycleReport:
        """One cycle. Raises KubeError only when the listing fails."""
        started = time.monotonic()
        report = CycleReport()
        targets, report.skipped = self.targets()
        report.keys = len(targets)
        groups: dict[str, list[Target]] = {}
        for target in targets:
            groups.setdefault(target.connection.instance_id, []).append(target)
        report.instances = len(groups)
        now = self._now()
        key_metrics: dict[tuple[str, str, str], tuple[float | None, float | None, bool]] = {}
        workers = max(1, min(self.settings.concurrency, len(groups)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="instance") as pool:
            futures = [
                pool.submit(self._poll_instance, instance_id, group, now, should_write, stop)
                for instance_id, group in groups.items()
            ]
            results = [f.result() for f in futures]
        for result in results:
            report.writes += result.writes
            report.requests += result.requests
            if result.unavailable:
                report.unavailable.append(result.instance_id)
            for target, record, obs in result.observed:
                labels = (*target.tenant, result.instance_id)
                if obs.reason in KEEPS_LAST:
                    last = (target.obj.get("status") or {}).get("isActive")
                    key_metrics[labels] = (None, None, last is True)
                else:
                    key_metrics[labels] = (
                        float(record.spend) if record else None,
                        float(record.max_budget)
                        if record and record.max_budget is not None
                        else None,
                        obs.fields.get("isActive") is True,
                    )
        self.metrics.set_keys(key_metrics)
        report.accounts, account_writes, account_requests = self._poll_accounts(should_write)
        report.writes += account_writes
        report.requests += account_requests
        with self._lock:
            report.events, self._events_sent = self._events_sent, 0
            report.write_errors, self._write_errors = self._write_errors, 0
        report.seconds = time.monotonic() - started
        return report

    def _poll_accounts(self, should_write: Callable[[], bool]) -> tuple[int, int, int]:
        """Users' and Teams' spend, per instance: (how many, writes, LiteLLM requests).

        An instance backing off, or failing now, writes nothing: every
        status keeps its last values (and the instance backs off).
        """
        try:
            objects = self.cluster.list_accounts()
        except KubeError as e:
            # Keys go on without them (an older RBAC may not grant users and teams).
            log.warning("cannot list Users and Teams: %s; their status is not updated", redact(e))
            return 0, 0, 0
        if not objects:
            return 0, 0, 0
        targets = account_targets(
            objects,
            load_policies(self.cluster.list_policies()),
            self.cluster.namespace_labels(),
            lambda ref, e: log.debug("skipping %s: %s", ref, redact(e)),
        )
        groups: dict[str, list[AccountTarget]] = {}
        for target in targets:
            groups.setdefault(target.connection.instance_id, []).append(target)
        writes = requests = 0
        for instance_id, group in groups.items():
            state = self.instance(instance_id)
            if not state.backoff.ready():
                continue
            before = state.client.requests if state.client else 0
            try:
                self._client_for(state, group[0].connection)
                assert state.client is not None  # noqa: S101 - _client_for made it.
                found = read_accounts(state.client, group, self.settings.litellm_max_pages)
            except Exception as e:
                summary = e.summary if isinstance(e, LiteLLMError) else _summary(e)
                state.backoff.failed(summary)
                log.warning(
                    "LiteLLM at %s: %s; %d users and teams keep their last values",
                    instance_id,
                    redact(e) if isinstance(e, LiteLLMError | KubeError) else summary,
                    len(group),
                )
                continue
            finally:
                if state.client is not None:
                    requests += max(0, state.client.requests - before)
            writes += sum(
                self._write_account(t, a, should_write) for t, a in zip(group, found, strict=True)
            )
        return len(targets), writes, requests

    def _write_account(
        self, target: AccountTarget, account: Account | None, should_write: Callable[[], bool]
    ) -> bool:
        """Merge-patch what changed into one User's or Team's status; whether it was written.

        No resourceVersion: the fields are the poller's alone, and a stale
        value is replaced by the next cycle.
        """
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

    def _poll_instance(
        self,
        instance_id: str,
        group: list[Target],
        now: datetime,
        should_write: Callable[[], bool],
        stop: threading.Event | None,
    ) -> _InstanceResult:
        state = self.instance(instance_id)
        metrics = self.metrics
        metrics.keys.labels(instance_id).set(len(group))
        result = _InstanceResult(instance_id)
        if not state.backoff.ready():
            _mark_unavailable(result, group, state.backoff.last_error)
        else:
            client_before = state.client
            before = state.client.requests if state.client else 0
            try:
                fetcher = self._client_for(state, group[0].connection)
                records = fetcher.fetch([t.wanted for t in group])
            except Exception as e:
                # Logs get the (redacted) detail; conditions only our own words.
                summary = e.summary if isinstance(e, LiteLLMError) else _summary(e)
                delay = state.backoff.failed(summary)
                metrics.errors.labels(instance_id, type(e).__name__).inc()
                if isinstance(e, LiteLLMError | KubeError):
                    detail = redact(e)
                else:
                    log.error("unexpected error polling %s", instance_id, exc_info=True)
                    detail = summary
                log.warning(
                    "LiteLLM at %s: %s; %d keys keep their last values; next try in %.0f s",
                    instance_id,
                    detail,
                    len(group),
                    delay,
                )
                _mark_unavailable(result, group, summary)
            else:
                state.backoff.succeeded()
                result.observed = [
                    (t, r, _observe(t, r, now, fetcher.holders.get(t.wanted.alias)))
                    for t, r in zip(group, records, strict=True)
                ]
            if state.client is not None:
                start = before if state.client is client_before else 0
                result.requests = state.client.requests - start
                metrics.requests.labels(instance_id).inc(result.requests)
        metrics.failures.labels(instance_id).set(state.backoff.failures)
        metrics.backoff.labels(instance_id).set(state.backoff.remaining())
        for target, record, obs in result.observed:
            if stop is not None and stop.is_set():
                break
            try:
                if self._write(target, record, obs, now, should_write):
                    result.writes += 1
            except Exception:
                log.error("could not write the status of %s", target.ref, exc_info=True)
                with self._lock:
                    self._write_errors += 1
        return result

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


def _summary(error: BaseException) -> str:
    """Our own words for an error: its kind, never its text."""
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

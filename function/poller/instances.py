"""The LiteLLM instances of a cycle: what each is read for, in which order, what is kept.

- `Group`: one instance's VirtualKeys, Users and Teams; `groups(keys, accounts)`.
- `in_order(groups, turn)`: platform instances first (sorted), then the
  tenant-owned proxies (sorted), starting at `turn`; `next_turn` moves it
  past the ones this cycle reached, so they take turns.
- `InstanceResult`: what reading one instance found, and what was written.
- `Instances(cluster, settings, metrics, client_factory)`: what is kept of
  each instance between cycles: its backoff, and its client, made again when
  the master key in its Secret changes. The master key never leaves
  `Instances.fetcher` and the client's headers. `deadline(group, cycle)`:
  how long an instance may be read (a tenant proxy gets at most
  `TENANT_PROXY_SHARE` of the cycle); `failed(...)`: back it off, log the
  (redacted) detail; `finish(...)`: count its requests, publish its backoff.
- `summary(error)`: an error in our own words, for conditions.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from function.poller.accounts import Account, AccountTarget
from function.poller.backoff import Backoff
from function.poller.deadline import Deadline
from function.poller.fetch import KeyFetcher
from function.poller.keys import KeyTarget, Observed
from function.poller.kube import Cluster
from function.poller.kubeapi import KubeError
from function.poller.litellm import LiteLLMClient, LiteLLMError
from function.poller.metrics import Metrics
from function.poller.redact import redact
from function.poller.settings import Settings
from function.tenancy.connection import Connection

log = logging.getLogger(__name__)

ClientFactory = Callable[[str, str, Settings], LiteLLMClient]
# The most of a cycle one tenant-owned proxy may take.
TENANT_PROXY_SHARE = 0.25


def default_client(base_url: str, master_key: str, settings: Settings) -> LiteLLMClient:
    """A real LiteLLM client."""
    return LiteLLMClient(
        base_url, master_key, settings.litellm_timeout, max_bytes=settings.litellm_max_bytes
    )


@dataclass
class Group:
    """Everything one instance is read for."""

    instance_id: str
    connection: Connection
    tenant_proxy: bool
    keys: list[KeyTarget] = field(default_factory=list)
    accounts: list[AccountTarget] = field(default_factory=list)


def groups(keys: list[KeyTarget], accounts: list[AccountTarget]) -> dict[str, Group]:
    """What each instance is read for."""
    found: dict[str, Group] = {}
    for key in keys:
        _group(found, key.connection, key.tenant_proxy).keys.append(key)
    for account in accounts:
        _group(found, account.connection, account.tenant_proxy).accounts.append(account)
    return found


def _group(found: dict[str, Group], connection: Connection, tenant_proxy: bool) -> Group:  # noqa: FBT001
    """The group of `connection`'s instance, made by the first object read from it."""
    return found.setdefault(
        connection.instance_id, Group(connection.instance_id, connection, tenant_proxy)
    )


def _by_id(group: Group) -> str:
    return group.instance_id


def in_order(found: dict[str, Group], turn: int) -> tuple[list[Group], list[Group]]:
    """Platform instances, sorted; then tenant proxies, sorted, the one at `turn` first."""
    platform = sorted((g for g in found.values() if not g.tenant_proxy), key=_by_id)
    tenants = sorted((g for g in found.values() if g.tenant_proxy), key=_by_id)
    if tenants:  # take turns: the first one left unread last time goes first
        turn %= len(tenants)
        tenants = tenants[turn:] + tenants[:turn]
    return platform, tenants


@dataclass
class InstanceResult:
    """What reading one instance found, and what writing it did."""

    instance_id: str
    observed: list[Observed] = field(default_factory=list)
    accounts: list[tuple[AccountTarget, Account | None]] = field(default_factory=list)
    writes: int = 0
    requests: int = 0
    unavailable: bool = False
    reached: bool = True


def next_turn(turn: int, tenant_results: list[InstanceResult]) -> int:
    """Where the next cycle starts among the tenant proxies: past the ones reached."""
    if not tenant_results:
        return turn
    reached = sum(1 for r in tenant_results if r.reached)
    return (turn + reached) % len(tenant_results)


@dataclass
class Instance:
    """What is kept of one instance between cycles."""

    backoff: Backoff
    client: LiteLLMClient | None = None
    fetcher: KeyFetcher | None = None
    key_digest: str = ""

    def mark(self) -> tuple[LiteLLMClient | None, int]:
        """The client and its request count now, to count a read's requests from."""
        return self.client, self.client.requests if self.client else 0


@dataclass
class Instances:
    """Every instance's backoff and client, kept between cycles.

    Master keys are read through `cluster`; clients made with `client_factory`.
    """

    cluster: Cluster
    settings: Settings
    metrics: Metrics
    client_factory: ClientFactory = default_client
    _instances: dict[str, Instance] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, instance_id: str) -> Instance:
        """The state kept for one instance (made on first use)."""
        with self._lock:
            if instance_id not in self._instances:
                backoff = Backoff(self.settings.backoff_base, self.settings.backoff_max)
                self._instances[instance_id] = Instance(backoff)
            return self._instances[instance_id]

    def close(self) -> None:
        """Close every LiteLLM client."""
        for instance in self._instances.values():
            if instance.client is not None:
                instance.client.close()

    def fetcher(self, state: Instance, connection: Connection) -> KeyFetcher:
        """The instance's fetcher, with a new client if the master key changed."""
        ref = connection.master_key
        master_key = self.cluster.read_secret_value(ref.namespace, ref.name, ref.key)
        if not master_key:
            msg = f"Secret {ref.namespace}/{ref.name} has an empty {ref.key!r}"
            raise KubeError(msg)
        digest = hashlib.sha256(master_key.encode()).hexdigest()
        if state.client is None or state.fetcher is None or digest != state.key_digest:
            if state.client is not None:
                state.client.close()
            state.client = self.client_factory(connection.base_url, master_key, self.settings)
            state.fetcher = KeyFetcher(
                state.client,
                self.settings.fetch_mode,
                max_pages=self.settings.litellm_max_pages,
                deadline=self.settings.litellm_deadline,
            )
            state.key_digest = digest
        return state.fetcher

    def deadline(self, group: Group, cycle: Deadline) -> Deadline:
        """How long this instance may be read: a tenant proxy gets a share of the cycle."""
        seconds = self.settings.litellm_deadline
        if group.tenant_proxy:
            seconds = min(seconds, self.settings.cycle_seconds * TENANT_PROXY_SHARE)
        return cycle.sooner(seconds)

    def failed(
        self,
        state: Instance,
        instance_id: str,
        error: Exception,
        count: int,
        what: str = "objects",
    ) -> None:
        """Back an instance off after `error`; logs get the (redacted) detail."""
        found = summary(error)
        delay = state.backoff.failed(found)
        self.metrics.errors.labels(instance_id, type(error).__name__).inc()
        if isinstance(error, LiteLLMError | KubeError):
            detail = redact(error)
        else:
            log.error("unexpected error polling %s", instance_id, exc_info=error)
            detail = found
        log.warning(
            "LiteLLM at %s: %s; %d %s keep their last values; next try in %.0f s",
            instance_id,
            detail,
            count,
            what,
            delay,
        )

    def finish(
        self, state: Instance, instance_id: str, mark: tuple[LiteLLMClient | None, int]
    ) -> int:
        """After a read: the requests it sent (from `mark`), counted; the backoff published."""
        requests = 0
        if state.client is not None:
            client, before = mark
            requests = state.client.requests - (before if state.client is client else 0)
            self.metrics.requests.labels(instance_id).inc(requests)
        self.publish(state, instance_id)
        return requests

    def publish(self, state: Instance, instance_id: str) -> None:
        """The instance's failures and backoff, as metrics."""
        self.metrics.failures.labels(instance_id).set(state.backoff.failures)
        self.metrics.backoff.labels(instance_id).set(state.backoff.remaining())


def summary(error: BaseException) -> str:
    """Our own words for an error: its kind, never its text."""
    if isinstance(error, LiteLLMError):
        return error.summary
    if isinstance(error, KubeError):
        return redact(error)
    return f"an internal error ({type(error).__name__}); the poller's log has the details"

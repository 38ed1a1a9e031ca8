"""The cycle's TenancyPolicies and Namespace labels, read once; the tenant-proxy cap.

The poller decides where each object may be read with the function's own
rules (`function.tenancy`), from what it lists each cycle:

- `Tenancy.read(cluster)`: every TenancyPolicy and every Namespace's labels,
  listed once a cycle. VirtualKeys, Users and Teams are all decided from
  this one reading (`tenant(namespace)`, `policies`).
- `log_skipped(ref, error)`: an object the function would refuse, or that
  cannot be read at all, is skipped; the log gets a refusal's text, or only
  the kind of any other error.
- `cap_tenant_proxies(keys, accounts, tenancy)` -> `Capped`: a namespace's
  objects on tenant-owned proxies are read from at most its rules'
  `tenantProxies.maxInstances` proxies (the largest among the rules that
  allow tenant proxies for it): the first ones by instance id (URL and
  master-key Secret), so the choice is the same every cycle. The
  VirtualKeys left out come back with their namespace's limit (they get a
  `TooManyTenantProxies` condition); Users and Teams are not written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from function.poller.kube import Cluster, XRRef
from function.poller.redact import redact
from function.tenancy.connection import Connection
from function.tenancy.policy import Policies, Tenant, load_policies
from function.validation import InvalidInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tenancy:
    """The TenancyPolicies and the Namespaces' labels, as one cycle read them."""

    policies: Policies
    labels: dict[str, dict[str, str]]

    @classmethod
    def read(cls, cluster: Cluster) -> Tenancy:
        """List every TenancyPolicy, then every Namespace's labels."""
        return cls(load_policies(cluster.list_policies()), cluster.namespace_labels())

    def tenant(self, namespace: str) -> Tenant:
        """The namespace as the policies' selectors see it."""
        return Tenant(namespace, self.labels.get(namespace))

    def tenant_proxy_limit(self, namespace: str) -> int:
        """How many tenant-owned proxies a namespace's objects may have read: the rules' largest."""
        return max(
            (
                r.spec.tenant_proxies.max_instances
                for r in self.policies.rules_for(self.tenant(namespace))
                if r.spec.tenant_proxies.allow
            ),
            default=0,
        )


def log_skipped(ref: XRRef, error: Exception) -> None:
    """Say why an object is skipped: a refusal's text, else only the error's kind."""
    if isinstance(error, InvalidInputError):
        reason = redact(error)
    else:
        reason = f"it cannot be read ({type(error).__name__})"
    log.debug("skipping %s: %s", ref, reason)


class Placed(Protocol):
    """A VirtualKey, User or Team with the instance it is read from."""

    ref: XRRef
    connection: Connection
    tenant_proxy: bool  # on a tenant-owned proxy (connectionRef.url)

    @property
    def namespace(self) -> str:
        """The tenant's namespace."""
        ...


K = TypeVar("K", bound=Placed)
A = TypeVar("A", bound=Placed)


@dataclass
class Capped(Generic[K, A]):
    """The objects to read, and the VirtualKeys left out with their namespace's limit."""

    keys: list[K]
    accounts: list[A]
    over: list[tuple[K, int]]
    left_out: int  # VirtualKeys, Users and Teams not read


def cap_tenant_proxies(keys: list[K], accounts: list[A], tenancy: Tenancy) -> Capped[K, A]:
    """Keep each namespace to its rules' tenantProxies.maxInstances tenant-owned proxies."""
    read = _proxies_read([*keys, *accounts], tenancy)
    capped: Capped[K, A] = Capped([], [], [], 0)
    for key in keys:
        limit = _limit_if_left_out(key, read)
        if limit is None:
            capped.keys.append(key)
        else:
            capped.over.append((key, limit))
    for account in accounts:
        if _limit_if_left_out(account, read) is None:
            capped.accounts.append(account)
        else:
            log.debug(
                "not reading %s: its namespace's tenant proxies are over the limit", account.ref
            )
    capped.left_out = len(keys) + len(accounts) - len(capped.keys) - len(capped.accounts)
    if capped.left_out:
        log.warning(
            "%d VirtualKeys, Users and Teams are on tenant-owned proxies beyond their "
            "namespace's tenantProxies.maxInstances; they are not read",
            capped.left_out,
        )
    return capped


def _proxies_read(objects: list[Placed], tenancy: Tenancy) -> dict[str, tuple[int, set[str]]]:
    """Per namespace with tenant-owned proxies: its limit, and the instance ids read."""
    used: dict[str, set[str]] = {}
    for obj in objects:
        if obj.tenant_proxy:
            used.setdefault(obj.namespace, set()).add(obj.connection.instance_id)
    read = {}
    for namespace, ids in used.items():
        limit = tenancy.tenant_proxy_limit(namespace)
        read[namespace] = (limit, set(sorted(ids)[:limit]))
    return read


def _limit_if_left_out(obj: Placed, read: dict[str, tuple[int, set[str]]]) -> int | None:
    """Its namespace's limit if `obj` is on a tenant proxy beyond it; None if it is read."""
    if not obj.tenant_proxy:
        return None
    limit, ids = read[obj.namespace]
    return None if obj.connection.instance_id in ids else limit

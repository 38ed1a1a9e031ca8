"""Polling VirtualKeys: which to read where, what each key's record says, and its status.

- `key_targets(virtualkeys, tenancy)` -> the `KeyTarget`s the function would
  reach, and how many it skipped. Each one's instance is decided with the
  function's own rules (`function.composed.owner_of`,
  `function.keys.spec.parse_spec`, `function.tenancy.decide.authorize`); one
  the function would refuse, or that cannot be read at all, is skipped, so
  no master key is ever sent where the function would not send it. A
  legacy claim is left to its XR: Crossplane copies the XR's status to it.
- `observe_all(targets, records, now, holders)`: each key's `Observation`
  (`state.observe`, and who holds the alias of a key not found); an error
  in one stays with that key. `unavailable_all(instance, targets, reason)`:
  every key of an instance that could not be read keeps its last values.
- `write_key(writer, (target, record, observation), now, should_write)`: the
  status patch and the events, written by `writer.Writer.write_status`;
  `key_writes(...)`: one such write per key, for `writer.Writer.each`.
- `key_metrics(observed)`: the per-key gauges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from function.composed import owner_of
from function.keys.spec import parse_spec
from function.poller.fetch import Wanted
from function.poller.kube import LEGACY_KIND, PLURAL, XRRef
from function.poller.records import KeyRecord
from function.poller.state import (
    KEEPS_LAST,
    Observation,
    Reason,
    alias_holder,
    events,
    observe,
    status_patch,
    unavailable,
)
from function.poller.tenancy import Tenancy, log_skipped
from function.poller.writer import Prepared, Writer
from function.tenancy.connection import Connection
from function.tenancy.decide import authorize

log = logging.getLogger(__name__)

# Per key: spend, max budget and whether it is active (None: keep the last series).
KeyValues = tuple[float | None, float | None, bool]


@dataclass
class KeyTarget:
    """One VirtualKey to poll."""

    ref: XRRef
    obj: dict[str, Any]
    wanted: Wanted
    connection: Connection
    tenant: tuple[str, str]  # (namespace, name) as the tenant sees it
    replace_foreign: bool = False  # its TenancyPolicy lets it replace keys it did not make
    tenant_proxy: bool = False  # on a tenant-owned proxy (connectionRef.url)

    @property
    def namespace(self) -> str:
        """The tenant's namespace."""
        return self.tenant[0]


# One key's read: its record (None: LiteLLM has no live key for it) and what it means.
Observed = tuple[KeyTarget, KeyRecord | None, Observation]


def key_targets(
    virtualkeys: list[tuple[XRRef, dict[str, Any]]], tenancy: Tenancy
) -> tuple[list[KeyTarget], int]:
    """Every VirtualKey the function would reach, with its instance; and how many were skipped."""
    found: list[KeyTarget] = []
    skipped = 0
    for ref, obj in virtualkeys:
        try:
            target = _key_target(ref, obj, tenancy)
        except Exception as e:  # a refusal, or anything else: this object alone
            log_skipped(ref, e)
            skipped += 1
            continue
        if target is not None:
            found.append(target)
    return found, skipped


def _key_target(ref: XRRef, obj: dict[str, Any], tenancy: Tenancy) -> KeyTarget | None:
    """What to read for one VirtualKey and where (None: a claim); raises on a refusal."""
    if _is_claim(ref, obj):
        return None  # its XR is polled; Crossplane copies the XR's status to it
    owner = owner_of(obj)
    tenant = (owner.namespace, owner.virtualkey)
    spec = parse_spec(obj.get("spec"))
    granted = authorize(spec, tenancy.tenant(owner.namespace), tenancy.policies)
    return KeyTarget(
        ref,
        obj,
        Wanted(spec.key_alias, tenant),
        granted.connection,
        tenant,
        replace_foreign=granted.replace_foreign_keys,
        tenant_proxy=spec.connection_ref.instance_ref is None,
    )


def _is_claim(ref: XRRef, obj: dict[str, Any]) -> bool:
    """A legacy claim (served as `virtualkeys` by the legacy XRD), bound to its XR."""
    resource_ref = (obj.get("spec") or {}).get("resourceRef")
    return (
        ref.plural == PLURAL
        and isinstance(resource_ref, dict)
        and resource_ref.get("kind") == LEGACY_KIND
    )


def observe_all(
    targets: list[KeyTarget],
    records: list[KeyRecord | None],
    now: datetime,
    holders: dict[str, KeyRecord],
) -> list[Observed]:
    """Each key's observation; `holders`: alias -> the key holding it, for keys not found."""
    return [
        (t, r, observe_key(t, r, now, holders.get(t.wanted.alias)))
        for t, r in zip(targets, records, strict=True)
    ]


def observe_key(
    target: KeyTarget, record: KeyRecord | None, now: datetime, holder: KeyRecord | None = None
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


def unavailable_all(instance_id: str, targets: list[KeyTarget], reason: str) -> list[Observed]:
    """Every key of an instance keeps its last values, with a LiteLLMUnavailable condition."""
    obs = unavailable(
        f"LiteLLM at {instance_id} is unavailable: {reason}; "
        "showing the last known values, retrying with backoff"
    )
    return [(t, None, obs) for t in targets]


def key_writes(
    writer: Writer, observed: Iterable[Observed], now: datetime, should_write: Callable[[], bool]
) -> Iterator[tuple[XRRef, Callable[[], bool]]]:
    """Each key's status write, for `Writer.each`."""
    for one in observed:
        yield one[0].ref, partial(write_key, writer, one, now, should_write)


def write_key(
    writer: Writer, observed: Observed, now: datetime, should_write: Callable[[], bool]
) -> bool:
    """Write one key's status if it changed; whether a write was accepted."""
    target, record, obs = observed

    def prepare(obj: dict[str, Any]) -> Prepared | None:
        return _prepare(obj, record, obs, now)

    written = writer.write_status(target.ref, target.obj, prepare, should_write)
    if written is None:
        return False
    target.obj = written
    return True


def _prepare(
    obj: dict[str, Any], record: KeyRecord | None, obs: Observation, now: datetime
) -> Prepared | None:
    """The merge patch and the events for `obj`, or None when its status is current."""
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    generation = meta.get("generation")
    patch = status_patch(status, obs, now, generation if isinstance(generation, int) else None)
    if patch is None:
        return None
    body = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": patch}
    return Prepared(body, events(status, record, obs), _event_target(obj))


def _event_target(obj: dict[str, Any]) -> dict[str, Any]:
    """Where tenants look: the XR itself, or a legacy XR's claim."""
    meta = obj.get("metadata") or {}
    claim = (obj.get("spec") or {}).get("claimRef")
    if not meta.get("namespace") and isinstance(claim, dict) and claim.get("namespace"):
        return claim
    return obj


def key_metrics(
    observed: Iterable[tuple[str, list[Observed]]],
) -> dict[tuple[str, str, str], KeyValues]:
    """Per key (namespace, name, instance): spend, max budget and whether it is active."""
    found: dict[tuple[str, str, str], KeyValues] = {}
    for instance_id, keys in observed:
        for target, record, obs in keys:
            found[(*target.tenant, instance_id)] = _values(target, record, obs)
    return found


def _values(target: KeyTarget, record: KeyRecord | None, obs: Observation) -> KeyValues:
    if obs.reason in KEEPS_LAST or record is None:
        last = (target.obj.get("status") or {}).get("isActive")
        return (None, None, last is True if obs.reason in KEEPS_LAST else False)
    budget = record.max_budget
    return (
        float(record.spend),
        float(budget) if budget is not None else None,
        obs.fields.get("isActive") is True,
    )

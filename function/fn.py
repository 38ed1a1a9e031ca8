"""The gRPC servicer: protobuf in, plain dicts to `compose`, protobuf out.

Nothing here decides anything about keys. It converts the request, calls
`function.keys.compose.compose`, and writes the result into the response. Input
a person must fix becomes a Fatal result; any other failure becomes a Fatal
result too, with a log line, never a gRPC error: a Fatal result makes
Crossplane apply nothing and delete nothing, which is what keeps a working
key working.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from crossplane.function import logging, resource, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import json_format, struct_pb2

from function import observed
from function.accounts import identity
from function.accounts.requests import ACCOUNT_KIND
from function.accounts.teams import compose_team
from function.accounts.users import compose_user
from function.cache import BytesLRU
from function.composed import Composed, Given, owner_of
from function.input import parse_input
from function.keys.compose import compose, key_requests
from function.provider_http import mask
from function.provider_http.request import REQUEST_API_VERSION, REQUEST_KIND
from function.tenancy.policy import POLICY_API_VERSION, POLICY_KIND, load_policies
from function.validation import InvalidInputError

_READY = {True: fnv1.READY_TRUE, False: fnv1.READY_FALSE}
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
# What the function asks Crossplane to read for it (required resources): every
# TenancyPolicy, and the tenant's Namespace for its labels.
POLICIES = "tenancy-policies"
NAMESPACE = "tenant-namespace"
# ...and, per observed key Request, the Secret provider-http masks its key with
# (only whether it exists is read: its data never reaches compose).
MASK_PREFIX = "generated-"
# Compose runs off the event loop, in this many threads: one tenant's heavy run
# never holds up another's RunFunction.
WORKERS = 4


_STRUCTS: BytesLRU[str, bytes] = BytesLRU(32 * 1024 * 1024)


def _struct_bytes(body: str) -> bytes:
    """A resource as a serialized Struct; steady-state runs repeat the same bodies."""
    found = _STRUCTS.get(body)
    if found is None:
        found = json_format.Parse(body, struct_pb2.Struct()).SerializeToString()
        _STRUCTS.put(body, found, len(body) + len(found))
    return found


def _where(xr: dict[str, Any]) -> str:
    """namespace/name of the XR for messages, whatever shape its metadata has."""
    meta = xr.get("metadata")
    if not isinstance(meta, dict):
        return "(unnamed)"
    parts = [str(meta.get(k) or "")[:253] for k in ("namespace", "name")]
    return "/".join(p for p in parts if p) or "(unnamed)"


KINDS = {
    "VirtualKey": "VirtualKey",
    "XVirtualKey": "VirtualKey",
    "User": "User",
    "XUser": "User",
    "Team": "Team",
    "XTeam": "Team",
}
# Each kind's one orchestrating function.
COMPOSERS: dict[str, Callable[[Given], Composed]] = {
    "VirtualKey": compose,
    "User": compose_user,
    "Team": compose_team,
}
USERS = "users"
TEAMS = "teams"
USER_REQUESTS = "user-requests"
TEAM_REQUESTS = "team-requests"
XR_API_VERSION = "auth.litellm.ai/v1alpha1"


def _kind(xr: dict[str, Any]) -> str:
    return KINDS.get(str(xr.get("kind") or ""), "VirtualKey")


def run(req: fnv1.RunFunctionRequest, now: datetime | None = None) -> fnv1.RunFunctionResponse:
    """Run the function on one request at `now` (default: the clock); never raises."""
    return _run(req, now or datetime.now(UTC))[0]


def _run(
    req: fnv1.RunFunctionRequest, now: datetime
) -> tuple[fnv1.RunFunctionResponse, datetime | None]:
    """The response, and when time alone would change it (None: never)."""
    rsp = response.to(req)
    log = logging.get_logger()
    where = "(unnamed)"
    kind = "VirtualKey"
    try:
        xr = observed.composite(req.observed.composite.resource)
        where, kind = _where(xr), _kind(xr)
        composed = _compose(req, rsp, xr, kind, now)
    except InvalidInputError as e:
        log.info("invalid input", kind=kind, name=where, error=str(e))
        response.fatal(rsp, f"{kind} {where}: {e}")
        return rsp, None
    except Exception:  # the last line of defence: report, never crash the server
        log.exception("unexpected error", kind=kind, name=where)
        response.fatal(
            rsp,
            f"{kind} {where}: function-litellm-keys hit an internal error; nothing was "
            "changed. Its logs have the details; please report it.",
        )
        return rsp, None
    if composed is None:
        return rsp, None  # First call of this run: Crossplane fetches them and calls again.
    _write(rsp, composed, now)
    return rsp, composed.revisit_at


def _compose(
    req: fnv1.RunFunctionRequest,
    rsp: fnv1.RunFunctionResponse,
    xr: dict[str, Any],
    kind: str,
    now: datetime,
) -> Composed | None:
    """The kind's composer, given what it reads (None: asked Crossplane for it first)."""
    namespace = owner_of(xr).namespace
    raw_input = observed.plain(req.input) if req.HasField("input") else None
    settings = parse_input(raw_input)
    seen = {name: observed.composed(r.resource) for name, r in req.observed.resources.items()}
    masks = key_requests(seen) if kind == "VirtualKey" else {}
    _require(
        rsp,
        namespace,
        {n: mask.secret_name(namespace, r) for n, r in masks.items()},
        settings.mask_secret_namespace,
        _references(xr, kind),
    )
    if any(w not in req.required_resources for w in rsp.requirements.resources):
        return None
    tenant_namespace = _required(req, NAMESPACE)
    labels = _labels(tenant_namespace[0]) if tenant_namespace else None
    given = Given(
        xr,
        seen,
        raw_input,
        load_policies(_required(req, POLICIES)),
        labels,
        users=_required(req, USERS),
        teams=_required(req, TEAMS),
        user_requests=_required(req, USER_REQUESTS),
        team_requests=_required(req, TEAM_REQUESTS),
        unmasked=frozenset(n for n in masks if not req.required_resources[MASK_PREFIX + n].items),
        now=now,
    )
    return COMPOSERS[kind](given)


def _references(xr: dict[str, Any], kind: str) -> dict[str, Reference]:
    """What else the kind reads: Users, Teams and their Requests, by name or by label.

    Read from the unvalidated spec, only to ask Crossplane for them; the
    spec is validated before anything is used.
    """
    spec = xr.get("spec") if isinstance(xr.get("spec"), dict) else {}
    assert isinstance(spec, dict)  # noqa: S101 - narrowed above.
    if kind == "Team":
        # Every User of the namespace, and every user Request (by its label).
        return {
            USERS: Reference("User", None),
            USER_REQUESTS: Reference(REQUEST_KIND, None, {ACCOUNT_KIND: "user"}),
        }
    if kind != "VirtualKey":
        return {}
    wanted: dict[str, Reference] = {}
    for field, (objects, requests, ref_kind) in {
        "userRef": (USERS, USER_REQUESTS, "User"),
        "teamRef": (TEAMS, TEAM_REQUESTS, "Team"),
    }.items():
        ref = spec.get(field)
        name = ref.get("name") if isinstance(ref, dict) else None
        if isinstance(name, str) and 0 < len(name) <= 253:  # noqa: PLR2004 - a k8s name.
            wanted[objects] = Reference(ref_kind, name)
            wanted[requests] = Reference(REQUEST_KIND, identity.request_name(ref_kind, name))
    return wanted


@dataclass(frozen=True)
class Reference:
    """One object (by name) or every object (by labels; None: all) of a kind in the namespace."""

    kind: str
    name: str | None
    labels: dict[str, str] | None = None


def _require(
    rsp: fnv1.RunFunctionResponse,
    namespace: str,
    masks: dict[str, str],
    mask_namespace: str,
    references: dict[str, Reference],
) -> None:
    """Ask for every TenancyPolicy, the tenant's Namespace, mask Secrets and references.

    All of them derive from the observed state alone, so they are the same on
    Crossplane's second call, which is what ends its loop.
    """
    policies = rsp.requirements.resources[POLICIES]
    policies.api_version, policies.kind = POLICY_API_VERSION, POLICY_KIND
    policies.match_labels.SetInParent()  # no labels: every TenancyPolicy
    tenant = rsp.requirements.resources[NAMESPACE]
    tenant.api_version, tenant.kind, tenant.match_name = "v1", "Namespace", namespace
    for name, secret in masks.items():
        found = rsp.requirements.resources[MASK_PREFIX + name]
        found.api_version, found.kind, found.match_name = "v1", "Secret", secret
        found.namespace = mask_namespace
    for requirement, wanted in references.items():
        ref = rsp.requirements.resources[requirement]
        ref.api_version = REQUEST_API_VERSION if wanted.kind == REQUEST_KIND else XR_API_VERSION
        ref.kind = wanted.kind
        ref.namespace = namespace
        if wanted.name is not None:
            ref.match_name = wanted.name
        else:
            ref.match_labels.SetInParent()  # every one in the namespace with these labels
            for key, value in (wanted.labels or {}).items():
                ref.match_labels.labels[key] = value


def _required(req: fnv1.RunFunctionRequest, name: str) -> list[dict[str, Any]]:
    return [observed.plain(item.resource) for item in req.required_resources[name].items]


def _labels(namespace: dict[str, Any]) -> dict[str, str]:
    meta = namespace.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, dict):
        return {}
    return {str(k): v for k, v in labels.items() if isinstance(v, str)}


def _write(rsp: fnv1.RunFunctionResponse, composed: Composed, now: datetime) -> None:
    for name, desired in composed.resources.items():
        target = rsp.desired.resources[name]
        target.resource.Clear()
        if desired.body.get("kind") == "Secret":
            resource.update(target, desired.body)  # never cache a key
        else:
            target.resource.MergeFromString(_struct_bytes(json.dumps(desired.body, sort_keys=True)))
        target.ready = _READY[desired.ready]
    # Merge into the status earlier pipeline steps asked for; never copy the
    # observed status: the poller owns currentSpend and friends.
    earlier = observed.plain(rsp.desired.composite.resource).get("status") or {}
    resource.update(rsp.desired.composite, {"status": {**earlier, **composed.status}})
    state = composed.state
    if not state.ready:
        # Crossplane reads readiness from the composed resources alone; a Team
        # whose members are not in yet, or a User whose key is not, is not ready.
        rsp.desired.composite.ready = fnv1.READY_FALSE
    response.set_conditions(
        rsp,
        resource.Condition(
            typ=composed.condition,
            status="True" if state.ready else "False",
            reason=state.reason,
            message=state.message,
        ),
    )
    for warning in composed.warnings:
        response.warning(rsp, warning)
    for event in composed.events:
        response.normal(rsp, event)
    if composed.revisit_at is not None:
        # Crossplane calls again within the TTL: no later than when time
        # alone changes the answer (a rotation due, a grace period ending).
        wait = max(1, int((composed.revisit_at - now).total_seconds()) + 1)
        rsp.meta.ttl.seconds = min(rsp.meta.ttl.seconds or wait, wait)


class FunctionRunner(grpcv1.FunctionRunnerServiceServicer):
    """Serves RunFunction for Crossplane.

    The function is pure, so a response depends on the request alone, and
    Crossplane sends the same request again and again for a VirtualKey that
    has not changed. Responses are kept by the SHA-256 of the request's
    deterministic encoding, least recently used first out, up to
    `cache_bytes` of serialized responses (0 turns this off). A first run's
    fresh key is then also stable until Crossplane has applied it, which is
    what it should be.
    """

    def __init__(self, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        """A runner keeping up to `cache_bytes` of responses."""
        self.cache_bytes = cache_bytes
        self._cache: BytesLRU[bytes, tuple[bytes, datetime | None]] = BytesLRU(cache_bytes)
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="compose")

    async def RunFunction(
        self, req: fnv1.RunFunctionRequest, _: grpc.aio.ServicerContext
    ) -> fnv1.RunFunctionResponse:
        """Compose the resources for one XR: from the cache, or in a worker thread.

        A cache hit is answered on the event loop (a hash and a lookup, bounded by
        gRPC's message size); composing runs in a worker thread, so one tenant's
        heavy run never holds up another's RunFunction.
        """
        loop = asyncio.get_running_loop()
        if self.cache_bytes <= 0:
            return await loop.run_in_executor(self._pool, run, req)
        key = hashlib.sha256(req.SerializeToString(deterministic=True)).digest()
        now = datetime.now(UTC)
        cached = self._cache.get(key)
        if cached is not None and (cached[1] is None or now < cached[1]):
            hit = fnv1.RunFunctionResponse()
            hit.ParseFromString(cached[0])
            return hit
        rsp, until = await loop.run_in_executor(self._pool, _run, req, now)
        data = rsp.SerializeToString()
        # A response that time changes is kept only until then.
        self._cache.put(key, (data, until), len(data) + len(key))
        return rsp

"""A small stand-in for the cluster: Crossplane's composition loop and provider-http.

`Cluster` keeps one VirtualKey XR, the resources composed for it and the
Secrets, and plays the two controllers the way they act in a cluster:

- `compose()`: Crossplane calls the function over gRPC with the observed
  resources, then applies the desired ones (server-side apply keeps a
  Request's status), deletes what is no longer desired, and applies nothing
  at all after a Fatal result (crossplane-function-notes.md §1, §3).
- `provider()`: provider-http reconciles every Request (tests/e2e/provider_http.py),
  including the deletion of Requests that are no longer desired.
- `converge()`: both, until nothing changes.

It is a test harness for the end-to-end suite, not a Kubernetes emulator.
"""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime
from typing import Any

from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from tests.e2e.provider_http import ProviderHTTP, ReconcileResult
from tests.grpc_harness import (
    FunctionServer,
    make_request,
    mask_secrets_found,
    required_resources,
)

Obj = dict[str, Any]


class FakeClock:
    """Seconds that only move when told, for provider-http's 30 s create grace."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Cluster:
    """One VirtualKey with its composed resources, Secrets and controllers."""

    def __init__(
        self,
        function: FunctionServer,
        provider: ProviderHTTP,
        fn_input: Obj | None,
        clock: FakeClock,
        policies: list[Obj] | None = None,
    ) -> None:
        self.function = function
        self.policies = policies
        self.clock = clock
        self.provider_http = provider
        self.fn_input = fn_input
        self.xr: Obj | None = None
        self.composed: dict[str, Obj] = {}
        self.deleting: dict[str, Obj] = {}
        self.last: fnv1.RunFunctionResponse | None = None
        self.results: list[tuple[int, str]] = []  # every result (severity, message) so far

    @property
    def secrets(self) -> Any:
        return self.provider_http.secrets

    def apply_xr(self, xr: Obj) -> None:
        self.xr = copy.deepcopy(xr)

    def delete_xr(self) -> None:
        """Deleting the XR garbage-collects everything it composed."""
        self.xr = None
        for name in list(self.composed):
            self._drop(name)

    # -- Crossplane ---------------------------------------------------------------------
    def compose(self) -> fnv1.RunFunctionResponse:
        assert self.xr is not None
        observed = {name: copy.deepcopy(body) for name, body in self.composed.items()}
        # Crossplane fetches what the function requires: the TenancyPolicies,
        # the tenant's Namespace and the Secrets provider-http masks keys with.
        required = required_resources(self.xr, self.policies)
        required |= mask_secrets_found(
            self.xr, observed, lambda namespace, name: (namespace, name) in self.secrets
        )
        rsp = self.function.run(make_request(self.xr, observed, self.fn_input, "", required))
        self.last = rsp
        self.results.extend((r.severity, r.message) for r in rsp.results)
        if any(r.severity == fnv1.SEVERITY_FATAL for r in rsp.results):
            return rsp  # Crossplane applies nothing and deletes nothing.
        status = resource.struct_to_dict(rsp.desired.composite.resource).get("status") or {}
        self.xr.setdefault("status", {}).update(status)
        for name, desired in rsp.desired.resources.items():
            self._apply(name, resource.struct_to_dict(desired.resource))
        for name in set(self.composed) - set(rsp.desired.resources):
            self._drop(name)
        return rsp

    def _apply(self, name: str, body: Obj) -> None:
        old = self.composed.get(name)
        if body["kind"] == "Secret":
            meta = body["metadata"]
            data = {k: base64.b64decode(v).decode() for k, v in body.get("data", {}).items()}
            stored = self.secrets.setdefault((meta["namespace"], meta["name"]), {})
            stored.update(data)  # SSA owns only the keys it sends
            body = {**body, "data": dict(body.get("data", {}))}
        elif old is not None:
            body = {**body, "status": old.get("status", {})}
            body["metadata"] = {**old.get("metadata", {}), **body["metadata"]}
        else:
            # The API server's own stamp, which the function reads a key's age from.
            created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            body["metadata"] = {**body["metadata"], "creationTimestamp": created}
        self.composed[name] = body

    def _drop(self, name: str) -> None:
        body = self.composed.pop(name)
        if body["kind"] == "Secret":
            meta = body["metadata"]
            self.secrets.pop((meta["namespace"], meta["name"]), None)
        else:
            self.deleting[name] = body

    def lose_secret(self) -> None:
        """Someone deletes the key Secret: Crossplane no longer observes it."""
        body = self.composed.pop("key")
        self.secrets.pop((body["metadata"]["namespace"], body["metadata"]["name"]), None)

    # -- provider-http --------------------------------------------------------------------
    def provider(self) -> dict[str, ReconcileResult]:
        results = {}
        for name, body in self.composed.items():
            if body["kind"] == "Request":
                results[name] = self.provider_http.reconcile(body)
        for name, body in list(self.deleting.items()):
            result = self.provider_http.reconcile(body, deleting=True)
            results[f"deleting/{name}"] = result
            if result.finalizer_removed:
                del self.deleting[name]
        return results

    def converge(self, rounds: int = 6) -> list[dict[str, ReconcileResult]]:
        """Function and provider in turn until every Request is up to date."""
        history = []
        for _ in range(rounds):
            if self.xr is not None:
                self.compose()
            results = self.provider()
            history.append(results)
            if any(r.action == "wait" for r in results.values()):
                # provider-http requeues until its 30 s create grace has passed.
                self.clock.advance(31)
            settled = all(r.action == "none" and r.error is None for r in results.values())
            if settled and not self.deleting:
                break
        if self.xr is not None:
            self.compose()
        return history

    # -- what a person would look at ----------------------------------------------------
    def key(self) -> str:
        assert self.xr is not None
        name = self.xr["status"]["keySecretRef"]
        return str(self.secrets[(self.namespace, name)]["key"])

    @property
    def namespace(self) -> str:
        assert self.xr is not None
        return str(self.xr["metadata"]["namespace"])

    def condition(self) -> tuple[str, str, str]:
        assert self.last is not None
        (c,) = self.last.conditions
        status = {fnv1.STATUS_CONDITION_TRUE: "True"}.get(c.status, "False")
        return status, c.reason, c.message

    def request(self) -> Obj:
        (body,) = [b for b in self.composed.values() if b["kind"] == "Request"]
        return body

"""Run the function's real gRPC server on loopback, as Crossplane calls it.

`FunctionServer` starts `FunctionRunner` on a grpc.aio server in a thread of
its own, on a free 127.0.0.1 port, and gives a synchronous client stub.
`make_request` builds a RunFunctionRequest from plain dicts, with the
required resources Crossplane would have fetched (by default the shipped
TenancyPolicy, examples/install/tenancy-policy.yaml, the tenant's Namespace, and for
each observed key Request the mask Secret provider-http wrote, function.provider_http.mask).
Tests and the benchmark share this module.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import yaml
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from function.composed import owner_of
from function.fn import (
    MASK_PREFIX,
    NAMESPACE,
    POLICIES,
    TEAM_REQUESTS,
    TEAMS,
    USER_REQUESTS,
    USERS,
    FunctionRunner,
)
from function.keys.compose import key_requests
from function.provider_http import mask

_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class FunctionServer:
    """A gRPC server with one servicer, on loopback, for as long as the context lasts."""

    def __init__(self, servicer: grpcv1.FunctionRunnerServiceServicer | None = None) -> None:
        self._servicer = servicer or FunctionRunner()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: grpc.aio.Server | None = None
        self.address = ""
        self.channel: grpc.Channel | None = None
        self.stub: grpcv1.FunctionRunnerServiceStub | None = None

    def __enter__(self) -> FunctionServer:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        self.address = f"127.0.0.1:{port}"
        self.channel = grpc.insecure_channel(self.address)
        self.stub = grpcv1.FunctionRunnerServiceStub(self.channel)
        return self

    async def _start(self) -> int:
        self._server = grpc.aio.server()
        grpcv1.add_FunctionRunnerServiceServicer_to_server(self._servicer, self._server)
        port: int = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return port

    def __exit__(self, *_: object) -> None:
        if self.channel is not None:
            self.channel.close()
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(None), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    def run(self, req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
        """Call RunFunction over the wire."""
        assert self.stub is not None
        rsp: fnv1.RunFunctionResponse = self.stub.RunFunction(req, timeout=30)
        return rsp


def example_policies() -> list[dict[str, Any]]:
    """The shipped TenancyPolicies (examples/install/tenancy-policy.yaml)."""
    text = (_EXAMPLES / "install" / "tenancy-policy.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def namespace_object(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Namespace as the API server returns it."""
    meta: dict[str, Any] = {"name": name, **({"labels": labels} if labels else {})}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def mask_secrets_found(
    xr: dict[str, Any],
    observed: dict[str, dict[str, Any]],
    exists: Callable[[str, str], bool] = lambda _namespace, _name: True,
) -> dict[str, list[dict[str, Any]]]:
    """The mask Secrets Crossplane fetches: those `exists(namespace, name)` says exist."""
    namespace = owner_of(xr).namespace
    found: dict[str, list[dict[str, Any]]] = {}
    for resource_name, request in key_requests(observed).items():
        secret = mask.secret_name(namespace, request)
        meta = {"name": secret, "namespace": mask.DEFAULT_NAMESPACE}
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": meta}
        exists_now = exists(mask.DEFAULT_NAMESPACE, secret)
        found[MASK_PREFIX + resource_name] = [body] if exists_now else []
    return found


def required_resources(
    xr: dict[str, Any],
    policies: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
    *,
    users: list[dict[str, Any]] | None = None,
    teams: list[dict[str, Any]] | None = None,
    requests: list[dict[str, Any]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """What Crossplane fetches for the function: the policies, the XR's Namespace, and
    the namespace's Users and Teams (`users`, `teams`; none by default) with their
    Requests (`requests`, as provider-http left them)."""
    namespace = owner_of(xr).namespace
    found = [r for r in requests or [] if r.get("kind") == "Request"]
    return {
        POLICIES: example_policies() if policies is None else policies,
        NAMESPACE: [namespace_object(namespace, labels)],
        USERS: users or [],
        TEAMS: teams or [],
        USER_REQUESTS: [r for r in found if str(r["metadata"]["name"]).endswith("-user")],
        TEAM_REQUESTS: [r for r in found if str(r["metadata"]["name"]).endswith("-team")],
    }


def make_request(
    xr: dict[str, Any],
    observed: dict[str, dict[str, Any]] | None = None,
    fn_input: dict[str, Any] | None = None,
    tag: str = "",
    required: dict[str, list[dict[str, Any]]] | None = None,
) -> fnv1.RunFunctionRequest:
    """A RunFunctionRequest for an XR, its observed composed resources and an input.

    `required` are the required resources, by requirement name; None gives
    `required_resources(xr)`, `{}` none at all (the first call of a run). A
    mask Secret `required` does not name exists, as provider-http wrote it.
    """
    req = fnv1.RunFunctionRequest(meta=fnv1.RequestMeta(tag=tag))
    try:
        if required is None:
            required = required_resources(xr)
        if required:
            required = {**mask_secrets_found(xr, observed or {}), **required}
    except ValueError:  # an XR without a namespace: the function refuses it anyway
        required = {}
    for name, objects in required.items():
        found = req.required_resources[name]
        for obj in objects:
            resource.update(found.items.add(), obj)
    resource.update(req.observed.composite, xr)
    for name, body in (observed or {}).items():
        resource.update(req.observed.resources[name], body)
    if fn_input is not None:
        req.input.CopyFrom(resource.dict_to_struct(fn_input))
    return req

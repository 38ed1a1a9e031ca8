"""The gRPC servicer: protobuf in, plain dicts to `compose`, protobuf out.

Nothing here decides anything about keys. It converts the request, calls
`function.compose.compose`, and writes the result into the response. Input
a person must fix becomes a Fatal result; any other failure becomes a Fatal
result too, with a log line, never a gRPC error: a Fatal result makes
Crossplane apply nothing and delete nothing, which is what keeps a working
key working.
"""

from __future__ import annotations

from typing import Any

import grpc
from crossplane.function import logging, resource, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import json_format

from function.compose import CONDITION_TYPE, Composed, compose
from function.model import InvalidInputError

_READY = {True: fnv1.READY_TRUE, False: fnv1.READY_FALSE}


def _plain(message: Any) -> dict[str, Any]:
    plain = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return plain if isinstance(plain, dict) else {}


def _where(xr: dict[str, Any]) -> str:
    """namespace/name of the XR for messages, whatever shape its metadata has."""
    meta = xr.get("metadata")
    if not isinstance(meta, dict):
        return "(unnamed)"
    parts = [str(meta.get(k) or "")[:253] for k in ("namespace", "name")]
    return "/".join(p for p in parts if p) or "(unnamed)"


def run(req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
    """Run the function on one request; never raises."""
    rsp = response.to(req)
    log = logging.get_logger()
    where = "(unnamed)"
    try:
        xr = _plain(req.observed.composite.resource)
        where = _where(xr)
        observed = {name: _plain(r.resource) for name, r in req.observed.resources.items()}
        raw_input = _plain(req.input) if req.HasField("input") else None
        composed = compose(xr, observed, raw_input)
    except InvalidInputError as e:
        log.info("invalid input", virtualkey=where, error=str(e))
        response.fatal(rsp, f"VirtualKey {where}: {e}")
        return rsp
    except Exception:  # the last line of defence: report, never crash the server
        log.exception("unexpected error", virtualkey=where)
        response.fatal(
            rsp,
            f"VirtualKey {where}: function-litellm-keys hit an internal error; nothing was "
            "changed. Its logs have the details; please report it.",
        )
        return rsp
    _write(rsp, composed)
    return rsp


def _write(rsp: fnv1.RunFunctionResponse, composed: Composed) -> None:
    for name, desired in composed.resources.items():
        target = rsp.desired.resources[name]
        target.resource.Clear()
        resource.update(target, desired.body)
        target.ready = _READY[desired.ready]
    # Merge into the status earlier pipeline steps asked for; never copy the
    # observed status: the poller owns currentSpend and friends.
    earlier = _plain(rsp.desired.composite.resource).get("status") or {}
    resource.update(rsp.desired.composite, {"status": {**earlier, **composed.status}})
    state = composed.state
    response.set_conditions(
        rsp,
        resource.Condition(
            typ=CONDITION_TYPE,
            status="True" if state.ready else "False",
            reason=state.reason,
            message=state.message,
        ),
    )
    for warning in composed.warnings:
        response.warning(rsp, warning)


class FunctionRunner(grpcv1.FunctionRunnerServiceServicer):
    """Serves RunFunction for Crossplane."""

    async def RunFunction(
        self, req: fnv1.RunFunctionRequest, _: grpc.aio.ServicerContext
    ) -> fnv1.RunFunctionResponse:
        """Compose the resources for one VirtualKey."""
        return run(req)

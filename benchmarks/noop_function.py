"""The floor: a function on the same SDK that composes nothing.

It answers every RunFunction with `response.to(req)` (the desired state
passed through, a default TTL), so its latency is what the SDK, protobuf
and gRPC cost without any function code.
"""

from __future__ import annotations

import grpc
from crossplane.function import response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1


class NoopRunner(grpcv1.FunctionRunnerServiceServicer):
    """Returns the request's desired state unchanged."""

    async def RunFunction(
        self, req: fnv1.RunFunctionRequest, _: grpc.aio.ServicerContext
    ) -> fnv1.RunFunctionResponse:
        """Do nothing, the SDK's way."""
        return response.to(req)

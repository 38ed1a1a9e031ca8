"""Observed resources as Crossplane would send them, built from plain facts."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from function.keys.secrets import token_of
from tests.conftest import load_example

# A key of the shape the function makes; fixed so that runs are comparable.
FIXED_KEY = "sk-" + "Fx3dTestKey0123456789abcdefghijklmnopqrstuv"
assert len(FIXED_KEY) == 46


def observed_secret(
    key: str = FIXED_KEY, name: str = "example-service-litellm-key"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "team-a"},
        "type": "Opaque",
        "data": {"key": base64.b64encode(key.encode()).decode()},
    }


def observed_request(
    key: str = FIXED_KEY,
    *,
    code: int | None = 200,
    path: str = "/key/info",
    body: Any = None,
    error: str | None = None,
    synced_error: str | None = None,
) -> dict[str, Any]:
    """A provider-http Request after its last call answered `code` on `path`."""
    token = token_of(key)
    status: dict[str, Any] = {}
    if code is not None:
        status["response"] = {"statusCode": code, "body": json.dumps(body or {})}
        status["requestDetails"] = {
            "method": "GET" if path == "/key/info" else "POST",
            "url": f"http://litellm-example-service.litellm.svc.cluster.local:4000{path}"
            + (f"?key={token}" if path == "/key/info" else ""),
        }
    if error:
        status["error"] = error
    if synced_error:
        status["conditions"] = [
            {
                "type": "Synced",
                "status": "False",
                "reason": "ReconcileError",
                "message": synced_error,
            }
        ]
    return {
        "apiVersion": "http.m.crossplane.io/v1alpha2",
        "kind": "Request",
        "metadata": {"name": f"example-service-{token[:8]}", "namespace": "team-a"},
        "spec": {"forProvider": {"payload": {"body": json.dumps({"token": token})}}},
        "status": status,
    }


def request_resource_name(key: str = FIXED_KEY) -> str:
    return f"request-{token_of(key)[:10]}"


def legacy_xr() -> dict[str, Any]:
    """The cluster-scoped XR Crossplane makes for the seed's legacy claim."""
    xr = copy.deepcopy(load_example("legacy/virtualkey.yaml"))
    xr["kind"] = "XVirtualKey"
    xr["metadata"] = {
        "name": "example-service-x7k2p",
        "labels": {
            "crossplane.io/claim-name": "example-service",
            "crossplane.io/claim-namespace": "team-a",
        },
    }
    xr["spec"]["claimRef"] = {
        "apiVersion": "auth.litellm.ai/v1alpha1",
        "kind": "VirtualKey",
        "name": "example-service",
        "namespace": "team-a",
    }
    return xr

"""One `compose` of the seed VirtualKey at a fixed time, and what it composed.

`compose` is pure and takes the time, so every phase of a key's life is one
call with the observed state Crossplane would send. Shared by the key tests
(tests/keys/test_flow.py, test_rotation.py).
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from typing import Any

from function.composed import Composed, Given
from function.keys.compose import compose
from function.keys.secrets import token_of
from function.tenancy.policy import load_policies
from tests.conftest import load_example
from tests.fixtures import FIXED_KEY, observed_request, observed_secret, request_resource_name

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
TOKEN = token_of(FIXED_KEY)
POLICIES = load_policies([load_example("install/tenancy-policy.yaml")])


def xr(rotation_spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    """The seed VirtualKey; `status` is whatever a tenant wrote there, which counts for nothing."""
    found = copy.deepcopy(load_example("virtualkey/virtualkey.yaml"))
    if rotation_spec is not None:
        found["spec"]["rotation"] = rotation_spec
    found["status"] = {"tokenHash": TOKEN, "currentSpend": "2", **status}
    return found


BORN = "2026-11-01T00:00:00Z"  # when the current key's Request was created


def info(
    key: str,
    alias: str = "example-service",
    spend: float = 2.0,
    *,
    born: str = BORN,
    notes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Request of `key` after LiteLLM's /key/info answered, with the function's memory."""
    found = observed_request(key, body={"info": {"key_alias": alias, "spend": spend}})
    found["metadata"]["creationTimestamp"] = born
    if notes:
        found["metadata"]["annotations"] = dict(notes)
    return found


def run(
    vk: dict[str, Any],
    observed: dict[str, Any],
    now: datetime = NOW,
    policies: Any = POLICIES,
) -> Composed:
    return compose(Given(vk, observed, None, policies, {}, now=now))


def body(composed: Composed, name: str) -> dict[str, Any]:
    return composed.resources[name].body


def payload(composed: Composed, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        body(composed, name)["spec"]["forProvider"]["payload"]["body"]
    )
    return found


def notes(composed: Composed, name: str) -> dict[str, str]:
    found: dict[str, str] = body(composed, name)["metadata"].get("annotations") or {}
    return found


def secret_key(composed: Composed, name: str) -> str:
    return base64.b64decode(body(composed, name)["data"]["key"]).decode()


STEADY = {"key": observed_secret(), request_resource_name(): info(FIXED_KEY)}

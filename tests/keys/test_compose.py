"""What `function.keys.compose` composes for one VirtualKey, called directly.

A table of named cases: each is what Crossplane observed of the seed VirtualKey,
and what `compose` must then return: which key the Secret holds, which Requests
are desired, the condition and whether a person is warned. The same runs over
gRPC are in tests/test_fn.py; rotation and an alias already held in
test_rotation.py and test_flow.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from function.keys.secrets import is_key, token_of
from tests.fixtures import FIXED_KEY, observed_request, observed_secret, request_resource_name
from tests.keys.runs import STEADY, info, run, secret_key, xr

TENANTS_KEY = "sk-" + "TenantChoseThisKey0123456789abcdefghijklmn"


@dataclass(frozen=True)
class TestCase:
    """One named case: what was observed, and what compose must return."""

    __test__ = False  # a row of a table, not a class of tests

    reason: str
    observed: dict[str, Any]
    same_key: bool  # the Secret keeps FIXED_KEY
    want: str  # the KeyReady condition's reason
    warned: str = ""  # a fragment of a warning, if a person is warned


CASES = [
    TestCase(reason="a new VirtualKey", observed={}, same_key=False, want="Creating"),
    TestCase(reason="its key in place", observed=STEADY, same_key=True, want="Available"),
    TestCase(
        reason="its Request gone",
        observed={"key": observed_secret()},
        same_key=True,
        want="Creating",
    ),
    TestCase(
        reason="its Secret lost",
        observed={request_resource_name(): info(FIXED_KEY)},
        same_key=False,
        want="Creating",
        warned="new key is being issued",
    ),
    TestCase(
        reason="its Secret rewritten by someone else",
        observed={"key": observed_secret(TENANTS_KEY), request_resource_name(): info(FIXED_KEY)},
        same_key=False,
        want="Creating",
        warned="new key is being issued",
    ),
    TestCase(
        reason="the proxy refusing the master key",
        observed={"key": observed_secret(), request_resource_name(): observed_request(code=401)},
        same_key=True,
        want="Unauthorized",
        warned="refused the master key",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.reason)
def test_compose(case: TestCase) -> None:
    composed = run(xr(), case.observed)
    key = secret_key(composed, "key")
    assert is_key(key)
    assert (key == FIXED_KEY) is case.same_key
    assert key != TENANTS_KEY
    # One Request, named by the key's token; a replaced key's Request is no longer desired.
    assert set(composed.resources) == {"key", request_resource_name(key)}
    assert composed.status["tokenHash"] == token_of(key)
    assert composed.status["keySecretRef"] == "example-service-litellm-key"
    assert (composed.condition, composed.state.reason) == ("KeyReady", case.want)
    assert bool(composed.warnings) == bool(case.warned)
    assert all(case.warned in w for w in composed.warnings)
    assert key not in " ".join([composed.state.message, *composed.warnings])

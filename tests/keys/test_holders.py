"""Who holds a VirtualKey's alias, read from the alias check's answer (`function.keys.holders`).

A table of named cases: each is the check's Request as provider-http left it, and
the holders `holders(request, alias, own)` reads from it (None: decide nothing
yet). How the function acts on them is in tests/keys/test_flow.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from function.keys.holders import Holder, holders
from tests.fixtures import observed_request

ALIAS = "example-service"
OWN = "cd" * 32  # this VirtualKey's own key
OTHER = "ab" * 32
MASTER = {"created_by": "default_user_id", "updated_by": "default_user_id"}
STAMPED = {"auth.litellm.ai/namespace": "team-a", "auth.litellm.ai/virtualkey": ALIAS}


def listed(*keys: Any, code: int = 200) -> dict[str, Any]:
    """The alias check after provider-http stored LiteLLM's /key/list answer."""
    return observed_request(code=code, path="/key/list", body={"keys": list(keys)})


def key(token: str = OTHER, spend: Any = 6.5, **more: Any) -> dict[str, Any]:
    return {"token": token, "key_alias": ALIAS, "spend": spend, **MASTER, **more}


@dataclass(frozen=True)
class TestCase:
    """One named case: the check's Request, and the holders read from it."""

    __test__ = False  # a row of a table, not a class of tests

    reason: str
    request: dict[str, Any] | None
    want: list[Holder] | None


CASES = [
    TestCase(reason="no check yet", request=None, want=None),
    TestCase(reason="no answer yet", request=observed_request(code=None), want=None),
    TestCase(reason="the listing refused", request=listed(key(), code=401), want=None),
    TestCase(
        reason="keys that are not a list",
        request=observed_request(code=200, path="/key/list", body={"keys": "x"}),
        want=None,
    ),
    TestCase(reason="nobody else", request=listed(), want=[]),
    TestCase(
        reason="a key of no one's",
        request=listed(key()),
        want=[Holder(OTHER, Decimal("6.5"), None)],
    ),
    TestCase(
        reason="a key the master key made for this VirtualKey",
        request=listed(key(metadata=STAMPED)),
        want=[Holder(OTHER, Decimal("6.5"), ("team-a", ALIAS))],
    ),
    TestCase(
        reason="a key a user minted, naming this VirtualKey",
        request=listed(key(metadata=STAMPED, created_by="team-a.mallory")),
        want=[Holder(OTHER, Decimal("6.5"), None)],
    ),
    TestCase(reason="its own key", request=listed(key(token=OWN)), want=[]),
    TestCase(
        reason="another alias (a proxy ignoring the filter)",
        request=listed(key(key_alias="x")),
        want=[],
    ),
    TestCase(reason="a token that is not a token", request=listed(key(token="sk-x")), want=[]),
    TestCase(
        reason="no spend yet counts as none",
        request=listed(key(spend=None)),
        want=[Holder(OTHER, Decimal(0), None)],
    ),
    TestCase(reason="a spend that cannot be read", request=listed(key(spend="lots")), want=None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.reason)
def test_holders(case: TestCase) -> None:
    assert holders(case.request, ALIAS, OWN) == case.want


def test_a_listing_too_large_to_read_says_nothing() -> None:
    many = [key(token=f"{i:064x}", metadata={"note": "x" * 4096}) for i in range(80)]
    request = listed(*many)
    assert len(json.dumps(many)) > 256 * 1024
    assert holders(request, ALIAS, OWN) is None

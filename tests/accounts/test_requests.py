"""The Requests of LiteLLM users and teams: their jq checks, run by real jq.

`function.accounts.requests.gone_or_not_ours`: an ID that exists on the proxy
and is not this object's counts as removed, so provider-http never updates or
deletes it. The context is shaped as provider-http builds it: the payload with
its JSON body turned into an object, plus `.response`.
"""

from __future__ import annotations

from typing import Any

import jq
import pytest

from function.accounts.requests import gone_or_not_ours


def run(program: str, value: Any) -> Any:
    return jq.compile(program).input_value(value).first()


def _account_context(code: int, metadata: Any, **payload: Any) -> dict[str, Any]:
    owner = {"namespace": "team-a", "key": "auth.litellm.ai/user", "name": "alice"}
    return {
        "payload": {"body": {"userId": "team-a.alice", "owner": owner, **payload}},
        "response": {"statusCode": code, "body": {"user_info": {"metadata": metadata}}},
    }


OURS = {"auth.litellm.ai/namespace": "team-a", "auth.litellm.ai/user": "alice"}


@pytest.mark.parametrize(
    ("code", "metadata", "payload", "removed"),
    [
        pytest.param(200, OURS, {}, False, id="this-users-user"),
        pytest.param(404, None, {}, True, id="gone"),
        pytest.param(200, {}, {}, True, id="a-platform-user-with-the-same-id"),
        pytest.param(
            200, {**OURS, "auth.litellm.ai/user": "bob"}, {}, True, id="another-users-user"
        ),
        pytest.param(
            200,
            {**OURS, "auth.litellm.ai/namespace": "team-b"},
            {},
            True,
            id="another-namespaces-user",
        ),
        pytest.param(200, "{{ a:b:c }}", {}, True, id="hostile-metadata"),
        pytest.param(200, {}, {"trustExisting": True}, False, id="made-before-provenance"),
        pytest.param(500, None, {}, False, id="a-server-error-proves-nothing"),
    ],
)
def test_a_user_that_is_not_ours_counts_as_removed(
    code: int, metadata: Any, payload: dict[str, Any], removed: bool
) -> None:
    assert (
        run(gone_or_not_ours("user_info"), _account_context(code, metadata, **payload)) is removed
    )

"""The Requests of LiteLLM users, teams and team members, and their jq. Pure.

`function.users` and `function.teams` build on this; keys have their own
(`function.request`), since a key's raw value and its replacement need more.

- `account_request(...)`: a Request whose calls are all prepared by the
  function: the payload carries the LiteLLM ID, the managed `fields`, and
  the ready bodies for create, update and delete. jq only picks them, so
  no template ever mixes a tenant's text into a program.
- `fields_match(live)`: the up-to-date check: every managed field equals
  what the info answer holds under `live` (`user_info`, `team_info`).
- `IS_GONE`, `MEMBER_IS_GONE`, `MEMBER_MATCHES`: the other checks.

The rules of `function.request` hold here too: every mapping sets `action`
and `method`, every HTTP error is an answer, the master key is a
placeholder, and every jq access is type-guarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from function.connection import Connection
from function.request import GUARDS, http_request

# The info call answers 404 once the user or team is gone.
IS_GONE = f"{GUARDS} | $r.statusCode == 404"

_MEMBER = (
    "(.payload | obj | .body | obj) as $p"
    " | [$r.body | obj | .team_info | obj | .members_with_roles | arr | .[] | obj"
    " | select(.user_id == $p.userId)] as $found"
)
# A member is gone with its team, or once the team no longer lists it.
MEMBER_IS_GONE = (
    f"{GUARDS} | {_MEMBER} | $r.statusCode == 404"
    " or ($r.statusCode == 200 and ($found | length) == 0)"
)
MEMBER_MATCHES = (
    f"{GUARDS} | {_MEMBER}"
    ' | if $r.statusCode != 200 or ($r.body | type) != "object" then true else'
    " ([$r.body | obj | .team_memberships | arr | .[] | obj"
    " | select(.user_id == $p.userId)] | .[0] | obj) as $budget"
    " | ($found | length) > 0 and ($found[0].role == $p.role)"
    " and ($p.maxBudgetInTeam == null"
    " or ($budget.litellm_budget_table | obj | .max_budget) == $p.maxBudgetInTeam) end"
)


def fields_match(live: str) -> str:
    """The up-to-date check for a user or team whose info answer keeps it under `live`."""
    return (
        f"{GUARDS} | if $r.statusCode != 200"
        ' or ($r.body | type) != "object"'
        f' or ($r.body.{live} | type) != "object" then true'
        f" else $r.body.{live} as $live | .payload | obj | .body | obj | .fields | obj"
        " | to_entries | all("
        ' if .key == "models" then (.value | arr | sort) == ($live.models | arr | sort)'
        ' elif .key == "metadata" then (.value | obj | to_entries'
        " | all(. as $e | ($live.metadata | obj)[$e.key] == $e.value))"
        ' elif .key == "blocked" then .value == ($live.blocked == true)'
        " else .value == $live[.key] end) end"
    )


def dollars(value: str | None) -> float | None:
    """LiteLLM's float for a dollar string; Decimal keeps "0.1" exact until then."""
    return None if value is None else float(Decimal(value))


@dataclass(frozen=True)
class Place:
    """Where a Request goes and how it reaches the proxy; the same for all of one XR's."""

    namespace: str
    connection: Connection
    provider_config: dict[str, str]
    wait_timeout: str
    labels: dict[str, str]


@dataclass(frozen=True)
class Calls:
    """The four calls of one Request, as LiteLLM paths and ready bodies."""

    create: str
    info: str  # path and query, e.g. /user/info?user_id=ns.alice
    update: str
    delete: str
    create_body: dict[str, Any]
    update_body: dict[str, Any]
    delete_body: dict[str, Any]


def account_request(  # noqa: PLR0913 - each argument is one independent fact.
    *,
    name: str,
    place: Place,
    ids: dict[str, Any],
    fields: dict[str, Any],
    calls: Calls,
    is_removed: str,
    expected: str,
) -> dict[str, Any]:
    """The Request that creates, observes, updates and deletes one user, team or member."""
    payload = {
        **ids,
        "fields": fields,
        "info": calls.info,
        "create": calls.create_body,
        "update": calls.update_body,
        "delete": calls.delete_body,
    }
    return http_request(
        name=name,
        namespace=place.namespace,
        connection=place.connection,
        provider_config=place.provider_config,
        wait_timeout=place.wait_timeout,
        labels=place.labels,
        payload=payload,
        mappings=[
            {
                "action": "CREATE",
                "method": "POST",
                "url": f'(.payload.baseUrl + "{calls.create}")',
                "body": "(.payload.body.create)",
            },
            {
                "action": "OBSERVE",
                "method": "GET",
                "url": "(.payload.baseUrl + .payload.body.info)",
            },
            {
                "action": "UPDATE",
                "method": "POST",
                "url": f'(.payload.baseUrl + "{calls.update}")',
                "body": "(.payload.body.update)",
            },
            {
                "action": "REMOVE",
                "method": "POST",
                "url": f'(.payload.baseUrl + "{calls.delete}")',
                "body": "(.payload.body.delete)",
            },
        ],
        is_removed=is_removed,
        expected=expected,
    )

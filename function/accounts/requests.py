"""The Requests of LiteLLM users, teams and team members, and their jq. Pure.

`function.accounts.users` and `.teams` build on this; keys have their own
(`function.keys.request`), since a key's raw value and its replacement need more.

- `account_request(...)`: a Request whose calls are all prepared by the
  function: the payload carries the LiteLLM ID, the managed `fields`, and
  the ready bodies for create, update and delete. jq only picks them, so
  no template ever mixes a tenant's text into a program.
- `fields_match(live)`: the up-to-date check: every managed field equals
  what the info answer holds under `live` (`user_info`, `team_info`).
- `gone_or_not_ours(live)`: gone, or a user or team this object did not make.
- `MEMBER_IS_GONE`, `MEMBER_MATCHES`: the members' checks.

The rules of `function.provider_http.request` hold here too: every mapping sets `action`
and `method`, every HTTP error is an answer, the master key is a
placeholder, and every jq access is type-guarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from function import provenance
from function.accounts.identity import AccountKind, request_name
from function.composed import Owner, only_set
from function.provider_http.answers import answer_body, last_answer, payload_of
from function.provider_http.request import GUARDS, Place, http_request
from function.units import litellm_float


def gone_or_not_ours(live: str) -> str:
    """Removed: 404, or a user or team whose provenance does not name this object.

    An ID that already existed when the Request came (a platform user whose
    ID a tenant's `<namespace>.<userID>` happens to spell) is not ours: to
    provider-http it does not exist, so it is never updated and never
    deleted, and creating it is refused (409 or 400) until the ID is free.
    `trustExisting` is set only for a Request made before provenance existed,
    until the first UPDATE has stamped it.
    """
    return (
        f"{GUARDS} | (.payload | obj | .body | obj) as $p"
        " | ($p.owner | obj) as $o"
        ' | ($o.key | if type == "string" then . else "" end) as $k'
        f" | ($r.body | obj | .{live} | obj | .metadata | obj) as $m"
        " | $r.statusCode == 404 or ($r.statusCode == 200 and $p.trustExisting != true"
        ' and ($m["auth.litellm.ai/namespace"] != $o.namespace or $m[$k] != $o.name))'
    )


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


# A label on every user Request, so that a Team can ask Crossplane for them all.
ACCOUNT_KIND = "auth.litellm.ai/kind"


def ownership(
    stamp_key: str, namespace: str, name: str, observed: dict[str, Any] | None, live: str
) -> dict[str, Any]:
    """The payload fields `gone_or_not_ours` reads: whose the user or team must be.

    `trustExisting` only for a Request composed before provenance existed
    (its payload names no owner) that had made its user or team, until its
    stored answer shows the stamp its first UPDATE writes.
    """
    mine: dict[str, Any] = {"owner": {"namespace": namespace, "key": stamp_key, "name": name}}
    if observed is None:
        return mine
    payload = payload_of(observed)
    code, url, _ = last_answer(observed)
    made = 200 <= code <= 299 and not url.split("?")[0].endswith("/delete")  # noqa: PLR2004
    carried = payload.get("trustExisting") is True or ("owner" not in payload and made)
    live_object = answer_body(observed) or {}
    stamped = provenance.owner(
        (live_object.get(live) or {}).get("metadata")
        if isinstance(live_object.get(live), dict)
        else None,
        stamp_key,
    ) == (namespace, name)
    if carried and not stamped:
        return {**mine, "trustExisting": True}
    return mine


# Fields LiteLLM keeps in dollars, as its floats.
_MONEY = frozenset({"max_budget"})


def account_fields(
    spec: BaseModel, named: tuple[str, ...], *, optional: tuple[str, ...]
) -> dict[str, Any]:
    """The fields LiteLLM keeps on a user or team, by their LiteLLM names.

    A spec's fields are named as LiteLLM names them. `named` are always
    managed; of `optional`, only those set: an absent one is not managed.
    The Request adds the object's provenance to the metadata.
    """

    def value(name: str) -> Any:
        found = getattr(spec, name)
        if name in _MONEY:
            return dollars(found)
        return type(found)(found) if isinstance(found, list | dict) else found  # a copy

    fields = {name: value(name) for name in named}
    fields.update(only_set({name: value(name) for name in optional}))
    return fields


def dollars(value: str | None) -> float | None:
    """LiteLLM's float for a dollar string, or None for none."""
    return None if value is None else litellm_float(value)


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
    annotations: dict[str, str] | None = None,
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
    body = http_request(
        name=name,
        place=place,
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
    if annotations:
        body["metadata"]["annotations"] = dict(annotations)
    return body


@dataclass(frozen=True)
class Account:
    """One User's LiteLLM user or one Team's LiteLLM team: its kind, owner, ID and place."""

    how: AccountKind
    owner: Owner
    account_id: str
    place: Place

    @property
    def subject(self) -> str:
        """How messages name it: `User team-a/alice (team-a.alice)`."""
        return f"{self.how.kind} {self.owner.namespace}/{self.owner.virtualkey} ({self.account_id})"

    def request(
        self,
        fields: dict[str, Any],
        observed: dict[str, Any] | None,
        *,
        create_extra: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Its Request, stamped as the owner's, given its last observed one.

        The Request's name is the same for every incarnation of the object, on
        purpose: one made again while its old Request is still being deleted
        waits for that REMOVE, which would otherwise delete the new one (the
        LiteLLM ID is the same).
        """
        how, owner, account_id = self.how, self.owner, self.account_id
        kind, id_field = how.suffix, f"{how.suffix}_id"
        stamp = provenance.account_stamp(how.stamp, owner.namespace, owner.virtualkey)
        # The provenance joins the metadata: the user or team says which object made it.
        fields = {**fields, "metadata": {**fields.get("metadata", {}), **stamp}}
        return account_request(
            name=request_name(how.kind, owner.virtualkey),
            place=self.place,
            ids={
                how.payload_id: account_id,
                **ownership(how.stamp, owner.namespace, owner.virtualkey, observed, how.info),
            },
            fields=fields,
            calls=Calls(
                create=f"/{kind}/new",
                info=f"/{kind}/info?{id_field}={account_id}",
                update=f"/{kind}/update",
                delete=f"/{kind}/delete",
                create_body={**fields, id_field: account_id, **(create_extra or {})},
                update_body={**fields, id_field: account_id},
                delete_body={f"{id_field}s": [account_id]},
            ),
            is_removed=gone_or_not_ours(how.info),
            expected=fields_match(how.info),
            annotations=annotations,
        )

"""Which key holds a VirtualKey's alias, read by a Request that only observes. Pure.

When a key's CREATE is refused because its alias is taken (`AliasConflict`),
the function composes `alias_check(...)`: a provider-http Request with
`managementPolicies: [Observe]` that lists the keys with that alias
(`GET /key/list?key_alias=...&return_full_object=true`). It never creates,
changes or deletes anything, and dropping it deletes nothing.
`holders(request, alias, own)` reads its stored answer: each other live key
with the alias, its token, spend and provenance owner.

The decision to delete a key rests on this answer, which provider-http
writes, and never on the XR's status, which anyone who may edit the
VirtualKey may be able to write (Crossplane's generated edit roles include
`status`). A holder counts as a VirtualKey's only if its provenance names it
and the master key made and last changed it (`function.provenance.key_owner`):
a key a tenant's own user minted proves nothing, whatever its metadata says.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from function import provenance
from function.provider_http.answers import TOKEN, answer_body
from function.provider_http.request import ONLY_OBSERVE, Place, http_request
from function.units import dollars

CHECK_RESOURCE = "alias-check"
_MAX_BODY = 256 * 1024
_MAX_KEYS = 64  # aliases are unique: a listing holds one key, or a few while one is deleted


@dataclass(frozen=True)
class Holder:
    """Another live key holding the alias."""

    token: str
    spend: Decimal
    owner: tuple[str, str] | None  # the VirtualKey its provenance names, if the master key made it


def alias_check(*, name: str, alias: str, place: Place) -> dict[str, Any]:
    """A Request that only lists the keys holding `alias` on the proxy."""
    return http_request(
        name=name,
        place=place,
        payload={"alias": alias},
        mappings=[
            {
                "action": "OBSERVE",
                "method": "GET",
                "url": '(.payload.baseUrl + "/key/list?return_full_object=true&key_alias="'
                " + (.payload.body.alias | @uri))",
            }
        ],
        # It observes a listing, which always exists and is never to be changed.
        is_removed="false",
        expected="true",
        management_policies=ONLY_OBSERVE,
    )


def holders(request: dict[str, Any] | None, alias: str, own: str) -> list[Holder] | None:
    """The other live keys with `alias` in the check's last answer; None: no answer yet."""
    listing = answer_body(request, _MAX_BODY)
    keys = listing.get("keys") if listing is not None else None
    if not isinstance(keys, list):
        return None
    found = []
    for key in keys[:_MAX_KEYS]:
        if not isinstance(key, dict) or key.get("key_alias") != alias:
            continue  # an older proxy may ignore the filter: only this alias counts
        token, spend = key.get("token"), dollars(key.get("spend") or 0)
        if not isinstance(token, str) or not TOKEN.fullmatch(token) or token == own:
            continue
        if spend is None:
            return None  # unreadable: decide nothing on it
        found.append(Holder(token, spend, provenance.key_owner(key)))
    return found

"""Keys the function did not mean to make, read from what provider-http stored. Pure.

provider-http resolves the CREATE body's `{{ <key secret>:<ns>:key }}` when it
sends it, but the Request names its key by the token the function computed
earlier. A tenant who rewrites the key Secret in between gets a key of its
own choosing created on the proxy, which the Request does not track.
provider-http cannot be told to check, so the function finds such keys and
deletes them:

- `stray_tokens(request)`: the token of a key `/key/generate` created for a
  Request when that token is not the Request's own (its answer carries the
  created key's `token`, which is never a secret).
- `exposed(request)`: whether a raw key (`sk-...`) sits unmasked in the
  Request's stored answer (provider-http could not write the Secret that
  masks it: a quota, admission, RBAC).
- `reaper(...)`: a Request for one such key. It starts Observe-only: its
  `/key/info` answer must show the key is this VirtualKey's before it may
  delete anything (`judge`). Only then is it made `[Observe, Delete]`, and
  dropped once Crossplane applied that: deleting it runs its REMOVE.
- `reaper_tokens(observed)`: the keys reapers are composed for, read back
  from the reapers Crossplane observed: the memory of a stray found in an
  answer provider-http has since replaced.

Nothing here reads the XR's status, which Crossplane's edit roles let
tenants write: a token there proves nothing, and deletes nothing.
"""

from __future__ import annotations

import enum
import re
from typing import Any

from function import provenance
from function.keys.request import OBSERVE_IS_REMOVED
from function.provider_http.answers import (
    HTTP_OK,
    TOKEN,
    answer_body,
    is_request,
    json_body,
    mapping,
    payload_of,
    stored_answers,
)
from function.provider_http.request import (
    ONLY_OBSERVE,
    ONLY_REMOVE,
    Place,
    http_request,
    removal_mappings,
)

_NOT_FOUND = 404

REAPER_PREFIX = "stray-"
# Reapers composed in one run; more wait for the next runs (one tenant's
# flood never makes a run, or its response, grow without bound).
MAX_REAPERS = 8
_RAW_KEY = re.compile(r"sk-[A-Za-z0-9_\-]{20,}")


def stray_tokens(request: dict[str, Any], own_token: str | None) -> set[str]:
    """Tokens of keys /key/generate made for this Request that are not its own."""
    found = set()
    for answer in stored_answers(request):
        body = mapping(json_body(answer.get("body")))
        token = body.get("token")
        # Only /key/generate answers carry `key_name` and `token` together.
        if (
            answer.get("statusCode") == HTTP_OK
            and isinstance(token, str)
            and TOKEN.fullmatch(token)
            and isinstance(body.get("key_name"), str)
            and token != own_token
        ):
            found.add(token)
    return found


def exposed(request: dict[str, Any]) -> bool:
    """Whether a raw key is stored unmasked in the Request's answers."""
    return any(
        isinstance(a.get("body"), str) and _RAW_KEY.search(a["body"])
        for a in stored_answers(request)
    )


def reaper(*, name: str, token: str, place: Place, may_delete: bool = False) -> dict[str, Any]:
    """A Request that observes the key `token`; with `may_delete`, deleting it deletes the key."""
    return http_request(
        name=name,
        place=place,
        payload={"token": token},
        mappings=removal_mappings(
            '(.payload.baseUrl + "/key/info?key=" + .payload.body.token)',
            '(.payload.baseUrl + "/key/delete")',
            '({"keys": [.payload.body.token]})',
        ),
        is_removed=OBSERVE_IS_REMOVED,
        expected="true",
        management_policies=ONLY_REMOVE if may_delete else ONLY_OBSERVE,
    )


def observes_only(request: dict[str, Any] | None) -> bool:
    """Whether an observed reaper is Observe-only (deleting it deletes nothing)."""
    spec = mapping(mapping(request).get("spec"))
    return spec.get("managementPolicies") != ONLY_REMOVE


class Verdict(enum.Enum):
    """What a reaper's own answer says about the key it observes."""

    UNKNOWN = "unknown"  # no answer yet, or one that proves nothing
    GONE = "gone"  # deleted already
    OURS = "ours"  # this VirtualKey's, or one it may replace: it may be deleted
    NOT_OURS = "not ours"  # someone else's: never deleted


def judge(  # noqa: PLR0911 - one return per verdict and reason.
    request: dict[str, Any] | None, alias: str, owner: tuple[str, str], *, foreign_ok: bool
) -> Verdict:
    """Whether the key an observed reaper found may be deleted.

    Only a key with this VirtualKey's alias whose provenance names it (made
    by the master key, `function.provenance.key_owner`), or, where
    `foreign_ok` (keys.replaceForeignKeys), one with its alias and no
    provenance or provenance from the same namespace.
    """
    answer = mapping(mapping(mapping(request).get("status")).get("response"))
    if answer.get("statusCode") == _NOT_FOUND:
        return Verdict.GONE
    info = mapping(mapping(answer_body(request)).get("info"))  # only a 200's
    if not info:
        return Verdict.UNKNOWN
    if info.get("status") == "deleted":
        return Verdict.GONE
    if info.get("key_alias") != alias:
        return Verdict.NOT_OURS
    made_for = provenance.key_owner(info)
    if made_for == owner:
        return Verdict.OURS
    if foreign_ok and (made_for is None or made_for[0] == owner[0]):
        return Verdict.OURS
    return Verdict.NOT_OURS


def reaper_tokens(observed: dict[str, dict[str, Any]]) -> set[str]:
    """The tokens of the keys the observed reapers are for (their payload)."""
    found = set()
    for name, request in observed.items():
        if not name.startswith(REAPER_PREFIX) or not is_request(request):
            continue
        token = payload_of(request).get("token")
        if isinstance(token, str) and TOKEN.fullmatch(token) and name == reaper_resource(token):
            found.add(token)
    return found


def reaper_resource(token: str) -> str:
    """The composed resource name of the reaper of key `token`."""
    return f"{REAPER_PREFIX}{token[:10]}"

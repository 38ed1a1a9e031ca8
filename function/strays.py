"""Keys the function did not mean to make, read from what provider-http stored. Pure.

provider-http resolves the CREATE body's `{{ <key secret>:<ns>:key }}` when it
sends it, but the Request names its key by the token the function computed
earlier. A tenant who rewrites the key Secret in between gets a key of its
own choosing created on the proxy, which the Request does not track (issue
9, item 3). provider-http cannot be told to check, so the function finds
such keys and deletes them:

- `stray_tokens(request)`: the token of a key `/key/generate` created for a
  Request when that token is not the Request's own (its answer carries the
  created key's `token`, which is never a secret).
- `exposed(request)`: whether a raw key (`sk-...`) sits unmasked in the
  Request's stored answer. provider-http masks the key `/key/generate`
  echoes only if it can write `<request>-generated`; if it cannot (a quota,
  admission, RBAC), its `patch.go` stores the answer unmasked (item 4).
  The exposed token is remembered in `status.exposedTokens` until the key
  is rotated, since provider-http's next OBSERVE replaces that answer.
- `reaper(...)`: a Request that only observes and deletes one stray key.
  The function composes it while the stray is remembered in the XR's
  `status.strayTokens`, and drops it once it exists: Crossplane then deletes
  it, and its REMOVE deletes the key, as for any Request.
- `may_delete(reaper, alias, owner, foreign_ok)`: whether the key the reaper
  observed may be deleted. The status that remembers strays may be written
  by whoever may edit the VirtualKey (Crossplane's edit roles include it),
  so a token there proves nothing: a key is deleted only if LiteLLM's own
  answer shows this VirtualKey's alias and provenance (or, where the
  TenancyPolicy opts in to replacing foreign keys, its alias). Otherwise the
  reaper becomes Observe-only (`reaper(..., only_observe=True)`), and
  dropping it deletes nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from function import provenance, rotation
from function.connection import Connection
from function.request import (
    OBSERVE_IS_REMOVED,
    ONLY_OBSERVE,
    ONLY_REMOVE,
    http_request,
    removal_mappings,
)

_NOT_FOUND = 404

REAPER_PREFIX = "stray-"
_TOKEN = re.compile(r"^[0-9a-f]{64}$")
_RAW_KEY = re.compile(r"sk-[A-Za-z0-9_\-]{20,}")
_MAX_BODY = 64 * 1024


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _answers(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored answers of a Request: the last one, and provider-http's cache of one."""
    status = _mapping(request.get("status"))
    cache = _mapping(status.get("cache"))
    return [a for a in (_mapping(status.get("response")), _mapping(cache.get("response"))) if a]


def _body(answer: dict[str, Any]) -> Any:
    body = answer.get("body")
    if not isinstance(body, str) or len(body) > _MAX_BODY:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def stray_tokens(request: dict[str, Any], own_token: str | None) -> set[str]:
    """Tokens of keys /key/generate made for this Request that are not its own."""
    found = set()
    for answer in _answers(request):
        body = _mapping(_body(answer))
        token = body.get("token")
        # Only /key/generate answers carry `key_name` and `token` together.
        if (
            answer.get("statusCode") == 200  # noqa: PLR2004 - HTTP OK.
            and isinstance(token, str)
            and _TOKEN.fullmatch(token)
            and isinstance(body.get("key_name"), str)
            and token != own_token
        ):
            found.add(token)
    return found


def exposed(request: dict[str, Any]) -> bool:
    """Whether a raw key is stored unmasked in the Request's answers."""
    return any(
        isinstance(a.get("body"), str) and _RAW_KEY.search(a["body"]) for a in _answers(request)
    )


def reaper(  # noqa: PLR0913 - each argument is one independent fact.
    *,
    name: str,
    namespace: str,
    token: str,
    connection: Connection,
    provider_config: dict[str, str],
    wait_timeout: str,
    labels: dict[str, str],
    only_observe: bool = False,
) -> dict[str, Any]:
    """A Request that observes the key `token` and, when it is deleted, deletes that key.

    `only_observe`: it deletes nothing when it is deleted (the key is not ours).
    """
    return http_request(
        name=name,
        namespace=namespace,
        connection=connection,
        provider_config=provider_config,
        wait_timeout=wait_timeout,
        labels=labels,
        payload={"token": token},
        mappings=removal_mappings(
            '(.payload.baseUrl + "/key/info?key=" + .payload.body.token)',
            '(.payload.baseUrl + "/key/delete")',
            '({"keys": [.payload.body.token]})',
        ),
        is_removed=OBSERVE_IS_REMOVED,
        expected="true",
        management_policies=ONLY_OBSERVE if only_observe else ONLY_REMOVE,
    )


def observes_only(request: dict[str, Any] | None) -> bool:
    """Whether an observed reaper was made Observe-only (deleting it deletes nothing)."""
    spec = _mapping(_mapping(request).get("spec"))
    return spec.get("managementPolicies") == ONLY_OBSERVE


def may_delete(
    request: dict[str, Any] | None, alias: str, owner: tuple[str, str], *, foreign_ok: bool
) -> bool | None:
    """Whether the key an observed reaper found may be deleted; None: not known yet.

    True for a key that is gone already. Otherwise only a key with this
    VirtualKey's alias whose provenance names it, or any key with its alias
    where `foreign_ok` (keys.replaceForeignKeys).
    """
    answer = _mapping(_mapping(_mapping(request).get("status")).get("response"))
    if answer.get("statusCode") == _NOT_FOUND:
        return True
    info = _mapping(_mapping(rotation.answer_body(request)).get("info"))  # only a 200's
    if not info:
        return None
    if info.get("status") == "deleted":
        return True
    if info.get("key_alias") != alias:
        return False
    return foreign_ok or provenance.owner(info.get("metadata")) == owner


def _tokens(status: Any, field: str) -> set[str]:
    listed = _mapping(status).get(field)
    if not isinstance(listed, list):
        return set()
    return {t for t in listed if isinstance(t, str) and _TOKEN.fullmatch(t)}


def remembered(status: Any) -> set[str]:
    """The stray tokens the XR's status remembers, still to be deleted."""
    return _tokens(status, "strayTokens")


def remembered_reaped(status: Any) -> set[str]:
    """The stray tokens whose reaper has been handed to Crossplane to delete."""
    return _tokens(status, "reapedTokens")


def remembered_exposed(status: Any) -> set[str]:
    """The tokens of keys once seen stored unmasked, until those keys are rotated."""
    return _tokens(status, "exposedTokens")

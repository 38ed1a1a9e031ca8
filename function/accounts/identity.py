"""LiteLLM IDs of a namespace's Users and Teams, and references to them. Pure.

Shared by the three kinds: a User or Team names its LiteLLM ID, and a
VirtualKey (`userRef`, `teamRef`) or a Team (`members`) names a User or
Team in its own namespace.

- `litellm_id(namespace, local)`: the ID on the proxy is always
  `<namespace>.<userID or teamID or metadata.name>`. A namespace name has no
  dot, so no tenant can name another namespace's user or team, or an ID
  the platform made (`default_user_id`, a team it binds): a User or Team
  can only ever create, change and delete its own namespace's.
- `resolve(...)` -> `Referenced`: what a reference resolved to. The ID is
  computed from the object Crossplane fetched for the function (a required
  resource): its namespace, name and spec. Whether it exists on the proxy,
  and is that object's, comes from LiteLLM's answer stored on the object's
  own Request (also fetched), never from the object's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from function import provenance
from function.composed import base_name
from function.provider_http.answers import (
    answer_body,
    is_request,
    last_answer,
    mapping,
    payload_of,
)
from function.validation import InvalidInputError, LocalRef

SEPARATOR = "."


def litellm_id(namespace: str, local: str) -> str:
    """The LiteLLM user or team ID of a namespace's User or Team."""
    return f"{namespace}{SEPARATOR}{local}"


@dataclass(frozen=True)
class Referenced:
    """A User or Team a reference names, as far as the function can see it."""

    kind: str
    name: str
    namespace: str
    litellm_id: str | None  # None until it exists on the proxy as this object's
    problem: str | None  # why it cannot be used yet, or None
    exists: bool = True  # the object exists and is not being deleted


@dataclass(frozen=True)
class AccountKind:
    """How a User's or Team's Request names and answers for its LiteLLM object."""

    kind: str  # User, Team
    id_field: str  # spec field overriding the name: userID, teamID
    payload_id: str  # the Request payload's ID field: userId, teamId
    suffix: str  # LiteLLM's path (/user/new) and the Request's name, <base name>-<suffix>
    info: str  # where /…/info nests the object: user_info, team_info
    stamp: str  # its provenance key (function.provenance)
    made: tuple[str, ...]  # calls whose 2xx answer means the Request made or changed it


KINDS = {
    "User": AccountKind(
        "User",
        "userID",
        "userId",
        "user",
        "user_info",
        provenance.USER,
        ("/user/new", "/user/update"),
    ),
    "Team": AccountKind(
        "Team",
        "teamID",
        "teamId",
        "team",
        "team_info",
        provenance.TEAM,
        ("/team/new", "/team/update"),
    ),
}


def request_name(kind: str, name: str) -> str:
    """The name of the Request a User or Team composes for its LiteLLM user or team."""
    return f"{base_name(name)}-{KINDS[kind].suffix}"


def resolve(  # noqa: PLR0913 - each argument is one independent fact.
    objects: list[dict[str, Any]],
    requests: list[dict[str, Any]],
    *,
    kind: str,
    name: str,
    namespace: str,
    roles: frozenset[str] | None = None,
) -> Referenced:
    """The User or Team `name` in `namespace`, from the objects Crossplane fetched.

    Its LiteLLM ID is computed from its namespace, name and spec; whether
    that ID exists on the proxy as this object's is read from its Request
    (`requests`): LiteLLM's answer, made with the master key, showing it made
    the user or team, or the user or team carrying this object's provenance.
    Never from the object's status, which its tenant may write. For a User,
    `roles` are the roles its user may have: another role in the proxy's
    answer (a platform user, say) is never bound to.
    """
    obj, missing = _find(objects, kind, name, namespace)
    if obj is None:
        return Referenced(kind, name, namespace, None, missing, exists=False)
    how = KINDS[kind]
    local = mapping(obj.get("spec")).get(how.id_field) or name
    expected = litellm_id(namespace, str(local))
    request = _request_of(requests, request_name(kind, name), obj)
    live = _proven(request, how, expected, (namespace, name))
    if live is None:
        problem = f"{kind} {namespace}/{name} is not on the proxy yet"
        return Referenced(kind, name, namespace, None, problem)
    role = live.get("user_role")
    if roles is not None and isinstance(role, str) and role not in roles:
        problem = (
            f"{kind} {namespace}/{name} has role {role!r} on the proxy, which this namespace "
            "may not use"
        )
        return Referenced(kind, name, namespace, None, problem)
    return Referenced(kind, name, namespace, expected, None)


def _find(
    objects: list[dict[str, Any]], kind: str, name: str, namespace: str
) -> tuple[dict[str, Any] | None, str]:
    """The object named, or None and why it cannot be used."""
    found = [
        o
        for o in objects
        if mapping(o.get("metadata")).get("name") == name
        and mapping(o.get("metadata")).get("namespace") in (namespace, None)
    ]
    if not found:
        return None, f"{kind} {namespace}/{name} does not exist; create it"
    if mapping(found[0].get("metadata")).get("deletionTimestamp"):
        return None, (
            f"{kind} {namespace}/{name} is being deleted, and LiteLLM deletes its keys with it"
        )
    return found[0], ""


def _proven(
    request: dict[str, Any] | None, how: AccountKind, expected: str, owner: tuple[str, str]
) -> dict[str, Any] | None:
    """The user or team as LiteLLM last showed it, if the Request proves it is the owner's.

    Proof is LiteLLM's 2xx to the Request's own create or update (then
    nothing more is known: {}), or an info answer whose object carries the
    owner's provenance (or predates it: `trustExisting`). None otherwise.
    """
    if request is None or payload_of(request).get(how.payload_id) != expected:
        return None
    code, url, _ = last_answer(request)
    path = url.split("?")[0]
    if not 200 <= code <= 299:  # noqa: PLR2004 - HTTP's success range.
        return None
    if path.endswith(how.made):
        return {}
    if not path.endswith("/info"):
        return None
    live = mapping(mapping(answer_body(request)).get(how.info))
    ours = provenance.owner(live.get("metadata"), how.stamp) == owner
    if not ours and payload_of(request).get("trustExisting") is not True:
        return None
    return live


def _request_of(
    requests: list[dict[str, Any]], name: str, owner: dict[str, Any]
) -> dict[str, Any] | None:
    """The Request named `name` that the object `owner` controls, unless it is being deleted.

    A v2 XR controls its Requests itself; a legacy claim through its XR, which
    its `spec.resourceRef` names. A Request of an earlier incarnation (being
    deleted, or another object's) says nothing about this one.
    """
    meta = mapping(owner.get("metadata"))
    ref = mapping(mapping(owner.get("spec")).get("resourceRef"))
    for request in requests:
        request_meta = mapping(request.get("metadata"))
        if not is_request(request) or request_meta.get("name") != name:
            continue
        if request_meta.get("deletionTimestamp"):
            continue
        owners = request_meta.get("ownerReferences")
        controllers = [
            o
            for o in (owners if isinstance(owners, list) else [])
            if isinstance(o, dict) and o.get("controller") is True
        ]
        for controller in controllers:
            by_uid = meta.get("uid") is not None and controller.get("uid") == meta.get("uid")
            by_claim = ref.get("name") is not None and controller.get("name") == ref.get("name")
            if by_uid or by_claim:
                return request
    return None


def required(referenced: Referenced, field: str) -> str:
    """The LiteLLM ID, or InvalidInputError saying what to do about the reference."""
    if referenced.litellm_id is None:
        msg = (
            f"{field}: {referenced.problem}. This VirtualKey waits for it and changes nothing "
            f"meanwhile; create the {referenced.kind}, wait for it to be ready, or remove "
            f"{field}"
        )
        raise InvalidInputError(msg)
    return referenced.litellm_id


def referenced_id(  # noqa: PLR0913 - each argument is one independent fact.
    kind: str,
    ref: LocalRef | None,
    objects: list[dict[str, Any]] | None,
    requests: list[dict[str, Any]] | None,
    namespace: str,
    *,
    roles: frozenset[str] | None = None,
) -> str | None:
    """The LiteLLM ID a VirtualKey's userRef or teamRef names (None without one).

    Raises InvalidInputError while the User or Team cannot be used.
    """
    if ref is None:
        return None
    found = resolve(
        objects or [], requests or [], kind=kind, name=ref.name, namespace=namespace, roles=roles
    )
    return required(found, f"spec.{kind.lower()}Ref")

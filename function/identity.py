"""LiteLLM IDs of a namespace's Users and Teams, and references to them. Pure.

Shared by the three kinds: a User or Team names its LiteLLM ID, and a
VirtualKey (`userRef`, `teamRef`) or a Team (`members`) names a User or
Team in its own namespace.

- `litellm_id(namespace, local)`: the ID on the proxy is always
  `<namespace>.<userID or teamID or metadata.name>`. A namespace name has no
  dot, so no tenant can name another namespace's user or team, or an ID
  the platform made (`default_user_id`, a team it binds): a User or Team
  can only ever create, change and delete its own namespace's.
- `Referenced`: what a reference resolved to, read from the object
  Crossplane fetched for the function (a required resource). The ID is
  computed again from that object's namespace, name and spec, never read
  from its status; the status only says it exists on the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import StringConstraints

from function.model import InvalidInputError, LocalRef

# Letters, digits and . _ @ -: safe in a URL query and in any jq string.
LOCAL_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.@-]{0,127}$"
LocalID = Annotated[str, StringConstraints(pattern=LOCAL_ID_PATTERN)]
SEPARATOR = "."


def litellm_id(namespace: str, local: str) -> str:
    """The LiteLLM user or team ID of a namespace's User or Team."""
    return f"{namespace}{SEPARATOR}{local}"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Referenced:
    """A User or Team a reference names, as far as the function can see it."""

    kind: str
    name: str
    namespace: str
    litellm_id: str | None  # None until it exists on the proxy
    problem: str | None  # why it cannot be used yet, or None
    exists: bool = True  # the object exists and is not being deleted


def resolve(
    objects: list[dict[str, Any]], *, kind: str, id_field: str, name: str, namespace: str
) -> Referenced:
    """The User or Team `name` in `namespace`, from the objects Crossplane fetched.

    `id_field` is the spec field (userID, teamID) that overrides the name.
    """
    found = [
        o
        for o in objects
        if _mapping(o.get("metadata")).get("name") == name
        and _mapping(o.get("metadata")).get("namespace") in (namespace, None)
    ]
    if not found:
        return Referenced(
            kind,
            name,
            namespace,
            None,
            f"{kind} {namespace}/{name} does not exist; create it",
            exists=False,
        )
    obj = found[0]
    meta = _mapping(obj.get("metadata"))
    if meta.get("deletionTimestamp"):
        return Referenced(
            kind,
            name,
            namespace,
            None,
            f"{kind} {namespace}/{name} is being deleted, and LiteLLM deletes its keys with it",
            exists=False,
        )
    local = _mapping(obj.get("spec")).get(id_field) or name
    expected = litellm_id(namespace, str(local))
    if _mapping(obj.get("status")).get(id_field) != expected:
        return Referenced(
            kind, name, namespace, None, f"{kind} {namespace}/{name} is not on the proxy yet"
        )
    return Referenced(kind, name, namespace, expected, None)


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


def referenced_id(
    kind: str, ref: LocalRef | None, objects: list[dict[str, Any]] | None, namespace: str
) -> str | None:
    """The LiteLLM ID a VirtualKey's userRef or teamRef names (None without one).

    Raises InvalidInputError while the User or Team cannot be used.
    """
    if ref is None:
        return None
    found = resolve(
        objects or [], kind=kind, id_field=f"{kind.lower()}ID", name=ref.name, namespace=namespace
    )
    return required(found, f"spec.{kind.lower()}Ref")

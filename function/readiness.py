"""Whether the key is in place, read from the observed Request's status.

provider-http marks a Request Ready whenever OBSERVE did not say "removed",
even after a 500, and a 4xx on a write is not an error to it. So readiness
comes from what LiteLLM last answered: `status.response.statusCode`, which
call that was (`status.requestDetails.url`), `status.error` for transport
failures and the Request's Synced condition for templating failures.

- `key_state(request, ...)` -> `KeyState` (ready, reason, message)
LiteLLM's error text is passed through `function.redact.redact` first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from function.connection import Connection
from function.redact import redact

HTTP_OK_MIN, HTTP_OK_MAX = 200, 299
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_SERVER_ERROR = 500

_ACTIONS = {
    "/key/generate": "create the key",
    "/key/info": "read the key",
    "/key/update": "update the key",
    "/key/delete": "delete the key",
}


@dataclass(frozen=True)
class KeyState:
    """What the KeyReady condition says."""

    ready: bool
    reason: str
    message: str

    @property
    def is_problem(self) -> bool:
        """Whether a person has something to look at (not just waiting)."""
        return not self.ready and self.reason not in ("Creating", "Deleting")


def _not_ready(reason: str, message: str) -> KeyState:
    return KeyState(ready=False, reason=reason, message=message)


def _ready(message: str) -> KeyState:
    return KeyState(ready=True, reason="Available", message=message)


def _litellm_message(body: Any) -> str:
    """LiteLLM's error text from a stored response body (a JSON string)."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return redact(body) if body else ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return redact(error["message"])
        if isinstance(body.get("detail"), str):
            return redact(body["detail"])
    return ""


def _synced_failure(status: dict[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if (
            isinstance(cond, dict)
            and cond.get("type") == "Synced"
            and cond.get("status") == "False"
        ):
            return redact(str(cond.get("message") or cond.get("reason") or "reconcile error"))
    return None


@dataclass(frozen=True)
class _Answer:
    """LiteLLM's last answer, with what is needed to explain it."""

    code: int
    url: str
    message: str
    connection: Connection
    alias: str

    @property
    def action(self) -> str:
        return next((v for k, v in _ACTIONS.items() if k in self.url), "call LiteLLM")

    @property
    def detail(self) -> str:
        return f"HTTP {self.code}" + (f": {self.message}" if self.message else "")


def key_state(request: dict[str, Any] | None, connection: Connection, alias: str) -> KeyState:
    """Read the state of the key from the observed Request (None: not created yet)."""
    if request is None:
        return _not_ready("Creating", "Waiting for the Request that creates the key.")
    status = request.get("status") or {}
    early = _before_answer(status, connection)
    if early is not None:
        return early
    response = status.get("response") or {}
    answer = _Answer(
        code=int(response.get("statusCode") or 0),
        url=str((status.get("requestDetails") or {}).get("url") or ""),
        message=_litellm_message(response.get("body")),
        connection=connection,
        alias=alias,
    )
    if answer.code == 0:
        return _not_ready("Creating", "Waiting for LiteLLM's first answer.")
    if HTTP_OK_MIN <= answer.code <= HTTP_OK_MAX:
        where = connection.base_url
        if "/key/delete" in answer.url:
            return _not_ready("Deleting", f"Key {alias} is being deleted from {where}.")
        return _ready(f"Key {alias} is in place on {where}.")
    explain = _BY_CODE.get(answer.code)
    if explain is None:
        explain = _server_error if answer.code >= HTTP_SERVER_ERROR else _rejected
    return explain(answer)


def _before_answer(status: dict[str, Any], connection: Connection) -> KeyState | None:
    """Failures that happen before LiteLLM answers: transport and templating."""
    if status.get("error"):
        return _not_ready(
            "ProxyUnreachable",
            f"provider-http cannot reach LiteLLM at {connection.base_url}: "
            f"{redact(str(status['error']))}. Check that the proxy runs and that "
            "spec.connectionRef names it; the key and its Secret are kept meanwhile.",
        )
    synced = _synced_failure(status)
    if synced is not None:
        secret = connection.master_key
        return _not_ready(
            "RequestFailing",
            f"provider-http cannot run the Request: {synced}. If it names a missing Secret, "
            f"check that Secret {secret.namespace}/{secret.name} exists with data key "
            f"{secret.key!r}.",
        )
    return None


def _unauthorized(a: _Answer) -> KeyState:
    secret = a.connection.master_key
    return _not_ready(
        "Unauthorized",
        f"LiteLLM at {a.connection.base_url} refused the master key when trying to "
        f"{a.action} ({a.detail}). Put the proxy's master key in Secret "
        f"{secret.namespace}/{secret.name}, data key {secret.key!r}.",
    )


def _forbidden(a: _Answer) -> KeyState:
    return _not_ready(
        "Forbidden",
        f"LiteLLM refused to {a.action} ({a.detail}). Remove the field it names from the "
        "VirtualKey, or enable that feature on the proxy.",
    )


def _bad_request(a: _Answer) -> KeyState:
    if "/key/generate" in a.url and "alias" in a.message.lower():
        return _not_ready(
            "AliasConflict",
            f"keyAlias {a.alias!r} is already used by another key on {a.connection.base_url} "
            f"({a.detail}). Aliases are unique per proxy: recreate the VirtualKey with another "
            "keyAlias. If this VirtualKey is replacing a key whose Secret was lost, this "
            "clears once the old key is deleted.",
        )
    return _rejected(a)


def _not_found(a: _Answer) -> KeyState:
    return _not_ready(
        "KeyNotFound",
        f"LiteLLM at {a.connection.base_url} has no such key; it is being created again.",
    )


def _server_error(a: _Answer) -> KeyState:
    return _not_ready(
        "ProxyError",
        f"LiteLLM at {a.connection.base_url} failed to {a.action} ({a.detail}). "
        "provider-http retries; check the proxy's logs and its database.",
    )


def _rejected(a: _Answer) -> KeyState:
    return _not_ready(
        "Rejected",
        f"LiteLLM refused to {a.action} ({a.detail}). Fix the VirtualKey spec accordingly.",
    )


_BY_CODE = {
    HTTP_BAD_REQUEST: _bad_request,
    HTTP_UNAUTHORIZED: _unauthorized,
    HTTP_FORBIDDEN: _forbidden,
    HTTP_NOT_FOUND: _not_found,
}

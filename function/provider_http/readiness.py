"""Whether the key is in place, read from the observed Request's status.

provider-http marks a Request Ready whenever OBSERVE did not say "removed",
even after a 500, and a 4xx on a write is not an error to it. So readiness
comes from what LiteLLM last answered: `status.response.statusCode`, which
call that was (`status.requestDetails.url`), `status.error` for transport
failures and the Request's Synced condition for templating failures.

- `classify(request, connection, about)` -> `KeyState` (ready, reason, message):
  the one classifier; `key_state` and `state_of` give it what a key, and a
  user, team or member, say about themselves (`About`).
- `unsettled_create(request)` -> when to mark a CREATE failed that the
  provider began and never finished (it died in between).
- `created_just_now(request)` -> whether the stored answer is still
  /key/generate's (its masked key names `<request>-generated`).
- `revoked(request)` -> whether the key was deleted on the proxy after it
  existed: its Request's CREATE only reads the key once it has existed, and
  that read answered 404 or `status: deleted`. (OBSERVE never stores such an
  answer: provider-http returns before writing status when a key is gone.)

Foreign text never reaches a message. A proxy's answer can be written by a
tenant (its own proxy) and provider-http resolves secret placeholders in
answers, so LiteLLM's error text and provider-http's errors are only read to
tell cases apart; every message is a fixed sentence naming the status code,
the action and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from function.provider_http.answers import (
    json_body,
    last_answer,
    mapping,
    payload_of,
)
from function.tenancy.connection import Connection

HTTP_OK_MIN, HTTP_OK_MAX = 200, 299
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_CONFLICT = 409
HTTP_NOT_FOUND = 404
HTTP_SERVER_ERROR = 500

_ACTIONS = {
    "/key/generate": "create the key",
    "/key/info": "read the key",
    "/key/update": "update the key",
    "/key/delete": "delete the key",
    "/user/new": "create the user",
    "/user/info": "read the user",
    "/user/update": "update the user",
    "/user/delete": "delete the user",
    "/team/new": "create the team",
    "/team/info": "read the team",
    "/team/update": "update the team",
    "/team/delete": "delete the team",
    "/team/member_add": "add the team member",
    "/team/member_update": "update the team member",
    "/team/member_delete": "remove the team member",
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


def _synced_failure(status: dict[str, Any]) -> bool:
    conditions = status.get("conditions")
    return isinstance(conditions, list) and any(
        isinstance(c, dict) and c.get("type") == "Synced" and c.get("status") == "False"
        for c in conditions
    )


_RFC3339 = "%Y-%m-%dT%H:%M:%SZ"
_WHOLE_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
CREATE_PENDING = "crossplane.io/external-create-pending"
CREATE_FAILED = "crossplane.io/external-create-failed"
# provider-http's event filter (crossplane-runtime's DesiredStateChanged) ignores
# changes of external-create-failed, and a Request stopped at "cannot determine
# creation result" is not requeued: written alone, the settlement would wait for
# provider-http's next resync (hours). An annotation of our own, changed with it,
# passes the filter, so provider-http reconciles at once.
CREATE_SETTLED = "litellm.fn.crossplane.io/create-settled"


def unsettled_create(request: dict[str, Any] | None) -> str | None:
    """The time to mark a CREATE failed at, if provider-http stopped in the middle of one.

    crossplane-runtime writes `external-create-pending` before it calls CREATE.
    If the provider dies before it records the outcome, every later reconcile
    stops with "cannot determine creation result" until someone says how it
    ended. Here that is safe to say: CREATE sends the key in the Secret, which
    LiteLLM takes as a no-op if the key exists, and OBSERVE finds the key by
    its token either way. So the CREATE is marked failed one second after it
    began, and provider-http observes and creates as usual.
    """
    if request is None:
        return None
    annotations = mapping(mapping(request.get("metadata")).get("annotations"))
    pending = annotations.get(CREATE_PENDING)
    if not isinstance(pending, str) or not _WHOLE_SECONDS.fullmatch(pending):
        return None
    try:
        began = datetime.fromisoformat(pending.replace("Z", "+00:00"))
    except ValueError:
        return None
    settled = (began + timedelta(seconds=1)).strftime(_RFC3339)
    # Keep saying it for as long as that CREATE is the last one begun.
    if annotations.get(CREATE_FAILED) == settled or _synced_message_has(
        request, "cannot determine creation result"
    ):
        return settled
    return None


def _synced_message_has(request: dict[str, Any], text: str) -> bool:
    conditions = mapping(request.get("status")).get("conditions")
    return isinstance(conditions, list) and any(
        isinstance(c, dict)
        and c.get("type") == "Synced"
        and isinstance(c.get("message"), str)
        and text in c["message"]
        for c in conditions
    )


def created_just_now(request: dict[str, Any]) -> bool:
    """Whether the Request's stored answer is still /key/generate's (nothing observed since)."""
    code, url, _ = last_answer(request)
    return code != 0 and "/key/generate" in url


def revoked(request: dict[str, Any] | None) -> bool:
    """Whether the Request's key existed and has since been deleted on the proxy."""
    if request is None or payload_of(request).get("created") is not True:
        return False
    code, url, _ = last_answer(request)
    if "/key/info" not in url:
        return False
    if code == HTTP_NOT_FOUND:
        return True
    body = mapping(mapping(request.get("status")).get("response")).get("body")
    info = mapping(mapping(json_body(body)).get("info"))
    return code == HTTP_OK_MIN and info.get("status") == "deleted"


@dataclass(frozen=True)
class Answer:
    """LiteLLM's last answer to a Request, with what is needed to explain it."""

    code: int
    url: str
    text: str  # LiteLLM's error text, lower-cased, for classifying only: never shown
    connection: Connection

    @property
    def path(self) -> str:
        """The URL's path (without the query)."""
        return self.url.split("?")[0]

    @property
    def action(self) -> str:
        """What the call tried, in words."""
        return next((v for k, v in _ACTIONS.items() if k in self.url), "call LiteLLM")

    @property
    def detail(self) -> str:
        """The status code, as every message gives it."""
        return f"it answered HTTP {self.code}"


Rule = Callable[[Answer], "KeyState | None"]


@dataclass(frozen=True)
class About:
    """What the one classifier says of one kind of object (a key, a user, a team, a member)."""

    subject: str  # names it in messages: "Key team-a-service", "User team-a/alice (...)"
    creating: str  # before its Request exists
    not_found: Callable[[Answer], KeyState]  # a 404
    rejected: Callable[[Answer], str]  # any other refusal
    rules: tuple[Rule, ...] = ()  # the kind's own answers, read first


def classify(request: dict[str, Any] | None, connection: Connection, about: About) -> KeyState:
    """The state of an object from its observed Request (None: not created yet).

    The proxy's own text is never shown, only the status code and the call.
    """
    if request is None:
        return _not_ready("Creating", about.creating)
    status = mapping(request.get("status"))
    early = _before_answer(status, connection)
    if early is not None:
        return early
    code, url, text = last_answer(request)
    answer = Answer(code, url, text, connection)
    for rule in about.rules:
        found = rule(answer)
        if found is not None:
            return found
    return _by_code(answer, about)


def _by_code(answer: Answer, about: About) -> KeyState:  # noqa: PLR0911
    """What a status code no rule of the kind claimed says, for every kind alike."""
    code, connection = answer.code, answer.connection
    where = connection.base_url
    if code == 0:
        return _not_ready("Creating", "Waiting for LiteLLM's first answer.")
    if HTTP_OK_MIN <= code <= HTTP_OK_MAX:
        if answer.path.endswith(("/delete", "/member_delete")):
            return _not_ready("Deleting", f"{about.subject} is being deleted from {where}.")
        return _ready(f"{about.subject} is in place on {where}.")
    if code == HTTP_UNAUTHORIZED:
        secret = connection.master_key
        return _not_ready(
            "Unauthorized",
            f"LiteLLM at {where} refused the master key when trying to {answer.action} "
            f"({answer.detail}). Put the proxy's master key in Secret "
            f"{secret.namespace}/{secret.name}, data key {secret.key!r}.",
        )
    if code == HTTP_NOT_FOUND:
        return about.not_found(answer)
    if code >= HTTP_SERVER_ERROR:
        return _not_ready(
            "ProxyError",
            f"LiteLLM at {where} failed to {answer.action} ({answer.detail}). "
            "provider-http retries; check the proxy's logs and its database.",
        )
    return _not_ready("Rejected", about.rejected(answer))


def _before_answer(status: dict[str, Any], connection: Connection) -> KeyState | None:
    """Failures that happen before LiteLLM answers: transport and templating."""
    if status.get("error"):
        return _not_ready(
            "ProxyUnreachable",
            f"provider-http gets no answer from LiteLLM at {connection.base_url} (a "
            "connection error or a timeout). Check that the proxy runs and is reachable "
            "from provider-http; the key and its Secret are kept meanwhile.",
        )
    if _synced_failure(status):
        secret = connection.master_key
        return _not_ready(
            "RequestFailing",
            "provider-http cannot run the key's Request (its Synced condition is False). "
            f"Check that Secret {secret.namespace}/{secret.name} exists with data key "
            f"{secret.key!r}; the platform team finds provider-http's own error in the "
            "Request's status.",
        )
    return None


# --- a key ------------------------------------------------------------------------------------


def key_state(request: dict[str, Any] | None, connection: Connection, alias: str) -> KeyState:
    """The state of a key from its observed Request (None: not created yet)."""
    return classify(request, connection, _key(alias))


def _key(alias: str) -> About:
    def alias_taken(a: Answer) -> KeyState | None:
        if a.code != HTTP_BAD_REQUEST or "/key/generate" not in a.url or "alias" not in a.text:
            return None
        return _not_ready(
            "AliasConflict",
            f"keyAlias {alias!r} is already used by another key on {a.connection.base_url} "
            f"({a.detail}). Aliases are unique per proxy: recreate the VirtualKey with another "
            "keyAlias. If this VirtualKey is replacing a key whose Secret was lost, this "
            "clears once the old key is deleted.",
        )

    return About(
        subject=f"Key {alias}",
        creating="Waiting for the Request that creates the key.",
        not_found=lambda a: _not_ready(
            "KeyNotFound",
            f"LiteLLM at {a.connection.base_url} has no such key; it is being created again.",
        ),
        rejected=lambda a: (
            f"LiteLLM refused to {a.action} ({a.detail}). Check the VirtualKey's fields against "
            "what the proxy accepts (models it serves, team and user IDs that exist); the "
            "platform team finds LiteLLM's answer in the Request's status."
        ),
        rules=(alias_taken, _forbidden),
    )


def _forbidden(a: Answer) -> KeyState | None:
    if a.code != HTTP_FORBIDDEN:
        return None
    return _not_ready(
        "Forbidden",
        f"LiteLLM refused to {a.action} ({a.detail}). A field of the VirtualKey needs a "
        "feature the proxy does not have (tags need LiteLLM Enterprise): remove it, or "
        "enable that feature on the proxy.",
    )


# --- a user, a team, a member -----------------------------------------------------------------


def state_of(request: dict[str, Any] | None, connection: Connection, subject: str) -> KeyState:
    """The state of a User's, Team's or member's Request; `subject` names it in messages."""
    return classify(request, connection, _account(subject))


def _account(subject: str) -> About:
    def email_taken(a: Answer) -> KeyState | None:
        conflict = a.code in (HTTP_BAD_REQUEST, HTTP_CONFLICT)
        if not conflict or "/user/new" not in a.url or "email" not in a.text:
            return None
        return _not_ready(
            "EmailConflict",
            f"Another user on {a.connection.base_url} has this User's userEmail ({a.detail}); "
            "LiteLLM keeps e-mails unique per proxy. Use another userEmail, or ask the "
            "platform team to delete the other user.",
        )

    def id_taken(a: Answer) -> KeyState | None:
        conflict = a.code in (HTTP_BAD_REQUEST, HTTP_CONFLICT)
        created_here = a.path.endswith(("/user/new", "/team/new"))
        if not conflict or not created_here or "already exists" not in a.text:
            return None
        return _not_ready(
            "IDConflict",
            f"The LiteLLM ID of {subject} already exists on {a.connection.base_url} "
            f"({a.detail}) and was not made by this object, so it is never changed or deleted "
            "from here. Use another ID (userID or teamID), or ask the platform team to delete "
            "the existing one if it is nobody's.",
        )

    return About(
        subject=subject,
        creating=f"Waiting for the Request that creates {subject}.",
        not_found=lambda a: _not_ready(
            "NotFound", f"LiteLLM at {a.connection.base_url} has no {subject} yet; creating it."
        ),
        rejected=lambda a: (
            f"LiteLLM refused to {a.action} for {subject} ({a.detail}). Check the spec against "
            "what the proxy accepts (models it serves; a team admin role needs LiteLLM "
            "Enterprise); the platform team finds LiteLLM's answer in the Request's status."
        ),
        rules=(email_taken, id_taken),
    )

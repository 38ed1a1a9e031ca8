"""The one reader of what provider-http stored on a Request. Pure.

Every decision that rests on LiteLLM's answers reads them here: the stored
answer's status code, URL and body (bounded in size, parsed once, never
trusted to be any shape), the payload the function wrote, and the
annotations it keeps its memory in. Only Crossplane and provider-http write
a Request; the tenant role has no access to them (docs/tenancy.md, threat model).

- `is_request(obj)`: one of our Requests, by kind (never by name).
- `last_answer(request)` -> (status code, URL, error text); `answer_body`:
  the last 200 answer, parsed; `stored_answers`: it and provider-http's cache.
- `payload_of`, `annotations_of`, `created_at`: what the function wrote,
  and when the API server made the Request.
- `provider_has_it(request)`: provider-http has reconciled it once.
- `TOKEN`: what a key's token looks like (64 hex digits).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from function.provider_http.request import REQUEST_API_VERSION, REQUEST_KIND
from function.units import parse_time

TOKEN = re.compile(r"^[0-9a-f]{64}$")
HTTP_OK = 200
# Bodies longer than this are not parsed: an answer decides nothing it cannot prove.
MAX_BODY = 64 * 1024


def mapping(value: Any) -> dict[str, Any]:
    """`value` if it is a mapping, else an empty one."""
    return value if isinstance(value, dict) else {}


def is_request(resource: dict[str, Any] | None) -> bool:
    """Whether an observed resource is a provider-http Request, as the function composes.

    Crossplane observes what the XR's resource references list, and the
    tenant may be able to write those (and own Secrets named like anything):
    a resource counts as one of our Requests by its kind, never by its name.
    """
    return (
        isinstance(resource, dict)
        and resource.get("kind") == REQUEST_KIND
        and resource.get("apiVersion") == REQUEST_API_VERSION
    )


def provider_has_it(request: dict[str, Any] | None) -> bool:
    """Whether provider-http has reconciled the Request once (it then holds its finalizer).

    A Request deleted before that is gone at once, without its REMOVE: one that
    exists only to remove something may be dropped only after this.
    """
    status = (request or {}).get("status")
    return isinstance(status, dict) and isinstance(status.get("response"), dict)


def annotations_of(request: dict[str, Any] | None) -> dict[str, str]:
    """An observed resource's annotations (only string values)."""
    found = mapping(mapping((request or {}).get("metadata")).get("annotations"))
    return {k: v for k, v in found.items() if isinstance(v, str)}


def payload_of(request: dict[str, Any] | None) -> dict[str, Any]:
    """An observed Request's payload body, as the function wrote it ({} if unreadable)."""
    try:
        body = json.loads((request or {})["spec"]["forProvider"]["payload"]["body"])
    except (KeyError, TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def created_at(resource: dict[str, Any] | None) -> datetime | None:
    """When the API server created an observed resource (`metadata.creationTimestamp`)."""
    return parse_time(mapping(mapping(resource).get("metadata")).get("creationTimestamp"))


def json_body(body: Any, max_body: int = MAX_BODY) -> Any:
    """A stored body as JSON, or None: not a string, too long, or not JSON."""
    if not isinstance(body, str) or len(body) > max_body:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def status_code(value: Any) -> int:
    """An HTTP status code, or 0 for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    code = int(value)
    return code if 100 <= code <= 599 else 0  # noqa: PLR2004 - HTTP's range.


def error_text(body: Any) -> str:
    """LiteLLM's error text, lower-cased, only to classify an answer; never shown."""
    decoded = mapping(json_body(body))
    error = decoded.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"]).lower()
    detail = decoded.get("detail")
    return detail.lower() if isinstance(detail, str) else ""


def last_answer(request: dict[str, Any]) -> tuple[int, str, str]:
    """(status code, URL, lower-cased error text) of the last call provider-http stored."""
    status = mapping(request.get("status"))
    response = mapping(status.get("response"))
    url = mapping(status.get("requestDetails")).get("url")
    return (
        status_code(response.get("statusCode")),
        url if isinstance(url, str) else "",
        error_text(response.get("body")),
    )


def answer_body(request: dict[str, Any] | None, max_body: int = MAX_BODY) -> dict[str, Any] | None:
    """LiteLLM's last 200 answer stored on an observed Request, as JSON, or None."""
    response = mapping(mapping((request or {}).get("status")).get("response"))
    if response.get("statusCode") != HTTP_OK:
        return None
    decoded = json_body(response.get("body"), max_body)
    return decoded if isinstance(decoded, dict) else None


def stored_answers(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored answers of a Request: the last one, and provider-http's cache of one."""
    status = mapping(request.get("status"))
    cache = mapping(status.get("cache"))
    return [a for a in (mapping(status.get("response")), mapping(cache.get("response"))) if a]

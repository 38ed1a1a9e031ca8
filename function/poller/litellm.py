"""The HTTP client for one LiteLLM proxy, authenticated with its master key.

- `LiteLLMClient(base_url, master_key, timeout)`: `list_keys(page, size)`,
  `key_info_v2(tokens)`, `key_info(token)`, and `requests`, the number of
  HTTP requests it made (what the benchmark and the metrics count).
- The errors, mapped from HTTP in ONE place (`_check`), kopf-style:

  - `LiteLLMTemporaryError`: 5xx, 429, timeouts, transport errors and
    malformed JSON. Retried later with backoff.
  - `LiteLLMPermanentError`: any other refusal; `LiteLLMUnauthorized`
    (401, 403: a wrong master key) and `LiteLLMNotFound` (404) are its kinds.

The master key lives only in the client's default headers. No message built
here holds it, a raw key, a query string or more than a redacted snippet of
the proxy's answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import httpx

from function.poller.records import KeyRecord, MalformedKeyError, parse_key
from function.poller.redact import redact

PAGE_SIZE = 100


class LiteLLMError(Exception):
    """Any failure talking to a LiteLLM proxy. Messages are safe to log."""


class LiteLLMTemporaryError(LiteLLMError):
    """The proxy is down, slow, overloaded or answered garbage: try later."""


class LiteLLMPermanentError(LiteLLMError):
    """The proxy refused the request; retrying the same request will not help."""

    def __init__(self, message: str, status: int) -> None:
        """Keep the HTTP status for callers that branch on it."""
        super().__init__(message)
        self.status = status


class LiteLLMUnauthorized(LiteLLMPermanentError):  # noqa: N818 - kopf-style names.
    """401 or 403: the master key is wrong or lacks the right."""


class LiteLLMNotFound(LiteLLMPermanentError):  # noqa: N818
    """404: the key, or on older proxies the endpoint, does not exist.

    `route_missing` tells the two apart: LiteLLM's own 404s carry an
    `error` object; a route the proxy lacks answers FastAPI's bare
    `{"detail": "Not Found"}`.
    """

    def __init__(self, message: str, status: int, *, route_missing: bool) -> None:
        """Remember whether the route itself is missing."""
        super().__init__(message, status)
        self.route_missing = route_missing


@dataclass(frozen=True)
class KeyPage:
    """One page of `/key/list?return_full_object=true`."""

    records: list[KeyRecord]
    total_pages: int


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return redact(f"{error.get('type') or ''}: {error.get('message') or ''}", limit=160)
    detail = body.get("detail") if isinstance(body, dict) else None
    return redact(detail, limit=160) if detail is not None else ""


def _is_route_missing(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and isinstance(body.get("error"), dict))


def _check(response: httpx.Response, what: str) -> Any:
    """The decoded JSON body of a 2xx answer, or the mapped exception."""
    code = response.status_code
    if code >= 300:  # noqa: PLR2004
        detail = _error_detail(response)
        message = f"{what}: HTTP {code}" + (f" ({detail})" if detail else "")
        if code >= 500 or code in (408, 429):  # noqa: PLR2004
            raise LiteLLMTemporaryError(message)
        if code in (401, 403):
            raise LiteLLMUnauthorized(message + "; check the master key Secret", code)
        if code == 404:  # noqa: PLR2004
            raise LiteLLMNotFound(message, code, route_missing=_is_route_missing(response))
        raise LiteLLMPermanentError(message, code)
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        msg = f"{what}: the proxy answered HTTP {code} with malformed JSON"
        raise LiteLLMTemporaryError(msg) from None


def _malformed(what: str, problem: str) -> LiteLLMTemporaryError:
    return LiteLLMTemporaryError(f"{what}: unexpected answer: {problem}")


class LiteLLMClient:
    """A synchronous client for one proxy. Thread-safe; close() when done."""

    def __init__(
        self,
        base_url: str,
        master_key: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Make a client; `transport` lets tests plug in a mock."""
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {master_key}"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )
        self.requests = 0

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> LiteLLMClient:
        """Use as a context manager."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close on exit."""
        self.close()

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        self.requests += 1
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            msg = f"{what}: timed out"
            raise LiteLLMTemporaryError(msg) from None
        except httpx.HTTPError as e:
            msg = f"{what}: {type(e).__name__}: {redact(e, limit=120)}"
            raise LiteLLMTemporaryError(msg) from None
        return _check(response, what)

    def list_keys(self, page: int, size: int = PAGE_SIZE) -> KeyPage:
        """One page of full key objects, oldest first."""
        what = f"GET /key/list page {page}"
        body = self._send(
            "GET",
            "/key/list",
            what,
            params={
                "return_full_object": "true",
                "size": size,
                "page": page,
                # Oldest first: keys created during a listing land on the
                # last page instead of shifting the pages not yet read.
                "sort_by": "created_at",
                "sort_order": "asc",
            },
        )
        if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
            raise _malformed(what, "no 'keys' list")
        total = body.get("total_pages")
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise _malformed(what, "no 'total_pages' count")
        try:
            records = [parse_key(obj) for obj in body["keys"]]
        except MalformedKeyError as e:
            raise _malformed(what, str(e)) from None
        if any(r.token is None for r in records):
            raise _malformed(what, "a key object without 'token' (is return_full_object ignored?)")
        return KeyPage(records=records, total_pages=total)

    def key_info_v2(self, tokens: list[str]) -> list[KeyRecord]:
        """`POST /v2/key/info`: the keys that exist, in database order, without token."""
        what = f"POST /v2/key/info ({len(tokens)} keys)"
        body = self._send("POST", "/v2/key/info", what, json={"keys": tokens})
        if not isinstance(body, dict) or not isinstance(body.get("info"), list):
            raise _malformed(what, "no 'info' list")
        try:
            return [parse_key(obj) for obj in body["info"]]
        except MalformedKeyError as e:
            raise _malformed(what, str(e)) from None

    def key_info(self, token: str) -> KeyRecord:
        """`GET /key/info?key=<token>`; raises LiteLLMNotFound for unknown keys."""
        what = "GET /key/info"
        body = self._send("GET", "/key/info", what, params={"key": token})
        info = body.get("info") if isinstance(body, dict) else None
        if not isinstance(info, dict):
            raise _malformed(what, "no 'info' object")
        try:
            record = parse_key(info)
        except MalformedKeyError as e:
            raise _malformed(what, str(e)) from None
        return replace(record, token=token)

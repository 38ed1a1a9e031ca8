"""The HTTP client for one LiteLLM proxy, authenticated with its master key.

- `LiteLLMClient(base_url, master_key, timeout, max_bytes)`: `list_keys(page,
  size, alias=...)`, `get(path, what, params)`, and `requests`, the number of
  HTTP requests it made (what the benchmark and the metrics count).
  `timeout` bounds each whole request, not only each read: a proxy that
  drips one byte at a time cannot hold a cycle. `until` (a monotonic
  time, set by the caller) shortens that bound, so no request outlives the
  cycle's deadline. An answer larger than `max_bytes` is dropped unread;
  JSON nested deeper than Python decodes loses its deepest parts
  (`jsondepth`), so one key's hostile metadata cannot hide the others.
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

import functools
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from function.poller import jsondepth
from function.poller.records import KeyRecord, parse_keys
from function.poller.redact import redact

PAGE_SIZE = 100
# A page of 100 full key objects is about 300 kB; far more is not a LiteLLM answer.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class LiteLLMError(Exception):
    """Any failure talking to a LiteLLM proxy. Messages are safe to log.

    `summary` is the same in our own words only (the call and the status),
    without the proxy's text: what conditions and events may show.
    """

    def __init__(self, message: str, summary: str | None = None) -> None:
        """`message` for logs (redacted), `summary` for people (ours alone)."""
        super().__init__(message)
        self.summary = summary or message


class LiteLLMTemporaryError(LiteLLMError):
    """The proxy is down, slow, overloaded or answered garbage: try later."""


class LiteLLMPermanentError(LiteLLMError):
    """The proxy refused the request; retrying the same request will not help."""

    def __init__(self, message: str, status: int, summary: str | None = None) -> None:
        """Keep the HTTP status for callers that branch on it."""
        super().__init__(message, summary)
        self.status = status


class LiteLLMUnauthorized(LiteLLMPermanentError):  # noqa: N818 - kopf-style names.
    """401 or 403: the master key is wrong or lacks the right."""


class LiteLLMNotFound(LiteLLMPermanentError):  # noqa: N818
    """404: the key, or on older proxies the endpoint, does not exist.

    `route_missing` tells the two apart: LiteLLM's own 404s carry an
    `error` object; a route the proxy lacks answers FastAPI's bare
    `{"detail": "Not Found"}`.
    """

    def __init__(
        self, message: str, status: int, summary: str | None = None, *, route_missing: bool
    ) -> None:
        """Remember whether the route itself is missing."""
        super().__init__(message, status, summary)
        self.route_missing = route_missing


@dataclass(frozen=True)
class KeyPage:
    """One page of `/key/list?return_full_object=true`."""

    records: list[KeyRecord]
    total_pages: int


def _json(content: bytes) -> Any:
    """Decoded JSON (the deepest parts of very deep JSON dropped); ValueError for anything else."""
    return jsondepth.loads(content)


def _error_detail(response: httpx.Response) -> str:
    try:
        body = _json(response.content)
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return redact(f"{error.get('type') or ''}: {error.get('message') or ''}", limit=160)
    detail = body.get("detail") if isinstance(body, dict) else None
    return redact(detail, limit=160) if detail is not None else ""


def _is_route_missing(response: httpx.Response) -> bool:
    try:
        body = _json(response.content)
    except ValueError:
        return True
    return not (isinstance(body, dict) and isinstance(body.get("error"), dict))


def _check(response: httpx.Response, what: str) -> Any:
    """The decoded JSON body of a 2xx answer, or the mapped exception."""
    code = response.status_code
    if code >= 300:  # noqa: PLR2004
        detail = _error_detail(response)
        summary = f"{what}: HTTP {code}"
        message = summary + (f" ({detail})" if detail else "")
        if code >= 500 or code in (408, 429):  # noqa: PLR2004
            raise LiteLLMTemporaryError(message, summary)
        if code in (401, 403):
            fix = "; check the master key Secret"
            raise LiteLLMUnauthorized(message + fix, code, summary + fix)
        if code == 404:  # noqa: PLR2004
            missing = _is_route_missing(response)
            raise LiteLLMNotFound(message, code, summary, route_missing=missing)
        raise LiteLLMPermanentError(message, code, summary)
    try:
        return _json(response.content)
    except (ValueError, UnicodeDecodeError):
        msg = f"{what}: the proxy answered HTTP {code} with malformed JSON"
        raise LiteLLMTemporaryError(msg) from None


def _too_large(what: str, limit: int) -> LiteLLMTemporaryError:
    return LiteLLMTemporaryError(f"{what}: the answer is larger than {limit} bytes; not read")


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
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        """Make a client; `transport` lets tests plug in a mock."""
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._make_client = functools.partial(
            httpx.Client,
            base_url=base_url,
            headers={"Authorization": f"Bearer {master_key}"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )
        self._client = self._make_client()
        self.requests = 0
        # No request runs past this monotonic time (None: only `timeout` bounds it);
        # `until_text` names that limit in messages.
        self.until: float | None = None
        self.until_text = "its deadline"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> LiteLLMClient:
        """Use as a context manager."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close on exit."""
        self.close()

    def _limit(self, what: str) -> float:
        """Seconds this request may take: `timeout`, or less when `until` is nearer."""
        if self.until is None:
            return self.timeout
        left = self.until - time.monotonic()
        if left <= 0:
            msg = f"{what}: reading the proxy took longer than {self.until_text}; stopped"
            raise LiteLLMTemporaryError(msg)
        return min(self.timeout, left)

    def _timed_out(self, what: str, limit: float) -> LiteLLMTemporaryError:
        if limit < self.timeout:  # cut by `until`, not by the request's own timeout
            msg = f"{what}: reading the proxy took longer than {self.until_text}; stopped"
        else:
            msg = f"{what}: no whole answer within {self.timeout:g} s"
        return LiteLLMTemporaryError(msg)

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        limit = self._limit(what)
        self.requests += 1
        client = self._client
        deadline = time.monotonic() + limit
        # httpx bounds each read, not a whole request: past the deadline a
        # watchdog closes the connections, whatever stage the request is at.
        watchdog = threading.Timer(limit, client.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            response = self._read(client, method, path, what, deadline, timeout=limit, **kwargs)
        except httpx.TimeoutException:
            raise self._timed_out(what, limit) from None
        except (httpx.HTTPError, RuntimeError) as e:
            if time.monotonic() >= deadline:
                raise self._timed_out(what, limit) from None
            summary = f"{what}: {type(e).__name__}"
            msg = f"{summary}: {redact(e, limit=120)}"
            raise LiteLLMTemporaryError(msg, summary) from None
        finally:
            watchdog.cancel()
            if client.is_closed:
                self._client = self._make_client()
        return _check(response, what)

    def _read(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        what: str,
        deadline: float,
        **kwargs: Any,
    ) -> httpx.Response:
        """The response with its body read, at most `max_bytes` of it, before `deadline`."""
        with client.stream(method, path, **kwargs) as response:
            declared = response.headers.get("content-length") or "0"
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise _too_large(what, self.max_bytes)
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > self.max_bytes:
                    raise _too_large(what, self.max_bytes)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(what)
            response._content = bytes(body)
        return response

    def get(self, path: str, what: str, params: dict[str, Any]) -> Any:
        """`GET path` with `params`: the decoded answer, or a LiteLLMError naming `what`."""
        return self._send("GET", path, what, params=params)

    def list_keys(self, page: int, size: int = PAGE_SIZE, alias: str | None = None) -> KeyPage:
        """One page of full key objects, oldest first; only those holding `alias`, if given."""
        what = f"GET /key/list page {page}" + (" for one alias" if alias is not None else "")
        params: dict[str, Any] = {
            "return_full_object": "true",
            "size": size,
            "page": page,
            # Oldest first: keys created during a listing land on the
            # last page instead of shifting the pages not yet read.
            "sort_by": "created_at",
            "sort_order": "asc",
        }
        if alias is not None:
            params["key_alias"] = alias  # an exact match in LiteLLM
        body = self._send("GET", "/key/list", what, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
            raise _malformed(what, "no 'keys' list")
        total = body.get("total_pages")
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise _malformed(what, "no 'total_pages' count")
        # A key with a token but bad fields is that key's problem alone (`problem`);
        # an entry without a token means the whole listing is not what we asked for.
        records = parse_keys(body["keys"])
        if any(r.token is None for r in records):
            raise _malformed(what, "a key object without 'token' (is return_full_object ignored?)")
        return KeyPage(records=records, total_pages=total)

"""The API server over HTTP: one request, paged lists, and the errors, mapped in one place.

- `KubeApi(client, timeout)`: `request(method, path, what, ...)` sends one
  request through the kubernetes client's `ApiClient` (JSON in, dicts out,
  no models) and decodes the answer; `list(path, what, ...)` reads every
  item of a collection, 500 per request, each without what the poller never
  reads (`_trim`): at 10,000 VirtualKeys, with them the poller container
  went past 256Mi; without, it peaks at about 230 MiB.
- The errors, mapped from HTTP in one place (`_raise_for`): `KubeConflictError`
  (409), `KubeNotFoundError` (404), `KubeTemporaryError` (429, 5xx, transport)
  and `KubePermanentError` (anything else). Messages are safe to log.

Answers are decoded with `jsondepth.loads`: an object nested deeper than
Python decodes (a tenant can nest thousands of levels in a status field
its XRD leaves open) loses its deepest parts instead of failing the whole
listing, and with it every tenant's objects.
"""

from __future__ import annotations

import json
from typing import Any

import urllib3
from kubernetes import client as k8s

from function.poller import jsondepth
from function.poller.redact import redact

LIST_PAGE = 500
MAX_LIST_PAGES = 10_000  # five million objects
MERGE_PATCH = "application/merge-patch+json"
# Lists of objects' metadata only: no Secret data, no Request status.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"


class KubeError(Exception):
    """A failed Kubernetes API call. Messages are safe to log."""


class KubeTemporaryError(KubeError):
    """429, 5xx, a timeout or a broken connection: try again later."""


class KubePermanentError(KubeError):
    """A refusal that retrying will not fix (400, 403, 422, ...)."""


class KubeNotFoundError(KubePermanentError):
    """404: the object or the resource type does not exist."""


class KubeConflictError(KubeError):
    """409: someone else changed the object; read it again."""


def _raise_for(status: int, what: str, body: bytes) -> None:
    if 200 <= status < 300:  # noqa: PLR2004
        return
    detail = ""
    try:
        decoded = json.loads(body)
        if isinstance(decoded, dict):
            detail = str(decoded.get("message") or decoded.get("reason") or "")
    except ValueError:
        pass
    message = f"{what}: HTTP {status}" + (f" ({redact(detail, limit=200)})" if detail else "")
    if status == 409:  # noqa: PLR2004
        raise KubeConflictError(message)
    if status == 404:  # noqa: PLR2004
        raise KubeNotFoundError(message)
    if status >= 500 or status == 429:  # noqa: PLR2004
        raise KubeTemporaryError(message)
    raise KubePermanentError(message)


class KubeApi:
    """Requests to the API server, each within `timeout` seconds."""

    def __init__(self, client: k8s.ApiClient, timeout: float) -> None:
        """Send through `client`."""
        self._client = client
        self._timeout = timeout

    def request(  # noqa: PLR0913 - `accept` is rarely given, and only by name.
        self,
        method: str,
        path: str,
        what: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        *,
        accept: str = "application/json",
    ) -> Any:
        """The decoded answer, or the KubeError for its status; `what` names the call."""
        headers = {"Accept": accept}
        if body is not None:
            # Every PATCH here is a JSON merge patch of a status.
            headers["Content-Type"] = MERGE_PATCH if method == "PATCH" else "application/json"
        request = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(*request, _request_timeout=self._timeout)
            raw: Any = response
            data: bytes = raw.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            msg = f"{what}: {type(e).__name__}: {redact(e, limit=160)}"
            raise KubeTemporaryError(msg) from None
        except k8s.ApiException as e:
            _raise_for(int(e.status or 500), what, (e.body or "").encode())
            raise KubeTemporaryError(what) from None
        _raise_for(response.status, what, data or b"")
        try:
            return jsondepth.loads(data) if data else {}
        except ValueError:
            msg = f"{what}: the API server answered malformed JSON"
            raise KubeTemporaryError(msg) from None

    def list(
        self,
        path: str,
        what: str,
        *,
        missing_ok: bool = True,
        selector: str = "",
        accept: str = "application/json",
    ) -> list[dict[str, Any]]:
        """Every item of a collection, 500 per request; none if its type is not served.

        With `missing_ok=False`, a type that is not served is an error instead.
        """
        items: list[dict[str, Any]] = []
        token = ""
        seen: set[str] = set()
        while True:
            query = [("limit", str(LIST_PAGE))] + ([("continue", token)] if token else [])
            if selector:
                query.append(("labelSelector", selector))
            try:
                body = self.request("GET", path, what, query, accept=accept)
            except KubeNotFoundError:
                if not missing_ok:
                    raise
                return []  # that CRD is not installed
            items.extend(_trim(item) for item in _items(body, what))
            token = _continue_token(body)
            if not token:
                return items
            # A continue token seen before would page forever; so would endless pages.
            if token in seen or len(seen) >= MAX_LIST_PAGES:
                msg = f"{what}: the API server keeps paging (continue token repeated); stopped"
                raise KubeTemporaryError(msg)
            seen.add(token)


def _items(body: Any, what: str) -> list[dict[str, Any]]:
    """The objects of one page of a list."""
    if not isinstance(body, dict):
        msg = f"{what}: the API server answered something other than a list"
        raise KubeTemporaryError(msg)
    listed = body.get("items")
    return [i for i in listed if isinstance(i, dict)] if isinstance(listed, list) else []


# Written by the API server and by `kubectl apply`, read by nothing here, and
# together often larger than the rest of the object.
_UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def _trim(item: dict[str, Any]) -> dict[str, Any]:
    """`item` without its managedFields and the annotations nothing here reads."""
    meta = item.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            for name in _UNREAD_ANNOTATIONS:
                annotations.pop(name, None)
    return item


def _continue_token(body: dict[str, Any]) -> str:
    """Where the next page starts; empty after the last one."""
    meta = body.get("metadata")
    return str((meta if isinstance(meta, dict) else {}).get("continue") or "")

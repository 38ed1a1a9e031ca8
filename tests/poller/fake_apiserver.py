"""A small Kubernetes API server for the poller's tests, over real HTTP.

The kubernetes client talks to it through a kubeconfig (bearer token), so
URLs, verbs, query parameters, content types and bodies are the real ones.
It keeps objects in memory and checks what the poller relies on:

- VirtualKeys (`virtualkeys`, namespaced) and legacy XVirtualKeys
  (`xvirtualkeys`, cluster-scoped) in group auth.litellm.ai/v1alpha1:
  list (with `limit` and `continue`), get, and PATCH of the `/status`
  subresource. Status patches must be `application/merge-patch+json`
  (else 415); they apply RFC 7386 to `status` only and ignore every other
  field, as the status subresource does; a `metadata.resourceVersion` in
  the patch that is not the current one answers 409; each accepted write
  bumps resourceVersion and records the `fieldManager`.
- Secrets (get; list per namespace, paged, as full objects or, with the
  `as=PartialObjectMetadataList` Accept header, metadata only; delete,
  with uid and resourceVersion preconditions, 409 when they do not
  match), Events (create), Leases (get, create, update with a
  resourceVersion check), TenancyPolicies and Namespaces (list, paged),
  provider-http Requests (`requests`, list across namespaces, paged, with
  an equality `labelSelector`; `requests_served = False` answers 404).
- `raw`: placeholder string -> JSON text put in every answer in place of
  the placeholder, for JSON Python's encoder cannot write (nested deeper
  than its recursion limit).
- Faults: `fail(method, fragment, status, times)` answers `status` to the
  next matching requests; `before_patch` is called before a status patch
  is applied (to play a concurrent writer).

What it does not check: authorization (RBAC), admission and the XRD's
OpenAPI schema, server-side apply and managedFields merging, watch, label
selectors other than on Requests, field selectors, and the real API
server's exact error bodies.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from benchmarks.loopback import LoopbackServer, read_body

GROUP_PATH = "/apis/auth.litellm.ai/v1alpha1"
POLICY_PATH = "/apis/litellm.fn.crossplane.io/v1beta1/tenancypolicies"
NAMESPACES_PATH = "/api/v1/namespaces"
REQUESTS_PATH = "/apis/http.m.crossplane.io/v1alpha2/requests"
METADATA_ONLY = "as=PartialObjectMetadataList"
KINDS = {
    "virtualkeys": "VirtualKey",
    "xvirtualkeys": "XVirtualKey",
    "users": "User",
    "teams": "Team",
}
TOKEN = "test-token"  # the API server's bearer token, not a LiteLLM key

Key = tuple[str, str | None, str]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


@dataclass
class Write:
    """One accepted status patch."""

    key: Key
    body: dict[str, Any]
    content_type: str
    field_manager: str | None


@dataclass
class Fault:
    method: str
    fragment: str
    status: int
    times: int


@dataclass
class FakeAPIServer:
    """The fake API server; use as a context manager."""

    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    secret_meta: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    deleted_secrets: list[tuple[str, str]] = field(default_factory=list)
    # Accept headers of Secret listings: the poller asks for metadata only.
    secret_list_accepts: list[str] = field(default_factory=list)
    # provider-http Requests: (namespace, name) -> labels.
    http_requests: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    requests_served: bool = True
    raw: dict[str, str] = field(default_factory=dict)
    leases: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    served: set[str] = field(default_factory=lambda: set(KINDS))
    before_patch: Callable[[Key], None] | None = None
    # A broken API server that hands out the same continue token forever.
    repeat_continue: str | None = None
    version: int = 100

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._server = LoopbackServer(_handler(self))

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> FakeAPIServer:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop()

    def kubeconfig(self, directory: Path) -> str:
        path = directory / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "poller", "user": {"token": TOKEN}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "poller"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return str(path)

    # -- test helpers --------------------------------------------------------

    def next_version(self) -> str:
        with self.lock:
            self.version += 1
            return str(self.version)

    def add(self, plural: str, obj: dict[str, Any]) -> Key:
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", "auth.litellm.ai/v1alpha1")
        obj.setdefault("kind", KINDS[plural])
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = self.next_version()
        meta.setdefault("generation", 1)
        meta.setdefault("uid", f"uid-{meta['name']}")
        key = (plural, meta.get("namespace"), meta["name"])
        self.objects[key] = obj
        return key

    def add_secret(
        self, namespace: str, name: str, data: dict[str, str], created: datetime | None = None
    ) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        with self.lock:
            self.secrets[(namespace, name)] = encoded
            self.secret_meta[(namespace, name)] = {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-secret-{namespace}-{name}",
                "resourceVersion": self.next_version(),
                "creationTimestamp": (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }

    def add_request(self, namespace: str, name: str, labels: dict[str, str]) -> None:
        """A provider-http Request (only its metadata is kept)."""
        with self.lock:
            self.http_requests[(namespace, name)] = dict(labels)

    def add_policy(self, policy: dict[str, Any]) -> None:
        """Create or replace a TenancyPolicy."""
        with self.lock:
            self.policies[policy["metadata"]["name"]] = copy.deepcopy(policy)

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        with self.lock:
            self.namespaces[name] = dict(labels or {})

    def status(self, key: Key) -> dict[str, Any]:
        status: dict[str, Any] = self.objects[key].get("status") or {}
        return status

    def set_status(self, key: Key, status: dict[str, Any]) -> None:
        """Play another writer (Crossplane, the function): replace part of the status."""
        with self.lock:
            obj = self.objects[key]
            obj["status"] = merge_patch(obj.get("status") or {}, status)
            obj["metadata"]["resourceVersion"] = self.next_version()

    def fail(self, method: str, fragment: str, status: int, times: int = 1) -> None:
        self.faults.append(Fault(method, fragment, status, times))

    def writes_to(self, key: Key) -> list[Write]:
        return [w for w in self.writes if w.key == key]

    # -- request handling ----------------------------------------------------

    def handle(  # noqa: C901, PLR0911 - one return per route.
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        with self.lock:
            self.requests.append((method, target))
            if headers.get("authorization") != f"Bearer {TOKEN}":
                return _status(401, "Unauthorized")
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and fault.fragment in path:
                    fault.times -= 1
                    return _status(fault.status, "injected fault")
        if path.startswith(GROUP_PATH):
            return self._virtualkeys(method, path[len(GROUP_PATH) :], query, headers, body)
        if path in (POLICY_PATH, NAMESPACES_PATH) and method == "GET":
            return 200, self._cluster_list(path, query)
        if path == REQUESTS_PATH and method == "GET":
            if not self.requests_served:
                return _status(404, "the server could not find the requested resource")
            return 200, self._requests(query, headers)
        if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets(?:/([^/]+))?", path):
            return self._secret_route(method, (m[1], m[2]), query, headers, body)
        if (m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/events", path)) and method == "POST":
            event = json.loads(body)
            with self.lock:
                self.events.append(event)
            return 201, event
        if m := re.fullmatch(
            r"/apis/coordination.k8s.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?", path
        ):
            return self._lease(method, m[1], m[2], body)
        return _status(404, f"no route {path}")

    def _secret_route(
        self,
        method: str,
        where: tuple[str, str | None],
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, Any]:
        namespace, name = where
        if name is None:
            if method != "GET":
                return _status(405, "method not allowed")
            return 200, self._secrets(namespace, query, headers)
        if method == "DELETE":
            return self._delete_secret((namespace, name), body)
        secret = self.secrets.get((namespace, name))
        if secret is None or method != "GET":
            return _status(404, "secret not found")
        meta = self.secret_meta.get((namespace, name), {})
        return 200, {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": secret}

    def _secrets(
        self, namespace: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> dict[str, Any]:
        accept = headers.get("accept", "")
        with self.lock:
            self.secret_list_accepts.append(accept)
            keys = sorted(k for k in self.secrets if k[0] == namespace)
            if METADATA_ONLY in accept:
                meta = [{"metadata": copy.deepcopy(self.secret_meta[k])} for k in keys]
                return _paged(meta, query, "PartialObjectMetadataList", self.version)
            items: list[dict[str, Any]] = [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": copy.deepcopy(self.secret_meta[k]),
                    "data": dict(self.secrets[k]),
                }
                for k in keys
            ]
            return _paged(items, query, "SecretList", self.version)

    def _delete_secret(self, key: tuple[str, str], body: bytes) -> tuple[int, Any]:
        options = json.loads(body) if body else {}
        wanted = options.get("preconditions") or {}
        with self.lock:
            meta = self.secret_meta.get(key)
            if meta is None:
                return _status(404, "secret not found")
            for name in ("uid", "resourceVersion"):
                if name in wanted and wanted[name] != meta[name]:
                    return _status(409, f"Precondition failed: {name} does not match")
            del self.secrets[key]
            del self.secret_meta[key]
            self.deleted_secrets.append(key)
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    def _requests(self, query: dict[str, list[str]], headers: dict[str, str]) -> dict[str, Any]:
        selector = query.get("labelSelector", [""])[0]
        wanted = dict(p.split("=", 1) for p in selector.split(",") if p)
        with self.lock:
            items = [
                {
                    "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
                    **(
                        {}
                        if METADATA_ONLY in headers.get("accept", "")
                        else {"spec": {}, "status": {}}
                    ),
                }
                for (ns, name), labels in sorted(self.http_requests.items())
                if all(labels.get(k) == v for k, v in wanted.items())
            ]
            return _paged(items, query, "RequestList", self.version)

    def _cluster_list(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """TenancyPolicies or Namespaces, one page."""
        with self.lock:
            if path == POLICY_PATH:
                items = [copy.deepcopy(p) for _, p in sorted(self.policies.items())]
                return _paged(items, query, "TenancyPolicyList", self.version)
            items = [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": ls}}
                for n, ls in sorted(self.namespaces.items())
            ]
            return _paged(items, query, "NamespaceList", self.version)

    def _virtualkeys(
        self,
        method: str,
        rest: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, Any]:
        parts = rest.strip("/").split("/")
        namespace = None
        if parts[0] == "namespaces":
            namespace, parts = parts[1], parts[2:]
        plural = parts[0]
        if plural not in self.served:
            return _status(404, f"the server could not find the requested resource ({plural})")
        if len(parts) == 1 and method == "GET":
            return 200, self._list(plural, namespace, query)
        key = (plural, namespace, parts[1])
        with self.lock:
            obj = self.objects.get(key)
        if obj is None:
            return _status(404, f"{plural} {parts[1]} not found")
        if len(parts) == 2 and method == "GET":
            with self.lock:
                return 200, copy.deepcopy(obj)
        if len(parts) == 3 and parts[2] == "status" and method == "PATCH":
            return self._patch_status(key, query, headers, body)
        return _status(405, "method not allowed")

    def _list(
        self, plural: str, namespace: str | None, query: dict[str, list[str]]
    ) -> dict[str, Any]:
        with self.lock:
            items = [
                copy.deepcopy(o)
                for (p, ns, _), o in sorted(self.objects.items(), key=lambda kv: str(kv[0]))
                if p == plural and (namespace is None or ns == namespace)
            ]
        page = _paged(items, query, f"{KINDS[plural]}List", self.version)
        if self.repeat_continue:
            page["metadata"]["continue"] = self.repeat_continue
        return page

    def _patch_status(
        self, key: Key, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        content_type = headers.get("content-type", "")
        if content_type != "application/merge-patch+json":
            return _status(415, f"unsupported content type {content_type}")
        patch = json.loads(body)
        if self.before_patch is not None:
            self.before_patch(key)
        with self.lock:
            obj = self.objects.get(key)
            if obj is None:
                return _status(404, f"{key[0]} {key[2]} not found")
            wanted = (patch.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
                return _status(
                    409,
                    "the object has been modified; please apply your changes to the latest version",
                )
            obj["status"] = merge_patch(obj.get("status") or {}, patch.get("status") or {})
            obj["metadata"]["resourceVersion"] = self.next_version()
            self.writes.append(
                Write(key, patch, content_type, next(iter(query.get("fieldManager") or []), None))
            )
            return 200, copy.deepcopy(obj)

    def _lease(  # noqa: PLR0911
        self, method: str, namespace: str, name: str | None, body: bytes
    ) -> tuple[int, Any]:
        with self.lock:
            if method == "GET" and name:
                lease = self.leases.get((namespace, name))
                return (200, copy.deepcopy(lease)) if lease else _status(404, "lease not found")
            if method == "POST":
                lease = json.loads(body)
                lease_key = (namespace, lease["metadata"]["name"])
                if lease_key in self.leases:
                    return _status(409, "already exists")
                lease["metadata"]["resourceVersion"] = self.next_version()
                self.leases[lease_key] = lease
                return 201, copy.deepcopy(lease)
            if method == "PUT" and name:
                lease = json.loads(body)
                current = self.leases.get((namespace, name))
                if current is None:
                    return _status(404, "lease not found")
                if (
                    lease["metadata"].get("resourceVersion")
                    != current["metadata"]["resourceVersion"]
                ):
                    return _status(409, "conflict")
                lease["metadata"]["resourceVersion"] = self.next_version()
                self.leases[(namespace, name)] = lease
                return 200, copy.deepcopy(lease)
        return _status(405, "method not allowed")


def _paged(
    items: list[dict[str, Any]], query: dict[str, list[str]], kind: str, version: int
) -> dict[str, Any]:
    """One page of a list, with `limit` and `continue` as the API server pages."""
    token = query.get("continue", ["0"])[0] or "0"
    start = int(token) if token.isdigit() else 0
    limit = int(query.get("limit", ["0"])[0] or 0) or len(items) or 1
    more = start + limit < len(items)
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "resourceVersion": str(version),
            "continue": str(start + limit) if more else "",
        },
        "items": items[start : start + limit],
    }


def _status(code: int, message: str) -> tuple[int, dict[str, Any]]:
    return code, {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "code": code,
    }


def _handler(server: FakeAPIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle and
            # delayed ACKs add 40 ms to every request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            body = read_body(self)
            headers = {k.lower(): v for k, v in self.headers.items()}
            code, payload = server.handle(self.command, self.path, headers, body)
            text = json.dumps(payload)
            for placeholder, raw in server.raw.items():
                text = text.replace(json.dumps(placeholder), raw)
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler

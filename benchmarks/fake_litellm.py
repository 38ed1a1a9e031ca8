"""A LiteLLM-compatible fake proxy for the poller's tests and benchmark.

It serves the key endpoints the poller uses, with bodies copied from the real
proxy's recorded answers in `../shared/litellm/samples` (LiteLLM 1.108.7):
each key is the sample object with its token, alias, spend, budgets, expiry
and blocked flag replaced.

- `GET /key/list?return_full_object=true&size=&page=` (sample 08/09): full
  objects with `token`, `total_count`, `current_page`, `total_pages`;
  `sort_by=created_at&sort_order=asc` honoured, else newest first, as the
  proxy does; `key_alias=` lists only the keys holding exactly that alias.
  Deleted keys are not listed. Each key has `created_by` and `updated_by`
  (the master key's `default_user_id` unless a test says otherwise) and, for
  a key made with `owner=(namespace, name)`, the function's provenance
  metadata naming that VirtualKey.
- `POST /v2/key/info` (sample 11/13): `{"key": [as sent], "info": [...]}`,
  info in database (creation) order, without `token`, unknown and deleted
  keys silently left out.
- `GET /key/info?key=<token>` (sample 17 and 02): 200 with `info`, `status`
  "deleted" for deleted keys; 404 for unknown ones.
- Anything with another master key: 401, with the proxy's error body.

`FakeLiteLLM` runs it on 127.0.0.1 on a thread; `requests` counts requests
by path. Faults for tests: `fail_status` (every request answers it),
`delay` (seconds before answering), `malformed` (200 with broken JSON),
`missing` (paths answering 404 as if the route did not exist).
`POST /_fake/bump?count=N` adds spend to N keys (for the benchmark, which
runs the poller in another process); it is not counted.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from benchmarks.loopback import LoopbackServer

SAMPLES = Path(
    os.environ.get(
        "LITELLM_SAMPLES_DIR",
        str(Path(__file__).resolve().parents[2] / "shared" / "litellm" / "samples"),
    )
)


def _sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def _templates() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    listed = _sample("08-key-list-full.json")["body"]["keys"][1]
    v2 = _sample("11-v2-key-info.json")["body"]["info"][0]
    info = _sample("02-key-info.json")["body"]["info"]
    return listed, v2, info


class FakeKey:
    """One key in the fake's database."""

    def __init__(  # noqa: PLR0913, PLR0917 - one argument per key field.
        self,
        token: str,
        alias: str,
        spend: float = 0.0,
        max_budget: float | None = None,
        expires: str | None = None,
        blocked: bool | None = None,  # noqa: FBT001
        soft_budget: float | None = None,
        budget_reset_at: str | None = None,
        created: int = 0,
        owner: tuple[str, str] | None = None,
        created_by: str | None = "default_user_id",
        updated_by: str | None = "default_user_id",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.token = token
        self.alias = alias
        self.spend = spend
        self.max_budget = max_budget
        self.expires = expires
        self.blocked = blocked
        self.soft_budget = soft_budget
        self.budget_reset_at = budget_reset_at
        self.created = created
        self.deleted = False
        self.created_by = created_by
        self.updated_by = updated_by
        self.metadata = dict(metadata or {})
        if owner is not None:
            # What function.provenance.stamp writes on every key the function makes.
            self.metadata.update(
                {"auth.litellm.ai/namespace": owner[0], "auth.litellm.ai/virtualkey": owner[1]}
            )


class FakeLiteLLM:
    """The fake proxy, serving on 127.0.0.1 from a thread."""

    def __init__(self, master_key: str = "sk-fake-master", port: int = 0) -> None:
        self.master_key = master_key
        self.keys: dict[str, FakeKey] = {}
        self._by_alias: dict[str, list[str]] = {}  # alias -> tokens (an alias is fixed at add)
        self.requests: Counter[str] = Counter()
        self.alias_queries: list[str] = []  # the key_alias of each /key/list that had one
        self.fail_status: int | None = None
        self.delay = 0.0
        self.malformed = False
        self.missing: set[str] = set()
        self.connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listed, self._v2, self._info = _templates()
        self._server = LoopbackServer(self._handler(), port)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> FakeLiteLLM:
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop kept-alive connections: the proxy is gone."""
        self._server.stop()
        for conn in list(self.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> FakeLiteLLM:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def add(self, token: str, alias: str, **fields: Any) -> FakeKey:
        with self._lock:
            key = FakeKey(token, alias, created=len(self.keys), **fields)
            self.keys[token] = key
            self._by_alias.setdefault(alias, []).append(token)
            return key

    def bump(self, count: int, by: float = 0.01) -> int:
        """Add spend to the first `count` keys (the benchmark's changes); not counted."""
        with self._lock:
            keys = list(self.keys.values())[:count]
            for key in keys:
                key.spend = round(key.spend + by, 6)
            return len(keys)

    def total_requests(self) -> int:
        return sum(self.requests.values())

    # -- rendering, from the samples --------------------------------------

    def _common(self, base: dict[str, Any], key: FakeKey, zulu: bool) -> dict[str, Any]:  # noqa: FBT001
        obj = copy.copy(base)
        stamp = f"2026-11-28T20:{key.created // 60 % 60:02d}:{key.created % 60:02d}.000000"
        stamp += "Z" if zulu else "+00:00"
        obj.update(
            key_name=f"sk-...{key.token[-4:]}",
            key_alias=key.alias,
            spend=key.spend,
            total_spend=key.spend,
            max_budget=key.max_budget,
            expires=key.expires,
            blocked=key.blocked,
            budget_duration="1d" if key.budget_reset_at else None,
            budget_reset_at=key.budget_reset_at,
            created_at=stamp,
            updated_at=stamp,
            created_by=key.created_by,
            updated_by=key.updated_by,
            metadata=key.metadata,
        )
        if key.soft_budget is not None:
            obj["litellm_budget_table"] = {
                "budget_id": key.token[:8],
                "soft_budget": key.soft_budget,
            }
        return obj

    def listed(self, key: FakeKey) -> dict[str, Any]:
        obj = self._common(self._listed, key, zulu=True)
        obj["token"] = key.token
        return obj

    def v2(self, key: FakeKey) -> dict[str, Any]:
        return self._common(self._v2, key, zulu=False)

    def info(self, key: FakeKey) -> dict[str, Any]:
        obj = self._common(self._info, key, zulu=False)
        if key.deleted:
            obj.update(
                deleted_at="2026-11-28T21:00:00+00:00",
                deleted_by="default_user_id",
                status="deleted",
            )
        return obj

    # -- endpoints ---------------------------------------------------------

    def handle(  # noqa: PLR0911 - one return per endpoint and fault.
        self, method: str, target: str, body: bytes, auth: str
    ) -> tuple[int, Any]:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        if path == "/_fake/bump" and method == "POST":
            return 200, {"bumped": self.bump(int(query.get("count", ["0"])[0]))}
        with self._lock:
            self.requests[path] += 1
        if self.delay:
            time.sleep(self.delay)
        if self.fail_status is not None:
            return self.fail_status, {
                "error": {"message": "injected", "type": "fault", "code": "500"}
            }
        if path in self.missing:
            return 404, {"detail": "Not Found"}
        if auth != f"Bearer {self.master_key}":
            return 401, {
                "error": {
                    "message": "Authentication Error, Invalid API key provided.",
                    "type": "token_not_found_in_db",
                    "param": "key",
                    "code": "401",
                }
            }
        with self._lock:
            if method == "GET" and path == "/key/list":
                return 200, self._list(query)
            if method == "POST" and path == "/v2/key/info":
                return 200, self._v2_info(json.loads(body or b"{}"))
            if method == "GET" and path == "/key/info":
                return self._key_info(query.get("key", [""])[0])
        return 404, {"detail": "Not Found"}

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        size = int(query.get("size", ["10"])[0])
        page = int(query.get("page", ["1"])[0])
        if "key_alias" in query:
            alias = query["key_alias"][0]
            self.alias_queries.append(alias)
            live = [self.keys[t] for t in self._by_alias.get(alias, [])]
            live = [k for k in live if not k.deleted and k.alias == alias]
        else:
            live = [k for k in self.keys.values() if not k.deleted]
        ascending = query.get("sort_by") == ["created_at"] and query.get("sort_order") == ["asc"]
        live.sort(key=lambda k: k.created, reverse=not ascending)
        chunk = live[(page - 1) * size : page * size]
        full = query.get("return_full_object") == ["true"]
        return {
            "keys": [self.listed(k) if full else k.token for k in chunk],
            "total_count": len(live),
            "current_page": page,
            "total_pages": -(-len(live) // size),
        }

    def _v2_info(self, body: dict[str, Any]) -> dict[str, Any]:
        asked = set(body.get("keys") or [])
        found = [k for k in self.keys.values() if k.token in asked and not k.deleted]
        found.sort(key=lambda k: k.created)  # database order, not request order
        return {"key": body.get("keys"), "info": [self.v2(k) for k in found]}

    def _key_info(self, token: str) -> tuple[int, Any]:
        key = self.keys.get(token)
        if key is None:
            return 404, {
                "error": {
                    "message": "Key not found in database",
                    "type": "not_found_error",
                    "param": "key",
                    "code": "404",
                }
            }
        return 200, {"key": token, "info": self.info(key)}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; without this, Nagle
                # and delayed ACKs add 40 ms to every request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                fake.connections.add(self.connection)

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload = fake.handle(
                    method, self.path, body, self.headers.get("Authorization", "")
                )
                data = b'{"keys": [' if fake.malformed else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True  # the client gave up (timeout tests)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler


if __name__ == "__main__":
    import hashlib
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with FakeLiteLLM(port=4010) as fake:
        for i in range(count):
            token = hashlib.sha256(f"sk-{i}".encode()).hexdigest()
            fake.add(token, f"key-{i}", spend=i / 1000, owner=("default", f"key-{i}"))
        print(f"fake LiteLLM on {fake.url} with {count} keys; master key {fake.master_key}")
        threading.Event().wait()

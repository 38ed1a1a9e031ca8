"""An HTTP server on 127.0.0.1, served from a daemon thread.

The fake LiteLLM (benchmarks/fake_litellm.py) and the fake Kubernetes API
server (tests/poller/fake_apiserver.py) both run on it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request's body, by its Content-Length."""
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def send_json(handler: BaseHTTPRequestHandler, code: int, payload: Any) -> None:
    """Answer with `payload` as JSON, keeping the connection alive."""
    data = json.dumps(payload).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class LoopbackServer:
    """`start()` serves `handler` on a free (or given) loopback port; `stop()` closes it."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self.http = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.http.daemon_threads = True
        self._thread = threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()

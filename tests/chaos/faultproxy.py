"""A fault-injecting HTTPS proxy in front of the real kube-apiserver.

It terminates TLS with its own certificate, forwards each request to the API server and, at
seeded random, answers instead:

- ``500`` or ``429`` (with ``Retry-After``) *without* forwarding the request;
- ``500`` *after* forwarding it: the change happened, the client does not know (a create
  retried after this must adopt the existing object, not make a second one);
- for a watch, the stream is cut after a random short time (a dropped watch).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import ssl
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.tls import make_certificate, server_context

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}


def _status(code: int, reason: str) -> bytes:
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": f"injected by the chaos proxy: {reason}",
            "reason": reason,
            "code": code,
        }
    ).encode()


class FaultProxy:
    """``start()`` it, point a kubeconfig at ``url`` with ``ca_file``, read ``injected``."""

    def __init__(
        self,
        upstream: str,
        upstream_ca: Path,
        workdir: Path,
        rng: random.Random,
        *,
        error_rate: float = 0.2,
        watch_cut_s: tuple[float, float] = (0.5, 4.0),
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 443)
        self.upstream_context = ssl.create_default_context(cafile=str(upstream_ca))
        self.ca_file, key = make_certificate(workdir, ("localhost",))
        self.rng, self.error_rate, self.watch_cut_s = rng, error_rate, watch_cut_s
        self.injected: Counter[str] = Counter()
        self.enabled = threading.Event()
        self.enabled.set()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = server_context(self.ca_file, key).wrap_socket(
            self.server.socket, server_side=True
        )
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    @property
    def faults(self) -> int:
        return sum(self.injected.values())

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _roll(self) -> float:
        with self._lock:
            return self.rng.random()

    def _count(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        watch = "watch=true" in handler.path or "watch=1" in handler.path
        roll = self._roll() if self.enabled.is_set() else 1.0
        if not watch and roll < self.error_rate / 3:
            self._count("500 (not forwarded)")
            self._reply(handler, 500, _status(500, "InternalError"))
            return
        if not watch and roll < 2 * self.error_rate / 3:
            self._count("429")
            self._reply(handler, 429, _status(429, "TooManyRequests"), {"Retry-After": "1"})
            return
        lost_reply = not watch and roll < self.error_rate
        upstream = http.client.HTTPSConnection(
            *self.upstream, context=self.upstream_context, timeout=330
        )
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            if lost_reply:
                response.read()
                self._count("500 (after forwarding)")
                self._reply(handler, 500, _status(500, "InternalError"))
                return
            if watch:
                self._stream(handler, response, upstream)
                return
            data = response.read()
            extra = {
                k: v for k, v in response.getheaders() if k.lower() not in _HOP | {"content-length"}
            }
            self._reply(handler, response.status, data, extra)
        except (OSError, http.client.HTTPException):
            with contextlib.suppress(OSError):
                self._reply(handler, 502, _status(502, "BadGateway"))
        finally:
            upstream.close()

    def _stream(
        self,
        handler: BaseHTTPRequestHandler,
        response: http.client.HTTPResponse,
        upstream: http.client.HTTPSConnection,
    ) -> None:
        """Relay a watch as chunks until the upstream ends it or the cut comes."""
        handler.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP | {"content-length"}:
                handler.send_header(key, value)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        cut = threading.Event()

        def drop() -> None:
            if not self.enabled.is_set():
                return
            cut.set()
            self._count("watch cut")
            for sock in (handler.connection, upstream.sock):
                with contextlib.suppress(OSError, AttributeError):
                    sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]

        timer = threading.Timer(self.rng.uniform(*self.watch_cut_s), drop)
        timer.daemon = True
        timer.start()
        try:
            while not cut.is_set():
                try:
                    chunk = response.read1(65536)
                except (OSError, http.client.HTTPException, ValueError):
                    chunk = b""
                if not chunk:
                    if not cut.is_set():
                        handler.wfile.write(b"0\r\n\r\n")
                    return
                handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                handler.wfile.flush()
        except OSError:
            return
        finally:
            timer.cancel()
            handler.close_connection = True

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        if not any(k.lower() == "content-type" for k in headers or {}):
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

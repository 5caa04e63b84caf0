"""A local managed-identity endpoint (App Service style), so ``DefaultAzureCredential`` in a
process the test cannot reach into (a `kubesweep run` subprocess) gets the fake vault's
token unchanged: ``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``, one GET per token."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HEADER = "identity-header-for-tests"


@dataclass
class IdentityServer:
    httpd: ThreadingHTTPServer
    token: str

    @property
    def env(self) -> dict[str, str]:
        """What makes ``DefaultAzureCredential`` use this endpoint."""
        return {
            "IDENTITY_ENDPOINT": f"http://127.0.0.1:{self.httpd.server_address[1]}/msi/token",
            "IDENTITY_HEADER": HEADER,
        }

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if self.headers.get("X-IDENTITY-HEADER") != HEADER or "resource" not in query:
            self._reply(400, {"error": "invalid_request"})
            return
        self._reply(
            200,
            {
                "access_token": self.server.token,
                "expires_on": str(int(time.time()) + 3600),
                "resource": query["resource"][0],
                "token_type": "Bearer",
            },
        )

    def _reply(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    token: str


def start_identity(token: str) -> IdentityServer:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.token = token
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return IdentityServer(httpd, token)

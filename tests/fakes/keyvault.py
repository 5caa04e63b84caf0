"""A local Azure Key Vault data plane over HTTPS (storage-test-env.md §6.3).

Implements the bearer challenge (401 + ``WWW-Authenticate``), ``GET /secrets/{name}[/]``,
``GET /secrets/{name}/{version}``, ``PUT /secrets/{name}`` and 404 ``SecretNotFound``, so
the real ``SecretClient`` talks to it unchanged. Tokens come from `FakeCredential`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken

from .tls import make_certificate, server_context

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TOKEN = "fake-vault-token"


class FakeCredential:
    """An azure-core ``TokenCredential`` that hands out the fake vault's token."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls.append((scopes, kwargs))
        return AccessToken(self.token, int(time.time()) + 3600)

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class KeyVaultServer:
    """A running fake vault: ``url``, the CA to trust (``cert``), and its secrets."""

    httpd: ThreadingHTTPServer
    cert: Path
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def set_secret(self, name: str, value: str) -> str:
        version = uuid.uuid4().hex
        self.secrets.setdefault(name, {})[version] = value
        self.secrets[name]["__latest__"] = version
        return version

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `KeyVaultServer.requests` instead."""

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _bundle(self, name: str, version: str, value: str) -> dict[str, Any]:
        now = int(time.time())
        host = self.headers.get("Host", "127.0.0.1")
        return {
            "value": value,
            "id": f"https://{host}/secrets/{name}/{version}",
            "attributes": {
                "enabled": True,
                "created": now,
                "updated": now,
                "recoveryLevel": "Recoverable+Purgeable",
            },
        }

    def _handle(self) -> None:
        vault = self.server.vault
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""  # drain it in every case
        path = self.path.split("?", 1)[0]
        authorised = self.headers.get("Authorization") == f"Bearer {vault_token(self.server)}"
        vault.requests.append((self.command, path, authorised))
        if not authorised:
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                'resource="https://vault.azure.net"'
            )
            self._send(
                401,
                {"error": {"code": "Unauthorized", "message": "AKV10000: missing bearer token"}},
                {"WWW-Authenticate": challenge},
            )
            return
        parts = [p for p in path.split("/") if p]
        if len(parts) in (2, 3) and parts[0] == "secrets":
            name = parts[1]
            if self.command == "PUT" and len(parts) == 2:
                value = json.loads(body or b"{}").get("value", "")
                version = vault.set_secret(name, value)
                self._send(200, self._bundle(name, version, value))
                return
            if self.command == "GET":
                versions = vault.secrets.get(name, {})
                version = parts[2] if len(parts) == 3 else versions.get("__latest__", "")
                if version in versions and version != "__latest__":
                    self._send(200, self._bundle(name, version, versions[version]))
                    return
                message = f"A secret with (name/id) {name} was not found in this key vault."
                self._send(404, {"error": {"code": "SecretNotFound", "message": message}})
                return
        self._send(400, {"error": {"code": "BadParameter", "message": "unsupported request"}})

    do_GET = do_PUT = do_POST = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    vault: KeyVaultServer
    token: str


def vault_token(server: _Server) -> str:
    return server.token


def start_keyvault(workdir: Path, secrets: dict[str, str], token: str = TOKEN) -> KeyVaultServer:
    """Serve a vault holding ``secrets`` on a fresh loopback port (the SDK caches
    challenges per host:port, so every test gets its own port)."""
    cert, key = make_certificate(workdir)
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.socket = server_context(cert, key).wrap_socket(httpd.socket, server_side=True)
    httpd.token = token
    vault = KeyVaultServer(httpd, cert)
    httpd.vault = vault
    for name, value in secrets.items():
        vault.set_secret(name, value)
    vault.thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    vault.thread.start()
    return vault

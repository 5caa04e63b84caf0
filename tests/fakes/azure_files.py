"""A local Azure Files REST server that verifies SharedKey signatures (storage-test-env.md §5.3).

Backed by a folder (``<root>/<share>/<path>``) so tests can look at the "share" on disk.
Serves the emulator-style URL ``http://127.0.0.1:<port>/<account>/<share>/<path>``. Besides
the staging calls it implements rename (``comp=rename`` with ``x-ms-file-rename-source``),
which Azure Files has since API version 2021-04-10. Faults can be injected per operation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

# The public Azurite development key: any base64 string is a valid test key.
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_SIGNED = (
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-MD5",
    "Content-Type",
    "Date",
    "If-Modified-Since",
    "If-Match",
    "If-None-Match",
    "If-Unmodified-Since",
    "Range",
)
_TIME = "2026-01-01T00:00:00.0000000Z"


@dataclass
class Fault:
    """Answer the ``nth`` (1-based) request of kind ``op`` with ``status``, ``times`` times."""

    op: str
    nth: int
    status: int = 503
    code: str = "ServerBusy"
    times: int = 1


@dataclass
class FilesServer:
    """A running fake; ``requests`` logs ``(op, path, status)`` for assertions."""

    httpd: ThreadingHTTPServer
    root: Path
    account: str
    key: str
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{self.account}"

    def inject(self, op: str, nth: int = 1, status: int = 503, times: int = 1) -> None:
        code = "ServerBusy" if status == 503 else "InternalError"
        self.faults.append(Fault(op, self.counts.get(op, 0) + nth, status, code, times))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _sort_key(name: str) -> tuple[str, str]:
    # The service's collation ignores '-' first, then breaks ties on the full name.
    return (name.replace("-", ""), name)


def string_to_sign(method: str, headers: dict[str, str], account: str, raw_url: str) -> str:
    """SharedKey's StringToSign for one request (header names lower-cased)."""
    values = []
    for name in _SIGNED:
        value = headers.get(name.lower(), "")
        if name == "Content-Length" and value == "0":
            value = ""
        values.append(value + "\n")
    canonical = "".join(
        f"{name}:{headers[name].strip()}\n"
        for name in sorted((h for h in headers if h.startswith("x-ms-")), key=_sort_key)
    )
    split = urlsplit(raw_url)
    resource = f"/{account}{split.path}"
    query = sorted((k.lower(), v) for k, v in parse_qsl(split.query, keep_blank_values=True))
    resource += "".join(f"\n{k}:{v}" for k, v in query)
    return f"{method}\n{''.join(values)}{canonical}{resource}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `FilesServer.requests` instead."""

    # responses ---------------------------------------------------------------------------

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self._status = status
        self.send_response(status)
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("x-ms-version", self.headers.get("x-ms-version", "2026-10-06"))
        self.send_header("Date", formatdate(usegmt=True))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str = "") -> None:
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{code}</Code><Message>{escape(message or code)}</Message></Error>"
        ).encode()
        self._reply(status, body, {"x-ms-error-code": code, "Content-Type": "application/xml"})

    def _props(self, path: Path) -> dict[str, str]:
        stat = path.stat()
        return {
            "ETag": f'"0x{stat.st_mtime_ns:X}"',
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
            "x-ms-file-attributes": "Directory" if path.is_dir() else "Archive",
            "x-ms-file-creation-time": _TIME,
            "x-ms-file-last-write-time": _TIME,
            "x-ms-file-change-time": _TIME,
            "x-ms-file-permission-key": "1",
            "x-ms-file-id": str(stat.st_ino),
            "x-ms-file-parent-id": "0",
            "x-ms-request-server-encrypted": "true",
        }

    # request plumbing --------------------------------------------------------------------

    def _authorised(self, account: str) -> bool:
        auth = self.headers.get("Authorization", "")
        prefix = f"SharedKey {account}:"
        if not auth.startswith(prefix):
            return False
        headers = {k.lower(): v for k, v in self.headers.items()}
        sts = string_to_sign(self.command, headers, self.server.files.account, self.path)
        key = base64.b64decode(self.server.files.key)
        expected = base64.b64encode(hmac.new(key, sts.encode(), hashlib.sha256).digest())
        return hmac.compare_digest(expected, auth[len(prefix) :].encode())

    def _fault(self, op: str) -> Fault | None:
        files = self.server.files
        with files.lock:
            files.counts[op] = files.counts.get(op, 0) + 1
            for fault in files.faults:
                if fault.op == op and fault.nth <= files.counts[op] and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _handle(self) -> None:
        self._status = 0
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        # create_subdirectory sends '/' as %2F: decode before splitting.
        parts = [p for p in unquote(split.path).split("/") if p]
        files = self.server.files
        op = "?"
        try:
            if not parts or parts[0] != files.account or any(p in (".", "..") for p in parts):
                self._error(400, "InvalidUri", "the URL is not under this account")
                return
            if not self._authorised(parts[0]):
                self._error(
                    403, "AuthenticationFailed", "Server failed to authenticate the request."
                )
                return
            if len(parts) < 2:
                self._error(400, "UnsupportedOperation")
                return
            op = _operation(self.command, query, self.headers, len(parts) == 2)
            fault = self._fault(op)
            if fault is not None:
                self._error(fault.status, fault.code, "injected fault")
                return
            share = files.root / parts[1]
            target = share.joinpath(*parts[2:])
            _dispatch(self, op, share, target, query, body)
        finally:
            files.requests.append((op, "/".join(parts[1:]), self._status))

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    files: FilesServer


def _operation(method: str, query: dict[str, str], headers: Any, is_share: bool) -> str:
    restype, comp = query.get("restype"), query.get("comp")
    if is_share and restype != "directory":
        return {"PUT": "create_share", "DELETE": "delete_share"}.get(method, "share_props")
    if comp == "rename":
        return "rename"
    if restype == "directory":
        if method == "PUT":
            if is_share:
                return "share_props" if comp is None else "share_" + comp
            return "create_dir" if comp is None else "dir_" + comp
        if method == "DELETE":
            return "delete_dir"
        return "list" if comp == "list" else "dir_props"
    if method == "PUT":
        if comp == "range":
            return "range"
        return "create_file" if comp is None else "file_" + comp
    return {"DELETE": "delete_file", "HEAD": "file_props"}.get(method, "download")


def _source_path(handler: _Handler, share: Path) -> Path | None:
    source = handler.headers.get("x-ms-file-rename-source", "")
    parts = [p for p in unquote(urlsplit(source).path).split("/") if p]
    if len(parts) < 3 or parts[0] != handler.server.files.account or parts[1] != share.name:
        return None
    if any(p in (".", "..") for p in parts):
        return None
    return share.joinpath(*parts[2:])


def _dispatch(
    h: _Handler, op: str, share: Path, target: Path, query: dict[str, str], body: bytes
) -> None:
    exists = share.is_dir()
    if op == "create_share":
        if exists:
            h._error(409, "ShareAlreadyExists")
            return
        share.mkdir(parents=True)
        h._reply(201, headers={"ETag": '"0x1"', "Last-Modified": formatdate(usegmt=True)})
        return
    if not exists:
        h._error(404, "ShareNotFound")
        return
    if op == "share_props":
        h._reply(200, headers=h._props(share))
    elif op == "create_dir":
        if not target.parent.is_dir():
            h._error(404, "ParentNotFound")
        elif target.exists():
            h._error(409, "ResourceAlreadyExists")
        else:
            target.mkdir()
            h._reply(201, headers=h._props(target))
    elif op in ("dir_props", "file_props"):
        wanted = target.is_dir() if op == "dir_props" else target.is_file()
        if not wanted:
            h._error(404, "ResourceNotFound")
        else:
            extra = {} if target.is_dir() else {"x-ms-type": "File"}
            extra["Content-Length"] = "0" if target.is_dir() else str(target.stat().st_size)
            h._reply(200, headers={**h._props(target), **extra})
    elif op == "list":
        _list(h, share, target, query)
    elif op == "delete_dir":
        if not target.is_dir():
            h._error(404, "ResourceNotFound")
        elif any(target.iterdir()):
            h._error(409, "DirectoryNotEmpty")
        else:
            target.rmdir()
            h._reply(202)
    elif op == "create_file":
        if not target.parent.is_dir():
            h._error(404, "ParentNotFound")
        elif target.is_dir():
            h._error(409, "ResourceAlreadyExists")
        else:
            size = int(h.headers.get("x-ms-content-length", "0"))
            temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
            with temp.open("wb") as handle:
                handle.truncate(size)
            os.replace(temp, target)
            h._reply(201, headers=h._props(target))
    elif op == "range":
        _put_range(h, target, body)
    elif op in ("file_properties", "file_metadata", "dir_metadata", "dir_properties"):
        if not target.exists():
            h._error(404, "ResourceNotFound")
            return
        if op == "file_properties" and "x-ms-content-length" in h.headers:
            with target.open("r+b") as handle:
                handle.truncate(int(h.headers["x-ms-content-length"]))
        h._reply(200, headers=h._props(target))
    elif op == "rename":
        _rename(h, share, target, query)
    elif op == "delete_file":
        if not target.is_file():
            h._error(404, "ResourceNotFound")
        else:
            target.unlink()
            h._reply(202)
    elif op == "download":
        _download(h, target)
    else:
        h._error(400, "UnsupportedOperation", op)


def _list(h: _Handler, share: Path, target: Path, query: dict[str, str]) -> None:
    if not target.is_dir():
        h._error(404, "ResourceNotFound")
        return
    prefix = query.get("prefix", "")
    entries = []
    for entry in sorted(target.iterdir()):
        if not entry.name.startswith(prefix):
            continue
        name, fid = escape(entry.name), entry.stat().st_ino
        if entry.is_dir():
            entries.append(
                f"<Directory><Name>{name}</Name><FileId>{fid}</FileId><Properties /></Directory>"
            )
        else:
            size = entry.stat().st_size
            entries.append(
                f"<File><Name>{name}</Name><FileId>{fid}</FileId>"
                f"<Properties><Content-Length>{size}</Content-Length></Properties></File>"
            )
    base = f"http://{h.headers.get('Host', '127.0.0.1')}/{h.server.files.account}/"
    directory = escape(target.relative_to(share).as_posix().strip("."))
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<EnumerationResults ServiceEndpoint="{base}" ShareName="{share.name}" '
        f'DirectoryPath="{directory}"><Prefix>{escape(prefix)}</Prefix>'
        f"<Entries>{''.join(entries)}</Entries><NextMarker /></EnumerationResults>"
    ).encode()
    h._reply(200, body, {"Content-Type": "application/xml"})


def _byte_range(h: _Handler) -> tuple[int, int] | None:
    spec = h.headers.get("x-ms-range") or h.headers.get("Range") or ""
    if not spec.startswith("bytes="):
        return None
    start, _, end = spec[6:].partition("-")
    return int(start), int(end) if end else -1


def _put_range(h: _Handler, target: Path, body: bytes) -> None:
    if not target.is_file():
        h._error(404, "ResourceNotFound")
        return
    span = _byte_range(h)
    if span is None or span[1] < span[0]:
        h._error(400, "InvalidHeaderValue", "x-ms-range is required")
        return
    start, end = span
    clear = h.headers.get("x-ms-write", "update") == "clear"
    if not clear and len(body) != end - start + 1:
        h._error(400, "InvalidHeaderValue", "body length does not match the range")
        return
    with target.open("r+b") as handle:
        handle.seek(start)
        handle.write(bytes(end - start + 1) if clear else body)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    h._reply(201, headers={**h._props(target), "Content-MD5": md5})


def _rename(h: _Handler, share: Path, target: Path, query: dict[str, str]) -> None:
    source = _source_path(h, share)
    is_dir = query.get("restype") == "directory"
    if source is None or not (source.is_dir() if is_dir else source.is_file()):
        h._error(404, "ResourceNotFound", "rename source not found")
        return
    if not target.parent.is_dir():
        h._error(404, "ParentNotFound")
        return
    replace = h.headers.get("x-ms-file-rename-replace-if-exists", "false").lower() == "true"
    if target.exists() and (is_dir or target.is_dir() or not replace):
        h._error(409, "ResourceAlreadyExists")
        return
    os.replace(source, target)
    h._reply(200, headers=h._props(target))


def _download(h: _Handler, target: Path) -> None:
    if not target.is_file():
        h._error(404, "ResourceNotFound")
        return
    data = target.read_bytes()
    headers = {**h._props(target), "x-ms-type": "File", "Accept-Ranges": "bytes"}
    headers["Content-Type"] = "application/octet-stream"
    span = _byte_range(h)
    if span is None:
        h._reply(200, data, headers)
        return
    start, end = span
    if start >= len(data):
        h._error(416, "InvalidRange")
        return
    end = len(data) - 1 if end < 0 else min(end, len(data) - 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    h._reply(206, data[start : end + 1], headers)


def start_files(root: Path, account: str = "kubesweeptest", key: str = DEV_KEY) -> FilesServer:
    """Serve ``root`` as the account's file shares on a free loopback port."""
    root.mkdir(parents=True, exist_ok=True)
    httpd = _Server(("127.0.0.1", 0), _Handler)
    files = FilesServer(httpd, root, account, key)
    httpd.files = files
    threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
    return files


def wipe(files: FilesServer) -> None:
    """Remove every share (between tests that reuse one server)."""
    for child in files.root.iterdir():
        shutil.rmtree(child)

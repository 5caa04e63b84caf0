"""The ``nfs`` backend: an NFS export written with the userspace client nfs-rs.

Neither the dispatcher nor the user's machine mounts anything (NNI runs ``sudo mount``);
trial pods mount the same export natively with an ``nfs:`` volume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import nfs_rs

from kubesweep.errors import ConfigError, NotFoundError, PermanentError, TransientError
from kubesweep_dispatcher.storage.base import FileInfo, check_relpath
from kubesweep_dispatcher.storage.registry import register_storage
from kubesweep_dispatcher.storage.remote import RemoteTreeStorage
from kubesweep_dispatcher.storage.retry import RetryPolicy

T = TypeVar("T")
VERSIONS = ("4.1", "4.0", "3")
DEFAULT_PORT = 2049
_CHUNK = 1024 * 1024

# Failures where the server or the network may recover: reconnect and try again.
_TRANSIENT: tuple[type[BaseException], ...] = (
    nfs_rs.NfsConnectionError,
    nfs_rs.NfsTimeoutError,
    nfs_rs.NfsRetryableError,
    nfs_rs.NfsRpcError,
    nfs_rs.NfsStateLostError,
    nfs_rs.NfsLostOpenStateError,
    nfs_rs.NfsClientClosedError,
)
_CONNECT_FAILED: tuple[type[BaseException], ...] = (*_TRANSIENT, ConnectionError, TimeoutError)
_MISSING: tuple[type[BaseException], ...] = (
    nfs_rs.NfsNotFoundError,
    nfs_rs.NfsNotADirectoryError,
    nfs_rs.NfsIsADirectoryError,
)


@register_storage("nfs")
class NfsStorage(RemoteTreeStorage):
    """Files on ``server:export``; paths are relative to the export root.

    ``port`` and ``version`` default to NFS's 2049 and NFSv4.1 (no portmapper needed);
    with ``version="3"`` ``export`` is the server's real directory, with v4 the
    pseudo-filesystem path."""

    name = "nfs"

    def __init__(
        self,
        server: str,
        export: str,
        *,
        port: int | None = None,
        version: str = "4.1",
        retry: RetryPolicy | None = None,
        connect_timeout_s: float = 5.0,
        operation_timeout_s: float = 60.0,
        upload_workers: int = 4,
    ) -> None:
        if version not in VERSIONS:
            raise ConfigError(
                f"NFS version {version!r} is not supported (use one of {', '.join(VERSIONS)})",
                field="nfs.version",
            )
        if not export.startswith("/"):
            raise ConfigError(f"NFS export path {export!r} must be absolute", field="nfs.path")
        self.server = server
        self.export = "/" + export.strip("/")
        self.port = port
        self.version = version
        self.retry = retry or RetryPolicy()
        self.connect_timeout_s = connect_timeout_s
        self.operation_timeout_s = operation_timeout_s
        self.upload_workers = upload_workers
        self._client: nfs_rs.Client | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NfsStorage({self.server}:{self._port}{self.export}, v{self.version})"

    @property
    def _port(self) -> int:
        return self.port or DEFAULT_PORT

    @property
    def _where(self) -> str:
        return f"NFS server {self.server}:{self._port} (export {self.export}, NFSv{self.version})"

    def describe(self) -> str:
        return self._where

    # connection ------------------------------------------------------------------------

    def _connect(self) -> nfs_rs.Client:
        with self._lock:
            # A forked child must not share the parent's RPC connection.
            if self._client is None or self._pid != os.getpid():
                url = f"nfs://{self.server}:{self._port}{self.export}"
                try:
                    self._client = nfs_rs.Client.connect(
                        url,
                        versions=[self.version],
                        nfs_port=self._port,
                        connect_timeout=self.connect_timeout_s,
                        operation_timeout=self.operation_timeout_s,
                    )
                except _MISSING as exc:
                    raise ConfigError(
                        f"{self._where} does not export {self.export}: {exc}; "
                        "check nfs.path (the pseudo path for NFSv4)",
                        field="nfs.path",
                    ) from exc
                except nfs_rs.NfsPermissionError as exc:
                    raise ConfigError(
                        f"{self._where} refused this host: {exc}; check the export's client "
                        "list and access rules",
                        field="nfs.server",
                    ) from exc
                except _CONNECT_FAILED as exc:
                    raise TransientError(
                        f"cannot reach {self._where}: {exc}; check nfs.server and that the "
                        "server's NFS port is open to the dispatcher"
                    ) from exc
                except (nfs_rs.NfsError, OSError) as exc:
                    raise PermanentError(f"cannot mount {self._where}: {exc}") from exc
                self._pid = os.getpid()
            return self._client

    def _drop(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            # The connection may already be broken; that is why it is dropped.
            with contextlib.suppress(nfs_rs.NfsError):
                client.close()

    def close(self) -> None:
        """Close the NFS connection (a new one opens on the next call)."""
        self._drop()

    def _call(self, what: str, rel: str, op: Callable[[nfs_rs.Client], T]) -> T:
        def attempt() -> T:
            client = self._connect()
            try:
                return op(client)
            except _MISSING as exc:
                raise NotFoundError(f"no {rel!r} on {self._where}") from exc
            except _TRANSIENT as exc:
                raise TransientError(f"{what} {rel!r} on {self._where}: {exc}") from exc
            except nfs_rs.NfsPermissionError as exc:
                raise PermanentError(
                    f"{what} {rel!r} on {self._where} was refused: {exc}; check the export's "
                    "access rules (rw, no_root_squash) for this host"
                ) from exc
            except nfs_rs.NfsError as exc:
                raise PermanentError(f"{what} {rel!r} on {self._where} failed: {exc}") from exc

        return self.retry.run(attempt, what=f"{what} {rel!r}", on_retry=self._drop)

    # primitives ------------------------------------------------------------------------

    def _scan(self, rel: str) -> list[FileInfo]:
        def op(client: nfs_rs.Client) -> list[FileInfo]:
            out = []
            for entry in client.scandir(rel):
                if entry.name in (".", ".."):
                    continue
                is_dir = entry.info.type == nfs_rs.FileType.DIRECTORY
                out.append(FileInfo(entry.name, is_dir, 0 if is_dir else entry.info.size))
            return out

        return self._call("list", rel, op)

    def _mkdir(self, rel: str) -> None:
        self._call("create folder", rel, lambda c: c.mkdir(rel, exist_ok=True))

    def _put(self, rel: str, data: bytes | Path) -> None:
        def op(client: nfs_rs.Client) -> None:
            with client.open(rel, "wb") as handle:
                if isinstance(data, bytes):
                    handle.write(data)
                    return
                with data.open("rb") as local:
                    while chunk := local.read(_CHUNK):
                        handle.write(chunk)

        self._call("write", rel, op)

    def _rename(self, src: str, dst: str, *, is_dir: bool) -> None:
        self._call("rename", src, lambda c: c.rename(src, dst))

    def _remove(self, rel: str, *, is_dir: bool) -> None:
        def op(client: nfs_rs.Client) -> None:
            if is_dir:
                client.rmdir(rel)
            else:
                client.unlink(rel)

        with contextlib.suppress(NotFoundError):
            self._call("remove", rel, op)

    # StorageBackend --------------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        rel = check_relpath(path)

        def op(client: nfs_rs.Client) -> bytes:
            # Over NFSv4.1 a read larger than the negotiated max_read fails against
            # ganesha (NFS4ERR_RETRY_UNCACHED_REP), so read in chunks of that size.
            size = max(4096, client.io_limits.max_read)
            parts = []
            with client.open(rel, "rb") as handle:
                while chunk := handle.read(size):
                    parts.append(chunk)
            return b"".join(parts)

        return self._call("read", rel, op)

    def exists(self, path: str) -> bool:
        rel = check_relpath(path)
        return self._call("stat", rel, lambda c: c.exists(rel))

    def url(self, path: str) -> str:
        return f"nfs://{self.server}{self.export.rstrip('/')}/{check_relpath(path)}"

    def handoff(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "server": self.server,
            "export": self.export,
            "port": self.port,
            "version": self.version,
            "retry": dataclasses.asdict(self.retry),
            "connect_timeout_s": self.connect_timeout_s,
            "operation_timeout_s": self.operation_timeout_s,
        }

    @classmethod
    def from_handoff(cls, options: dict[str, Any]) -> NfsStorage:
        return cls(
            options["server"],
            options["export"],
            port=options["port"],
            version=options["version"],
            retry=RetryPolicy(**options["retry"]),
            connect_timeout_s=options["connect_timeout_s"],
            operation_timeout_s=options["operation_timeout_s"],
        )

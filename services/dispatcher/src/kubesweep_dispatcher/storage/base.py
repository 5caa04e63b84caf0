"""The storage backend extension point."""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kubesweep.errors import ConfigError, KubesweepError

PROBE_PARENT = "kubesweep"


@dataclass(frozen=True)
class FileInfo:
    """One entry of a folder listing."""

    name: str
    is_dir: bool
    size: int


def check_relpath(path: str) -> str:
    """Refuse any path that could leave the storage root before it reaches a backend."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path or "\x00" in path:
        raise ConfigError(f"path {path!r} is not a relative path inside the storage", field="path")
    if not pure.parts:
        # "" and "." name the root itself: publishing or deleting it would wipe the storage.
        raise ConfigError(f"path {path!r} names the storage root, not a path in it", field="path")
    return pure.as_posix()


def is_visible(name: str) -> bool:
    """Whether a listing shows ``name``: temporary ``.name.*`` entries stay hidden."""
    return not name.startswith(".") or name == ".nniignore"


class StorageBackend(ABC):
    """Shared storage for one experiment's files, addressed by relative POSIX paths.

    Implementations: ``mounted`` (a writable folder), ``nfs`` (userspace NFS client)
    and ``azureStorage`` (Azure File share). Every backend runs the shared contract suite in
    ``tests/contract/test_storage_contract.py``.
    """

    name: str

    @abstractmethod
    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or replace one file, creating parent folders."""

    @abstractmethod
    def read_bytes(self, path: str) -> bytes:
        """Read one file; `kubesweep.errors.NotFoundError` when it is missing."""

    @abstractmethod
    def list_dir(self, path: str) -> list[FileInfo]:
        """List a folder; `NotFoundError` when it is missing."""

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether a file or folder exists."""

    @abstractmethod
    def publish_tree(self, source: Path, path: str) -> None:
        """Copy a local folder to ``path`` so that readers see all of it or none of it."""

    @abstractmethod
    def delete_tree(self, path: str) -> None:
        """Remove a folder and everything under it; no error when it is missing."""

    @abstractmethod
    def make_dirs(self, path: str) -> None:
        """Create a folder and its parents; no error when it exists."""

    @abstractmethod
    def url(self, path: str) -> str:
        """A location a person can open or mount (``file://``, ``nfs://``, ``https://``)."""

    def local_path(self, path: str) -> Path | None:
        """Where processes on this machine see ``path``, if they can (mounted storage)."""
        return None

    def handoff(self) -> dict[str, Any]:
        """JSON-able options that rebuild this backend in another process (`restore_storage`).

        A local trial's supervisor uploads its outputs with them. They may hold a credential
        (the Azure account key): pass them over a pipe, never log them or put them in an
        environment or on a command line."""
        raise NotImplementedError(f"the {self.name} backend cannot be handed to another process")

    def describe(self) -> str:
        """Where this backend writes, for error messages (never a secret)."""
        return self.url(PROBE_PARENT)

    def check(self) -> None:
        """Write, read back and delete a probe file; `ConfigError` naming the fix if any fails.

        Called before an experiment is accepted, so bad storage settings are refused at
        submission instead of failing every trial later."""
        probe_dir = f"{PROBE_PARENT}/.probe-{secrets.token_hex(6)}"
        payload = secrets.token_bytes(32)
        try:
            try:
                self.write_bytes(f"{probe_dir}/probe", payload)
                if self.read_bytes(f"{probe_dir}/probe") != payload:
                    raise ConfigError(
                        f"{self.name} storage at {self.describe()} returned different bytes "
                        "than were written to it; check the storage server",
                        field="storage",
                    )
            finally:
                self.delete_tree(probe_dir)
        except ConfigError:
            raise
        except (KubesweepError, OSError) as exc:
            raise ConfigError(
                f"{self.name} storage at {self.describe()} failed its write check: {exc}",
                field="storage",
            ) from exc

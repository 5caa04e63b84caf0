"""The storage backend extension point."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kubesweep.errors import ConfigError


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


class StorageBackend(ABC):
    """Shared storage for one experiment's files, addressed by relative POSIX paths.

    Implementations: ``mounted`` (a writable folder), later ``nfs`` and
    ``azureStorage``. Every backend runs the shared contract suite in
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
    def url(self, path: str) -> str:
        """A location a person can open or mount (``file://``, ``nfs://``, ``https://``)."""

    def local_path(self, path: str) -> Path | None:
        """Where processes on this machine see ``path``, if they can (mounted storage)."""
        return None

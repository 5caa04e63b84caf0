"""The ``mounted`` backend: a folder this process can write (local disk, or an NFS/PVC
mount inside a pod)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from kubesweep.errors import NotFoundError
from kubesweep_dispatcher.storage.base import FileInfo, StorageBackend, check_relpath, is_visible
from kubesweep_dispatcher.storage.registry import register_storage


@register_storage("mounted")
class MountedStorage(StorageBackend):
    """Files under ``root``; trials on this machine read them in place."""

    name = "mounted"

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, path: str) -> Path:
        return self.root / check_relpath(path)

    def write_bytes(self, path: str, data: bytes) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        temp.write_bytes(data)
        os.replace(temp, target)

    def read_bytes(self, path: str) -> bytes:
        try:
            return self._path(path).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise NotFoundError(f"no file {path!r} on storage") from exc

    def list_dir(self, path: str) -> list[FileInfo]:
        folder = self._path(path)
        if not folder.is_dir():
            raise NotFoundError(f"no folder {path!r} on storage")
        return [
            FileInfo(entry.name, entry.is_dir(), 0 if entry.is_dir() else entry.stat().st_size)
            for entry in sorted(folder.iterdir())
            if is_visible(entry.name)
        ]

    def exists(self, path: str) -> bool:
        return self._path(path).exists()

    def publish_tree(self, source: Path, path: str) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        shutil.copytree(source, staging, symlinks=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)

    def delete_tree(self, path: str) -> None:
        shutil.rmtree(self._path(path), ignore_errors=True)

    def make_dirs(self, path: str) -> None:
        self._path(path).mkdir(parents=True, exist_ok=True)

    def url(self, path: str) -> str:
        return self._path(path).as_uri()

    def local_path(self, path: str) -> Path:
        return self._path(path)

    def handoff(self) -> dict[str, Any]:
        return {"kind": self.name, "root": str(self.root)}

    @classmethod
    def from_handoff(cls, options: dict[str, Any]) -> MountedStorage:
        return cls(Path(options["root"]))

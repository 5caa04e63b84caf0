"""Shared tree logic for backends that only offer per-file and per-folder calls (nfs, Azure)."""

from __future__ import annotations

import logging
import os
import uuid
from abc import abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from kubesweep.errors import NotFoundError
from kubesweep_dispatcher.storage.base import FileInfo, StorageBackend, check_relpath, is_visible

log = logging.getLogger(__name__)


def _parent(rel: str) -> str:
    parent = PurePosixPath(rel).parent.as_posix()
    return "" if parent == "." else parent


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p and p != ".")


def _tree(source: Path) -> tuple[list[str], list[tuple[str, Path]]]:
    """Folders and files to upload, relative to ``source``.

    Symlinks are followed only to regular files inside the tree (the code archive
    already refuses links that leave it); folder links are never descended."""
    real_root = source.resolve()
    folders: list[str] = []
    files: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(source, followlinks=False):
        rel_root = Path(root).relative_to(source).as_posix()
        kept = []
        for d in sorted(dirs):
            if (Path(root) / d).is_symlink():
                log.warning("not uploading folder symlink %s", _join(rel_root, d))
            else:
                kept.append(d)
                folders.append(_join(rel_root, d))
        dirs[:] = kept
        for name in sorted(names):
            local = Path(root) / name
            real = local.resolve()
            if not real.is_file() or not real.is_relative_to(real_root):
                log.warning("not uploading %s: not a regular file inside the tree", local)
                continue
            files.append((_join(rel_root, name), real))
    return folders, files


class RemoteTreeStorage(StorageBackend):
    """`publish_tree`, `delete_tree`, `make_dirs` and `write_bytes` from small primitives.

    Primitives raise `NotFoundError` when the path (or a file's parent folder) is missing
    and are already retried by the concrete backend."""

    upload_workers = 1

    @abstractmethod
    def _scan(self, rel: str) -> list[FileInfo]:
        """Every entry of a folder, hidden ones included; `NotFoundError` if not a folder."""

    @abstractmethod
    def _mkdir(self, rel: str) -> None:
        """Create one folder; no error if it exists, `NotFoundError` if its parent is missing."""

    @abstractmethod
    def _put(self, rel: str, data: bytes | Path) -> None:
        """Create or replace a file with bytes or a local file's content."""

    @abstractmethod
    def _rename(self, src: str, dst: str, *, is_dir: bool) -> None:
        """Rename atomically; a file replaces ``dst``, a folder needs ``dst`` to be absent."""

    @abstractmethod
    def _remove(self, rel: str, *, is_dir: bool) -> None:
        """Remove a file or an empty folder; no error when it is missing."""

    # public operations -------------------------------------------------------------------

    def list_dir(self, path: str) -> list[FileInfo]:
        entries = self._scan(check_relpath(path))
        return sorted((e for e in entries if is_visible(e.name)), key=lambda e: e.name)

    def make_dirs(self, path: str) -> None:
        self._make_dirs(check_relpath(path))

    def write_bytes(self, path: str, data: bytes) -> None:
        rel = check_relpath(path)
        temp = _join(_parent(rel), f".{PurePosixPath(rel).name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            self._put(temp, data)
        except NotFoundError:
            self._make_dirs(_parent(rel))
            self._put(temp, data)
        try:
            self._rename(temp, rel, is_dir=False)
        except BaseException:
            self._remove(temp, is_dir=False)
            raise

    def publish_tree(self, source: Path, path: str) -> None:
        rel = check_relpath(path)
        parent, name = _parent(rel), PurePosixPath(rel).name
        token = uuid.uuid4().hex[:12]
        staging = _join(parent, f".{name}.{token}.tmp")
        old = _join(parent, f".{name}.{token}.old")
        folders, files = _tree(source)
        moved_old = False
        try:
            try:
                self._mkdir(staging)
            except NotFoundError:
                self._make_dirs(parent)
                self._mkdir(staging)
            for folder in folders:
                self._mkdir(_join(staging, folder))
            self._upload_all(staging, files)
            if self.exists(rel):
                # A folder cannot be renamed onto a non-empty one: move the old tree aside.
                self._rename(rel, old, is_dir=True)
                moved_old = True
            self._rename(staging, rel, is_dir=True)
        except BaseException:
            self._delete(staging)
            if moved_old and not self.exists(rel):
                self._rename(old, rel, is_dir=True)
            raise
        if moved_old:
            self._delete(old)

    def delete_tree(self, path: str) -> None:
        self._delete(check_relpath(path))

    # helpers -----------------------------------------------------------------------------

    def _upload_all(self, staging: str, files: list[tuple[str, Path]]) -> None:
        if self.upload_workers <= 1 or len(files) <= 1:
            for rel, local in files:
                self._put(_join(staging, rel), local)
            return
        with ThreadPoolExecutor(self.upload_workers, thread_name_prefix="upload") as pool:
            futures = [pool.submit(self._put, _join(staging, rel), local) for rel, local in files]
            for future in futures:
                future.result()

    def _make_dirs(self, rel: str) -> None:
        if not rel:
            return
        try:
            self._mkdir(rel)
        except NotFoundError:
            self._make_dirs(_parent(rel))
            self._mkdir(rel)

    def _delete(self, rel: str) -> None:
        try:
            entries = self._scan(rel)
        except NotFoundError:
            return
        for entry in entries:
            child = _join(rel, entry.name)
            if entry.is_dir:
                self._delete(child)
            else:
                self._remove(child, is_dir=False)
        self._remove(rel, is_dir=True)

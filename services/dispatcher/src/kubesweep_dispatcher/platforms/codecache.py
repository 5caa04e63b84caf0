"""A local copy of an experiment's staged code and runtime, for local trials whose
experiment keeps its files on remote storage (nfs, azureStorage).

Each host mirrors an experiment once: ``<root>/<exp_id>/{code,runtime}``. The code is
checked against the sha256 manifest written at staging. The copy is built in a temporary
folder and renamed into place, so concurrent launches (threads of one worker, or several
workers on one host) never see a partial copy; the loser of a race discards its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubesweep.errors import NotFoundError, PermanentError
from kubesweep.ids import check_id
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.storage import StorageBackend

CODE = "code"
RUNTIME = "runtime"
_DOWNLOAD_WORKERS = 4


class CodeCache:
    """Mirrors of staged experiments under ``root``, one folder per experiment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def folder(self, exp_id: str) -> Path:
        return self.root / check_id(exp_id, "experiment_id")

    def ensure(self, storage: StorageBackend, exp_id: str) -> Path:
        """The experiment's mirror (holding ``code/`` and ``runtime/``), made if missing."""
        final = self.folder(exp_id)
        if final.is_dir():
            return final
        with self._lock(exp_id):
            if final.is_dir():
                return final
            self.root.mkdir(parents=True, exist_ok=True)
            temp = self.root / f".{final.name}.{uuid.uuid4().hex[:12]}.tmp"
            try:
                _download(storage, exp_id, temp)
                try:
                    os.rename(temp, final)
                except OSError:
                    if not final.is_dir():
                        raise
                    # Another worker on this host finished first: its copy is as good.
            finally:
                shutil.rmtree(temp, ignore_errors=True)
        return final

    def remove(self, exp_id: str) -> None:
        final = self.folder(exp_id)
        if not final.exists():
            return
        # Rename first so a concurrent launch never uses a half-deleted copy.
        doomed = self.root / f".{final.name}.{uuid.uuid4().hex[:12]}.old"
        try:
            os.rename(final, doomed)
        except OSError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def _lock(self, exp_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(exp_id, threading.Lock())


def _download(storage: StorageBackend, exp_id: str, target: Path) -> None:
    try:
        manifest = json.loads(storage.read_bytes(layout.manifest(exp_id)))
    except NotFoundError as exc:
        raise PermanentError(
            f"experiment {exp_id}'s code manifest is missing on "
            f"{storage.url(layout.manifest(exp_id))}; was the experiment deleted?"
        ) from exc
    code_root = layout.code(exp_id)
    jobs: list[tuple[str, Path, str | None]] = [
        (f"{code_root}/{rel}", target / CODE / rel, digest)
        for rel, digest in manifest["files"].items()
    ]
    runtime_root = layout.runtime(exp_id)
    jobs += [
        (f"{runtime_root}/{rel}", target / RUNTIME / rel, None)
        for rel in _walk(storage, runtime_root)
    ]
    (target / CODE).mkdir(parents=True)
    (target / RUNTIME).mkdir(parents=True)
    with ThreadPoolExecutor(_DOWNLOAD_WORKERS, thread_name_prefix="mirror") as pool:
        for future in [pool.submit(_fetch, storage, *job) for job in jobs]:
            future.result()


def _walk(storage: StorageBackend, root: str, prefix: str = "") -> Iterator[str]:
    for entry in storage.list_dir(f"{root}/{prefix}" if prefix else root):
        rel = f"{prefix}{entry.name}"
        if entry.is_dir:
            yield from _walk(storage, root, f"{rel}/")
        else:
            yield rel


def _fetch(storage: StorageBackend, remote: str, local: Path, digest: str | None) -> None:
    data = storage.read_bytes(remote)
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise PermanentError(
            f"{storage.url(remote)} does not match the experiment's code manifest (sha256 "
            f"{hashlib.sha256(data).hexdigest()[:12]}…, expected {digest[:12]}…); the staged "
            "code was changed after staging: resubmit the experiment"
        )
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)

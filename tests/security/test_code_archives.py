"""Hostile code archives posted to the real API: paths leaving the tree, links, special
files, tar and gzip bombs, too many files, an upload over the size limit. Each is refused
with 400 (413 for the upload) naming the ``code`` field, and leaves no experiment, no staged
folder and no file anywhere outside it."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.store import Store

from .conftest import MAX_CODE_FILES, MAX_CODE_MB, snapshot

pytestmark = pytest.mark.integration

CONFIG = """\
experimentName: hostile
trialCommand: python3 trial.py
trialConcurrency: 1
maxTrialNumber: 1
tuner:
  name: Random
trainingService:
  platform: local
"""
SPACE = '{"x": {"_type": "uniform", "_value": [0, 1]}}'
Builder = Callable[[tarfile.TarFile, Path], None]


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"pwned") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _link(tar: tarfile.TarFile, name: str, kind: bytes, target: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def _declared_bomb(tar: tarfile.TarFile, _: Path) -> None:
    """A header claiming 50 GB; the archive itself is a few hundred bytes."""
    info = tarfile.TarInfo("bomb.bin")
    info.size = 50 * 1024**3
    tar.fileobj.write(info.tobuf(tar.format, tar.encoding, tar.errors))  # type: ignore[union-attr]


def _gzip_bomb(tar: tarfile.TarFile, _: Path) -> None:
    """Real content over the size limit that compresses to a few kilobytes."""
    _file(tar, "zeros.bin", b"\0" * (MAX_CODE_MB * 1024 * 1024 + 4096))


def _many_files(tar: tarfile.TarFile, _: Path) -> None:
    for i in range(MAX_CODE_FILES + 1):
        _file(tar, f"f{i:04d}.py", b"#")


def _deep_dirs(tar: tarfile.TarFile, _: Path) -> None:
    _file(tar, "/".join(["d"] * 2000) + "/x.py")


CASES: dict[str, tuple[Builder, str]] = {
    "dotdot": (lambda t, r: _file(t, "../../../outside.txt"), "escapes"),
    "nested-dotdot": (lambda t, r: _file(t, "a/b/../../../outside.txt"), "escapes"),
    "absolute": (lambda t, r: _file(t, str(r / "absolute.txt")), "escapes"),
    "symlink-relative-out": (
        lambda t, r: _link(t, "out", tarfile.SYMTYPE, "../../../../.."),
        "links outside",
    ),
    "symlink-absolute": (lambda t, r: _link(t, "out", tarfile.SYMTYPE, str(r)), "links outside"),
    "symlink-then-write-through": (
        lambda t, r: (_link(t, "out", tarfile.SYMTYPE, str(r)), _file(t, "out/through.txt")),
        "links outside",
    ),
    "symlink-chain": (
        lambda t, r: (_link(t, "x", tarfile.SYMTYPE, "."), _link(t, "x/y", tarfile.SYMTYPE, "..")),
        "extracted safely",
    ),
    "hardlink-out": (lambda t, r: _link(t, "h", tarfile.LNKTYPE, "/etc/passwd"), "hard link"),
    "hardlink-in": (
        lambda t, r: (_file(t, "a.py"), _link(t, "b.py", tarfile.LNKTYPE, "a.py")),
        "hard link",
    ),
    "fifo": (lambda t, r: _link(t, "pipe", tarfile.FIFOTYPE), "not a regular file"),
    "device": (lambda t, r: _link(t, "dev", tarfile.CHRTYPE), "not a regular file"),
    "declared-bomb": (_declared_bomb, "larger than"),
    "gzip-bomb": (_gzip_bomb, "larger than"),
    "too-many-files": (_many_files, f"more than {MAX_CODE_FILES} files"),
    "deep-directories": (_deep_dirs, "nested too deeply"),
}


def _archive(builder: Builder, root: Path) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        # A harmless entry first: a refusal must come before anything is written.
        _file(tar, "trial.py", b"print('hello')\n")
        builder(tar, root)
    return gzip.compress(raw.getvalue())


def _submit(stack: EmbeddedStack, archive: bytes) -> requests.Response:
    return requests.post(
        f"{stack.api_url}/api/v1/experiments",
        headers={"Authorization": f"Bearer {stack.api_token}"},
        data={"config": CONFIG, "search_space": SPACE},
        files={"code": ("code.tar.gz", archive)},
        timeout=60,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_archive_is_refused_and_leaves_nothing(
    stack: EmbeddedStack, store: Store, case: str
) -> None:
    builder, words = CASES[case]
    root = stack.workdir.parent
    outside = root / "outside.txt"
    before_files = snapshot(root)
    before_ids = store.list_experiment_ids()
    reply = _submit(stack, _archive(builder, root))
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error.get("field") == "code", error
    assert words in error["message"], error
    assert store.list_experiment_ids() == before_ids
    assert snapshot(root) == before_files
    assert not outside.exists()
    assert not Path("/outside.txt").exists()


def test_an_upload_over_the_size_limit_is_413(stack: EmbeddedStack, store: Store) -> None:
    root = stack.workdir.parent
    before_files, before_ids = snapshot(root), store.list_experiment_ids()
    blob = os.urandom((MAX_CODE_MB + 2) * 1024 * 1024)
    reply = _submit(stack, blob)
    assert reply.status_code == 413, reply.text[:300]
    assert reply.json()["error"]["code"] == "request_entity_too_large"
    assert store.list_experiment_ids() == before_ids
    assert snapshot(root) == before_files

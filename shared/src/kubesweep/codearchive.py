"""Trial code archives: packed by the CLI, unpacked by the dispatcher, one set of rules.

Rules (ARCHITECTURE §4): ``.nniignore`` and ``.gitignore``-style patterns are honoured,
no path may leave the tree (``..``, absolute paths, symlinks or hard links pointing
outside), and NNI's limits apply (2000 files, 300 MB by default).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pathspec

from kubesweep.errors import ConfigError

IGNORE_FILE = ".nniignore"
# Deeper paths exist in no real code directory; extracting one recursed past Python's limit
# (os.makedirs) and left a half-made tree behind.
MAX_PATH_PARTS = 64
MAX_PATH_CHARS = 1024
IgnoreSpec = pathspec.PathSpec[Any]
ALWAYS_IGNORED = (".git/", "__pycache__/", "*.pyc", ".nniignore")


@dataclass(frozen=True)
class Limits:
    """NNI's code-directory limits (`validateCodeDir`), configurable."""

    max_files: int = 2000
    max_bytes: int = 300 * 1024 * 1024


@dataclass(frozen=True)
class ArchiveSummary:
    files: int
    bytes: int
    sha256: str


def _ignore_spec(code_dir: Path) -> IgnoreSpec:
    lines = list(ALWAYS_IGNORED)
    ignore = code_dir / IGNORE_FILE
    if ignore.is_file():
        lines += ignore.read_text(encoding="utf-8").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _walk(code_dir: Path, spec: IgnoreSpec) -> Iterator[Path]:
    for root, dirs, files in os.walk(code_dir, followlinks=False):
        rel_root = Path(root).relative_to(code_dir)
        dirs[:] = sorted(d for d in dirs if not spec.match_file(f"{(rel_root / d).as_posix()}/"))
        for name in sorted(files):
            rel = rel_root / name
            if not spec.match_file(rel.as_posix()):
                yield rel
        for d in dirs:
            if (Path(root) / d).is_symlink():
                yield rel_root / d


def _check_symlink(code_dir: Path, rel: Path) -> None:
    target = (code_dir / rel).resolve()
    if not target.is_relative_to(code_dir.resolve()):
        raise ConfigError(
            f"symlink {rel.as_posix()} points outside the code directory (to {target}); "
            "copy the file in or add the link to .nniignore",
            field="trialCodeDirectory",
        )


def pack(code_dir: Path, limits: Limits = Limits()) -> tuple[bytes, ArchiveSummary]:
    """Pack ``code_dir`` into a gzipped tar, honouring ``.nniignore`` and the limits."""
    if not code_dir.is_dir():
        raise ConfigError(f"{code_dir} is not a directory", field="trialCodeDirectory")
    spec = _ignore_spec(code_dir)
    buffer = io.BytesIO()
    names: list[str] = []
    count = total = 0
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for rel in _walk(code_dir, spec):
            path = code_dir / rel
            if path.is_symlink():
                _check_symlink(code_dir, rel)
            elif not path.is_file():
                continue
            count += 1
            # Counted as the archive will hold it (a symlink carries no data), as unpack does.
            total += 0 if path.is_symlink() else path.lstat().st_size
            _enforce(limits, count, total, "trialCodeDirectory")
            info = tar.gettarinfo(str(path), arcname=rel.as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.islnk():
                # tarfile turns a second name of one inode into a hard link, which unpack
                # refuses; store the content again instead.
                info.type = tarfile.REGTYPE
                info.linkname = ""
                info.size = path.lstat().st_size
            elif info.issym() and (
                os.path.isabs(info.linkname) or ".." in PurePosixPath(info.linkname).parts
            ):
                # Already checked to stay inside; store it relative to its folder, the form
                # unpack can verify without the original filesystem.
                real = code_dir.resolve()
                info.linkname = os.path.relpath(path.resolve(), (real / rel).parent)
            names.append(rel.as_posix())
            if info.isreg():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    # Sorted by name, like unpack, so both sides of the round trip agree on the digest.
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0")
    return buffer.getvalue(), ArchiveSummary(count, total, digest.hexdigest())


def _enforce(limits: Limits, count: int, total: int, field: str) -> None:
    if count > limits.max_files:
        raise ConfigError(
            f"the code directory has more than {limits.max_files} files; list what trials do "
            "not need (data, checkpoints, virtualenvs) in .nniignore",
            field=field,
        )
    if total > limits.max_bytes:
        raise ConfigError(
            f"the code directory is larger than {limits.max_bytes // (1024 * 1024)} MB; list "
            "large files trials do not need in .nniignore, or put data on shared storage",
            field=field,
        )


def _safe_member(member: tarfile.TarInfo) -> PurePosixPath:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ConfigError(f"archive entry {member.name!r} escapes the code directory", field="code")
    if len(path.parts) > MAX_PATH_PARTS or len(member.name) > MAX_PATH_CHARS:
        raise ConfigError(
            f"archive entry {member.name[:80]!r}... is nested too deeply (at most "
            f"{MAX_PATH_PARTS} levels and {MAX_PATH_CHARS} characters); flatten the code directory",
            field="code",
        )
    if member.islnk():
        raise ConfigError(
            f"archive entry {member.name!r} is a hard link; not allowed", field="code"
        )
    if member.issym():
        target = PurePosixPath(member.linkname)
        joined = PurePosixPath(*path.parts[:-1], *target.parts)
        depth = 0
        for part in joined.parts:
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                break
        if target.is_absolute() or depth < 0:
            raise ConfigError(
                f"archive entry {member.name!r} links outside the code directory", field="code"
            )
    elif not (member.isreg() or member.isdir()):
        raise ConfigError(f"archive entry {member.name!r} is not a regular file", field="code")
    return path


def unpack(archive: bytes, dest: Path, limits: Limits = Limits()) -> ArchiveSummary:
    """Check every entry of a code archive, then extract it into ``dest``."""
    try:
        tar = tarfile.open(fileobj=io.BytesIO(archive), mode="r:*")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, EOFError) as exc:
        raise ConfigError(
            f"the code archive is not a readable tar file: {exc}", field="code"
        ) from exc
    with tar:
        members = []
        count = total = 0
        try:
            for member in tar:
                if member.isdir() and PurePosixPath(member.name).parts in ((), (".",)):
                    continue  # the archive's own root, as `tar -C dir -czf - .` writes it
                _safe_member(member)
                if member.isdir():
                    members.append(member)
                    continue
                count += 1
                total += member.size
                _enforce(limits, count, total, "code")
                members.append(member)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ConfigError(f"the code archive is corrupt: {exc}", field="code") from exc
        digest = hashlib.sha256()
        for member in sorted(members, key=lambda m: m.name):
            if not member.isdir():
                digest.update(member.name.encode() + b"\0")
        created = not dest.exists()
        dest.mkdir(parents=True, exist_ok=True)
        try:
            # The "data" filter catches what the checks above cannot see by name alone,
            # e.g. a link that escapes through another link (x -> ., x/y -> ..).
            tar.extractall(dest, members=members, filter="data")
        except (tarfile.TarError, OSError) as exc:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            raise ConfigError(
                f"the code archive cannot be extracted safely: {exc}", field="code"
            ) from exc
    return ArchiveSummary(count, total, digest.hexdigest())

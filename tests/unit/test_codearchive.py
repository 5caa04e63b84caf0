"""Code archives: what pack takes, what unpack refuses, and that refusals write nothing."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kubesweep.codearchive import Limits, pack, unpack
from kubesweep.errors import ConfigError


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _names(archive: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        return {member.name for member in tar}


def _snapshot(root: Path) -> dict[str, tuple[bool, bytes | str | None]]:
    """Every path under ``root`` with what it is: a link target, file content or a folder."""
    out: dict[str, tuple[bool, bytes | str | None]] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = (True, os.readlink(path))
        elif path.is_file():
            out[rel] = (False, path.read_bytes())
        else:
            out[rel] = (False, None)
    return out


@pytest.fixture
def code(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    root.mkdir()
    return root


# pack ----------------------------------------------------------------------------------------


def test_nniignore_patterns_directories_and_negation(code: Path) -> None:
    _write(
        code,
        {
            "main.py": "print(1)",
            "model.ckpt": "weights",
            "sub/deep/model.ckpt": "weights",
            "data/train.csv": "1,2",
            "data/nested/x.csv": "3,4",
            "logs/a.txt": "log",
            "logs/keep.txt": "keep me",
            "lib/util.py": "pass",
            "notes.md": "hello",
            ".nniignore": "# comment\n*.ckpt\ndata/\nlogs/*.txt\n!logs/keep.txt\n/notes.md\n",
        },
    )
    archive, summary = pack(code)
    assert _names(archive) == {"main.py", "logs/keep.txt", "lib/util.py"}
    assert summary.files == 3
    assert summary.bytes == len("print(1)") + len("keep me") + len("pass")


def test_git_and_pycache_are_always_ignored(code: Path) -> None:
    _write(
        code,
        {
            "train.py": "x = 1",
            ".git/HEAD": "ref: refs/heads/main",
            ".git/objects/ab/cdef": b"\x00\x01",
            "__pycache__/train.cpython-311.pyc": b"\x00",
            "pkg/__pycache__/m.cpython-311.pyc": b"\x00",
            "pkg/m.py": "y = 2",
            "pkg/old.pyc": b"\x00",
        },
    )
    archive, _ = pack(code)
    assert _names(archive) == {"train.py", "pkg/m.py"}


def test_symlink_inside_the_tree_is_kept(code: Path, tmp_path: Path) -> None:
    _write(code, {"src/model.py": "M = 1", "main.py": "import src"})
    (code / "model_link.py").symlink_to("src/model.py")
    (code / "alias").symlink_to("src", target_is_directory=True)
    archive, summary = pack(code)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar}
    assert set(members) == {"main.py", "src/model.py", "model_link.py", "alias"}
    assert members["model_link.py"].issym()
    assert members["model_link.py"].linkname == "src/model.py"
    assert members["alias"].issym()
    assert summary.files == 4

    dest = tmp_path / "out"
    unpack(archive, dest)
    assert (dest / "model_link.py").is_symlink()
    assert (dest / "model_link.py").read_text() == "M = 1"
    assert (dest / "alias" / "model.py").read_text() == "M = 1"


@pytest.mark.parametrize("form", ["absolute", "roundabout"])
def test_in_tree_symlink_written_oddly_survives_unpack(
    code: Path, tmp_path: Path, form: str
) -> None:
    """A link that stays inside but is spelled absolute, or via the tree's parent, unpacks."""
    _write(code, {"src/model.py": "M = 1"})
    target = code / "src" / "model.py" if form == "absolute" else Path("../../code/src/model.py")
    (code / "pkg").mkdir()
    (code / "pkg" / "model.py").symlink_to(target)
    archive, packed = pack(code)
    dest = tmp_path / "out"
    assert unpack(archive, dest) == packed
    assert (dest / "pkg" / "model.py").is_symlink()
    assert os.readlink(dest / "pkg" / "model.py") == "../src/model.py"
    assert (dest / "pkg" / "model.py").read_text() == "M = 1"


def test_hard_linked_files_pack_as_regular_files(code: Path, tmp_path: Path) -> None:
    _write(code, {"a.py": "shared = 1"})
    os.link(code / "a.py", code / "b.py")
    archive, packed = pack(code)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert all(member.isreg() for member in tar)
    dest = tmp_path / "out"
    assert unpack(archive, dest) == packed
    assert (dest / "b.py").read_text() == "shared = 1"
    assert packed.bytes == 2 * len("shared = 1")


@pytest.mark.parametrize("target", ["../outside.txt", "ABSOLUTE"])
def test_symlink_leaving_the_tree_is_refused(code: Path, tmp_path: Path, target: str) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    _write(code, {"main.py": "x"})
    (code / "sub").mkdir()
    (code / "sub" / "leak.txt").symlink_to(str(outside) if target == "ABSOLUTE" else "../" + target)
    with pytest.raises(ConfigError, match=r"sub/leak\.txt") as info:
        pack(code)
    assert "outside the code directory" in str(info.value)
    assert info.value.field == "trialCodeDirectory"


def test_symlinked_folder_leaving_the_tree_is_refused(code: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (code / "data").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ConfigError, match="data"):
        pack(code)


def test_ignored_symlink_leaving_the_tree_is_fine(code: Path) -> None:
    _write(code, {"main.py": "x", ".nniignore": "datasets\n"})
    (code / "datasets").symlink_to("/", target_is_directory=True)
    archive, _ = pack(code)
    assert _names(archive) == {"main.py"}


def test_file_count_limit(code: Path) -> None:
    _write(code, {f"f{i}.py": "x" for i in range(4)})
    pack(code, Limits(max_files=4))
    with pytest.raises(ConfigError, match="more than 3 files") as info:
        pack(code, Limits(max_files=3))
    assert ".nniignore" in str(info.value)


def test_byte_limit(code: Path) -> None:
    _write(code, {"big.bin": b"\x00" * (1024 * 1024 + 1)})
    with pytest.raises(ConfigError, match="larger than 1 MB") as info:
        pack(code, Limits(max_bytes=1024 * 1024))
    assert ".nniignore" in str(info.value)
    # Ignoring the big file is the fix the message suggests.
    (code / ".nniignore").write_text("*.bin\n")
    _write(code, {"main.py": "x"})
    archive, _ = pack(code, Limits(max_bytes=1024 * 1024))
    assert _names(archive) == {"main.py"}


def test_pack_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        pack(tmp_path / "nope")


def test_round_trip_reproduces_files_and_summary(code: Path, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "a.py": "a = 1\n",
        "b/c.py": "c = 2\n",
        "b/d/e.txt": "deep\n",
        "b.py": "bee\n",
        "d.py": "d = 4\n",
        "z/bin.dat": bytes(range(256)) * 10,
        "empty.txt": "",
    }
    _write(code, files)
    (code / "link.py").symlink_to("b/c.py")
    archive, packed = pack(code)
    dest = tmp_path / "out"
    unpacked = unpack(archive, dest)
    assert unpacked == packed
    assert packed.files == len(files) + 1
    assert _snapshot(dest) == _snapshot(code)


def test_pack_is_reproducible_in_its_summary(code: Path) -> None:
    _write(code, {"x/y.py": "1", "a.py": "2"})
    assert pack(code)[1] == pack(code)[1]


# unpack refusals -----------------------------------------------------------------------------


TarBuilder = Callable[[tarfile.TarFile, Path], None]


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"data") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _special(tar: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    tar.addfile(info)


def _dotdot(tar: tarfile.TarFile, _: Path) -> None:
    _file(tar, "../evil")


def _nested_dotdot(tar: tarfile.TarFile, _: Path) -> None:
    _file(tar, "sub/../../evil")


def _absolute(tar: tarfile.TarFile, root: Path) -> None:
    _file(tar, str(root / "absolute-evil"))


def _hardlink(tar: tarfile.TarFile, _: Path) -> None:
    _file(tar, "real.txt")
    _special(tar, "hard.txt", tarfile.LNKTYPE, "real.txt")


def _hardlink_outside(tar: tarfile.TarFile, _: Path) -> None:
    _special(tar, "hard.txt", tarfile.LNKTYPE, "../../etc/passwd")


def _symlink_up(tar: tarfile.TarFile, _: Path) -> None:
    _special(tar, "passwd", tarfile.SYMTYPE, "../../etc/passwd")


def _symlink_nested_up(tar: tarfile.TarFile, _: Path) -> None:
    _special(tar, "a/b/link", tarfile.SYMTYPE, "../../../outside")


def _symlink_absolute(tar: tarfile.TarFile, _: Path) -> None:
    _special(tar, "passwd", tarfile.SYMTYPE, "/etc/passwd")


def _symlink_then_write_through(tar: tarfile.TarFile, root: Path) -> None:
    _special(tar, "escape", tarfile.SYMTYPE, str(root))
    _file(tar, "escape/evil")


def _symlink_chain_path(tar: tarfile.TarFile, _: Path) -> None:
    """Each link stays inside by name; together they point above the tree."""
    _special(tar, "x", tarfile.SYMTYPE, ".")
    _special(tar, "x/y", tarfile.SYMTYPE, "..")


def _symlink_chain_target(tar: tarfile.TarFile, _: Path) -> None:
    _special(tar, "x", tarfile.SYMTYPE, ".")
    _special(tar, "z", tarfile.SYMTYPE, "x/..")


def _fifo(tar: tarfile.TarFile, _: Path) -> None:
    _special(tar, "pipe", tarfile.FIFOTYPE)


def _char_device(tar: tarfile.TarFile, _: Path) -> None:
    info = tarfile.TarInfo("null")
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    tar.addfile(info)


def _block_device(tar: tarfile.TarFile, _: Path) -> None:
    info = tarfile.TarInfo("sda")
    info.type = tarfile.BLKTYPE
    info.devmajor, info.devminor = 8, 0
    tar.addfile(info)


def _bomb(tar: tarfile.TarFile, _: Path) -> None:
    """A header that claims far more data than the archive holds or the limit allows."""
    info = tarfile.TarInfo("bomb.bin")
    info.size = 10 * 1024 * 1024 * 1024
    tar.fileobj.write(info.tobuf(tar.format, tar.encoding, tar.errors))  # type: ignore[union-attr]


def _too_many(tar: tarfile.TarFile, _: Path) -> None:
    for i in range(6):
        _file(tar, f"f{i}.txt", b"x")


def _too_big(tar: tarfile.TarFile, _: Path) -> None:
    _file(tar, "a.bin", b"\x00" * 600)
    _file(tar, "b.bin", b"\x00" * 600)


BAD_ARCHIVES: dict[str, tuple[TarBuilder, str]] = {
    "dotdot": (_dotdot, "escapes"),
    "nested-dotdot": (_nested_dotdot, "escapes"),
    "absolute": (_absolute, "escapes"),
    "hardlink": (_hardlink, "hard link"),
    "hardlink-outside": (_hardlink_outside, "hard link"),
    "symlink-up": (_symlink_up, "links outside"),
    "symlink-nested-up": (_symlink_nested_up, "links outside"),
    "symlink-absolute": (_symlink_absolute, "links outside"),
    "symlink-write-through": (_symlink_then_write_through, "links outside"),
    "symlink-chain-path": (_symlink_chain_path, "extracted safely"),
    "symlink-chain-target": (_symlink_chain_target, "extracted safely"),
    "fifo": (_fifo, "not a regular file"),
    "char-device": (_char_device, "not a regular file"),
    "block-device": (_block_device, "not a regular file"),
    "bomb": (_bomb, "larger than"),
    "too-many-files": (_too_many, "more than 5 files"),
    "too-many-bytes": (_too_big, "larger than"),
}
LIMITS = Limits(max_files=5, max_bytes=1000)


def _build(builder: TarBuilder, root: Path, compress: bool) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        # A harmless entry first, so a refusal must come before anything is extracted.
        _file(tar, "aaa-first.txt", b"harmless")
        builder(tar, root)
    raw = buffer.getvalue()
    return gzip.compress(raw) if compress else raw


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "tgz"])
@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_unpack_refuses_and_writes_nothing(tmp_path: Path, case: str, compress: bool) -> None:
    builder, message = BAD_ARCHIVES[case]
    parent = tmp_path / "share" / "exp"
    parent.mkdir(parents=True)
    (parent / "existing.txt").write_text("untouched")
    archive = _build(builder, tmp_path, compress)
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError, match=message) as info:
        unpack(archive, parent / "code", LIMITS)
    assert info.value.field == "code"
    assert _snapshot(tmp_path) == before
    assert not (parent / "code").exists()


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"this is not a tar archive at all",
        os.urandom(4096),
        gzip.compress(b"gzip of something that is not a tar" * 20),
        gzip.compress(b"\x00" * 100)[:30],
    ],
    ids=["empty", "text", "random", "gzip-not-tar", "truncated-gzip"],
)
def test_unpack_refuses_non_tar_blobs(tmp_path: Path, blob: bytes) -> None:
    parent = tmp_path / "share"
    parent.mkdir()
    with pytest.raises(ConfigError) as info:
        unpack(blob, parent / "code")
    assert info.value.field == "code"
    assert list(parent.iterdir()) == []


def test_unpack_refuses_a_truncated_archive(code: Path, tmp_path: Path) -> None:
    _write(code, {f"f{i}.bin": os.urandom(5000) for i in range(5)})
    archive, _ = pack(code)
    parent = tmp_path / "share"
    parent.mkdir()
    with pytest.raises(ConfigError):
        unpack(archive[: len(archive) // 2], parent / "code")
    assert list(parent.iterdir()) == []


def test_unpack_accepts_in_tree_symlinks_and_directories(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg")
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        _file(tar, "pkg/mod.py", b"X = 1")
        _special(tar, "pkg/sub/up.py", tarfile.SYMTYPE, "../mod.py")
        _special(tar, "top.py", tarfile.SYMTYPE, "./pkg/mod.py")
    dest = tmp_path / "out"
    summary = unpack(buffer.getvalue(), dest)
    assert summary.files == 3
    assert summary.bytes == 5
    assert (dest / "pkg" / "sub" / "up.py").read_text() == "X = 1"
    assert (dest / "top.py").read_text() == "X = 1"


def test_unpack_accepts_archives_made_with_tar_c_dot(tmp_path: Path) -> None:
    """`tar -C code -czf - .` names entries ./a.py and has a ./ root entry."""
    source = tmp_path / "code"
    source.mkdir()
    (source / "a.py").write_text("print(1)\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source, arcname=".")
    dest = tmp_path / "out"
    summary = unpack(buffer.getvalue(), dest)
    assert summary.files == 1
    assert (dest / "a.py").read_text() == "print(1)\n"

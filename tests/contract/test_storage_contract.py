"""The contract every storage backend meets.

Each backend is one entry of ``BACKENDS``: a factory that builds it on a fresh, private
root for one test: ``mounted`` on a temporary folder, ``nfs`` on a wiped export of a
loopback nfs-ganesha (skipped where ganesha cannot run), ``azureStorage`` on the local
Azure Files fake with its key in the local Key Vault fake. Every test runs on each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kubesweep.errors import ConfigError, NotFoundError
from kubesweep_dispatcher.storage import FileInfo, StorageBackend, create_storage
from tests.fakes.fixtures import (  # noqa: F401  (fixtures used through getfixturevalue)
    AzureEnv,
    azure_env,
    nfs_backend,
    nfs_export,
    nfs_server,
)

BackendFactory = Callable[[pytest.FixtureRequest, Path], StorageBackend]


def _mounted(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    return create_storage("mounted", root=tmp_path / "share")


def _nfs(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    return nfs_backend(request.getfixturevalue("nfs_export"))


def _azure(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    env: AzureEnv = request.getfixturevalue("azure_env")
    return env.backend()


BACKENDS: dict[str, BackendFactory] = {
    "mounted": _mounted,
    "nfs": _nfs,
    "azureStorage": _azure,
}


@pytest.fixture(params=sorted(BACKENDS))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    backend = BACKENDS[request.param](request, tmp_path)
    assert isinstance(backend, StorageBackend)
    assert backend.name == request.param
    return backend


def _tree(storage: StorageBackend, path: str) -> dict[str, bytes | None]:
    """Everything the backend shows under ``path``: files with content, folders as None."""
    out: dict[str, bytes | None] = {}
    if not storage.exists(path):
        return out
    for entry in storage.list_dir(path):
        rel = f"{path}/{entry.name}"
        if entry.is_dir:
            out[rel] = None
            out.update(_tree(storage, rel))
        else:
            out[rel] = storage.read_bytes(rel)
    return out


def _local_tree(root: Path) -> dict[str, bytes | None]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes() if path.is_file() else None
        for path in root.rglob("*")
    }


def _source(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    root = tmp_path / "sources" / name
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


# files ---------------------------------------------------------------------------------------


def test_write_then_read(storage: StorageBackend) -> None:
    storage.write_bytes("exp/trials/t1/parameter.cfg", b'{"x": 1}')
    assert storage.read_bytes("exp/trials/t1/parameter.cfg") == b'{"x": 1}'
    storage.write_bytes("top.bin", bytes(range(256)))
    assert storage.read_bytes("top.bin") == bytes(range(256))
    storage.write_bytes("empty", b"")
    assert storage.read_bytes("empty") == b""


def test_overwrite_replaces_content(storage: StorageBackend) -> None:
    storage.write_bytes("a/file.txt", b"a much longer first version")
    storage.write_bytes("a/file.txt", b"short")
    assert storage.read_bytes("a/file.txt") == b"short"
    assert [e.name for e in storage.list_dir("a")] == ["file.txt"]


def test_read_missing_is_not_found(storage: StorageBackend) -> None:
    with pytest.raises(NotFoundError):
        storage.read_bytes("nope.txt")
    with pytest.raises(NotFoundError):
        storage.read_bytes("no/such/folder/file.txt")
    storage.write_bytes("folder/inner.txt", b"x")
    with pytest.raises(NotFoundError):
        storage.read_bytes("folder")


def test_list_dir(storage: StorageBackend) -> None:
    storage.write_bytes("exp/code/main.py", b"print('hi')")
    storage.write_bytes("exp/code/data.bin", b"\x00" * 1234)
    storage.write_bytes("exp/code/pkg/mod.py", b"x = 1")
    entries = {e.name: e for e in storage.list_dir("exp/code")}
    assert set(entries) == {"main.py", "data.bin", "pkg"}
    assert entries["main.py"] == FileInfo("main.py", False, len(b"print('hi')"))
    assert entries["data.bin"] == FileInfo("data.bin", False, 1234)
    assert entries["pkg"].is_dir
    assert [e.name for e in storage.list_dir("exp")] == ["code"]


def test_list_dir_missing_is_not_found(storage: StorageBackend) -> None:
    with pytest.raises(NotFoundError):
        storage.list_dir("missing")
    storage.write_bytes("a/file.txt", b"x")
    with pytest.raises(NotFoundError):
        storage.list_dir("a/file.txt")


def test_exists(storage: StorageBackend) -> None:
    assert not storage.exists("a")
    storage.write_bytes("a/b/c.txt", b"x")
    assert storage.exists("a")
    assert storage.exists("a/b")
    assert storage.exists("a/b/c.txt")
    assert not storage.exists("a/b/d.txt")


def test_url_names_the_path(storage: StorageBackend) -> None:
    storage.write_bytes("kubesweep/exp1/trials/t1/output/local-0/stdout", b"")
    url = storage.url("kubesweep/exp1/trials/t1/output/local-0")
    assert isinstance(url, str)
    assert "://" in url
    assert url.rstrip("/").endswith("kubesweep/exp1/trials/t1/output/local-0")


def test_check_passes_and_leaves_nothing(storage: StorageBackend) -> None:
    storage.check()
    storage.check()
    assert not storage.exists("kubesweep") or storage.list_dir("kubesweep") == []


def test_make_dirs(storage: StorageBackend) -> None:
    storage.make_dirs("exp/trials/t1/output/worker-0")
    storage.make_dirs("exp/trials/t1/output/worker-0")  # exists already: no error
    assert storage.list_dir("exp/trials/t1/output/worker-0") == []
    assert storage.list_dir("exp/trials/t1/output")[0].is_dir


def test_large_file_round_trip(storage: StorageBackend) -> None:
    # Larger than NFS's 1 MiB max_read and Azure's 4 MiB upload chunk.
    data = bytes(range(256)) * (5 * 4096 + 7)
    storage.write_bytes("big/blob.bin", data)
    assert storage.read_bytes("big/blob.bin") == data
    assert storage.list_dir("big") == [FileInfo("blob.bin", False, len(data))]


# trees ---------------------------------------------------------------------------------------


def test_publish_tree_copies_everything(storage: StorageBackend, tmp_path: Path) -> None:
    files = {"main.py": b"main", "pkg/__init__.py": b"", "pkg/sub/deep.txt": b"deep" * 100}
    source = _source(tmp_path, "one", files)
    storage.publish_tree(source, "exp/code")
    assert _tree(storage, "exp/code") == {
        "exp/code/main.py": b"main",
        "exp/code/pkg": None,
        "exp/code/pkg/__init__.py": b"",
        "exp/code/pkg/sub": None,
        "exp/code/pkg/sub/deep.txt": b"deep" * 100,
    }
    # The source is left as it was, and nothing but the target appears next to it.
    assert _local_tree(source) == _local_tree(_source(tmp_path, "copy", files))
    assert [e.name for e in storage.list_dir("exp")] == ["code"]


def test_second_publish_replaces_the_first_completely(
    storage: StorageBackend, tmp_path: Path
) -> None:
    first = _source(tmp_path, "first", {"old.py": b"old", "shared.py": b"v1", "gone/x": b"x"})
    second = _source(tmp_path, "second", {"shared.py": b"v2", "new/y": b"y"})
    storage.publish_tree(first, "exp/runtime")
    storage.publish_tree(second, "exp/runtime")
    assert _tree(storage, "exp/runtime") == {
        "exp/runtime/shared.py": b"v2",
        "exp/runtime/new": None,
        "exp/runtime/new/y": b"y",
    }
    assert not storage.exists("exp/runtime/old.py")
    assert not storage.exists("exp/runtime/gone")
    assert [e.name for e in storage.list_dir("exp")] == ["runtime"]


def test_publish_tree_leaves_siblings_alone(storage: StorageBackend, tmp_path: Path) -> None:
    storage.write_bytes("exp/code.manifest.json", b"{}")
    storage.write_bytes("exp/trials/t1/parameter.cfg", b"{}")
    storage.publish_tree(_source(tmp_path, "c", {"a": b"a"}), "exp/code")
    assert storage.read_bytes("exp/code.manifest.json") == b"{}"
    assert storage.read_bytes("exp/trials/t1/parameter.cfg") == b"{}"
    assert {e.name for e in storage.list_dir("exp")} == {"code", "code.manifest.json", "trials"}


def test_delete_tree_is_idempotent(storage: StorageBackend, tmp_path: Path) -> None:
    storage.publish_tree(_source(tmp_path, "c", {"a/b": b"1", "c": b"2"}), "exp/one/code")
    storage.write_bytes("exp/two/keep.txt", b"keep")
    storage.delete_tree("exp/one")
    assert not storage.exists("exp/one")
    assert not storage.exists("exp/one/code/c")
    assert storage.read_bytes("exp/two/keep.txt") == b"keep"
    storage.delete_tree("exp/one")  # already gone: no error
    storage.delete_tree("never/existed")
    assert _tree(storage, "exp") == {"exp/two": None, "exp/two/keep.txt": b"keep"}


# paths ---------------------------------------------------------------------------------------

BAD_PATHS = [
    "../escape.txt",
    "a/../../escape.txt",
    "a/..",
    "..",
    "/etc/escape.txt",
    "/",
    "a\\..\\escape.txt",
    "a\\b.txt",
    "a\x00b.txt",
    "a/b.txt\x00",
    "",
    ".",
    "./.",
]


@pytest.mark.parametrize("bad", BAD_PATHS, ids=repr)
def test_unsafe_paths_are_refused_before_any_write(
    storage: StorageBackend, tmp_path: Path, bad: str
) -> None:
    storage.write_bytes("a/existing.txt", b"keep")
    source = _source(tmp_path, "src", {"x": b"x"})
    before_storage = _tree(storage, "a")
    before_disk = _local_tree(tmp_path)
    operations: list[Callable[[], object]] = [
        lambda: storage.write_bytes(bad, b"evil"),
        lambda: storage.read_bytes(bad),
        lambda: storage.list_dir(bad),
        lambda: storage.exists(bad),
        lambda: storage.publish_tree(source, bad),
        lambda: storage.delete_tree(bad),
        lambda: storage.url(bad),
    ]
    for operation in operations:
        with pytest.raises(ConfigError) as info:
            operation()
        assert info.value.field == "path"
    assert _tree(storage, "a") == before_storage
    assert _local_tree(tmp_path) == before_disk

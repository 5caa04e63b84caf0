"""Staging an experiment on real (mounted) storage, and where its files live."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kubesweep.codearchive import Limits, pack
from kubesweep.errors import ConfigError
from kubesweep.trial import runtime_files
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.staging import stage_experiment, write_parameters
from kubesweep_dispatcher.storage import StorageBackend, create_storage

CODE: dict[str, bytes] = {
    "train.py": b"import nni\nprint(nni.get_next_parameter())\n",
    "pkg/__init__.py": b"",
    "pkg/model.py": b"LAYERS = 3\n",
    "data/labels.txt": b"cat\ndog\n",
}


@pytest.fixture
def storage(tmp_path: Path) -> StorageBackend:
    return create_storage("mounted", root=tmp_path / "share")


@pytest.fixture
def archive(tmp_path: Path) -> bytes:
    root = tmp_path / "code"
    for rel, data in CODE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00")
    packed, _ = pack(root)
    return packed


def _on_disk(storage: StorageBackend, path: str) -> Path:
    local = storage.local_path(path)
    assert local is not None
    return local


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


# layout --------------------------------------------------------------------------------------


def test_layout_paths() -> None:
    assert layout.experiment("exp1") == "kubesweep/exp1"
    assert layout.code("exp1") == "kubesweep/exp1/code"
    assert layout.runtime("exp1") == "kubesweep/exp1/runtime"
    assert layout.manifest("exp1") == "kubesweep/exp1/code.manifest.json"
    assert layout.trial("exp1", "t1") == "kubesweep/exp1/trials/t1"
    assert layout.parameter_file("exp1", "t1") == "kubesweep/exp1/trials/t1/parameter.cfg"
    assert layout.output("exp1", "t1") == "kubesweep/exp1/trials/t1/output/local-0"
    assert layout.output("exp1", "t1", "worker", 3) == "kubesweep/exp1/trials/t1/output/worker-3"


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "UPPER", "", "a" * 33, "a\x00"])
def test_layout_refuses_unsafe_ids(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        layout.experiment(bad)
    assert info.value.field == "experiment_id"
    with pytest.raises(ConfigError) as info:
        layout.trial("exp1", bad)
    assert info.value.field == "trial_id"


# staging -------------------------------------------------------------------------------------


def test_stage_writes_code_runtime_and_manifest(storage: StorageBackend, archive: bytes) -> None:
    staged = stage_experiment(storage, "exp1", archive, Limits())
    assert staged.files == len(CODE)
    assert staged.bytes == sum(len(data) for data in CODE.values())

    code_dir = _on_disk(storage, layout.code("exp1"))
    assert _files(code_dir) == set(CODE)
    for rel, data in CODE.items():
        assert storage.read_bytes(f"{layout.code('exp1')}/{rel}") == data

    runtime = layout.runtime("exp1")
    assert storage.exists(f"{runtime}/kubesweep_trial/keeper.py")
    assert storage.exists(f"{runtime}/nni/__init__.py")
    for rel, data in runtime_files().items():
        assert storage.read_bytes(f"{runtime}/{rel}") == data

    manifest: dict[str, Any] = json.loads(storage.read_bytes(layout.manifest("exp1")))
    assert manifest["files"] == {
        rel: hashlib.sha256(data).hexdigest() for rel, data in CODE.items()
    }
    expected = hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()
    assert manifest["sha256"] == expected == staged.sha256
    assert {e.name for e in storage.list_dir(layout.experiment("exp1"))} == {
        "code",
        "runtime",
        "code.manifest.json",
    }


def test_staged_runtime_imports_without_kubesweep_installed(
    storage: StorageBackend, archive: bytes
) -> None:
    """``-S`` hides the venv: the staged folder alone must provide ``nni`` and the keeper."""
    stage_experiment(storage, "exp1", archive, Limits())
    runtime = _on_disk(storage, layout.runtime("exp1"))
    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import nni, kubesweep_trial.keeper, sys; "
            "print(nni.__file__); print('kubesweep' in sys.modules)",
        ],
        env={"PYTHONPATH": str(runtime), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    nni_file, leaked = result.stdout.split()
    assert Path(nni_file).is_relative_to(runtime)
    assert leaked == "False"


def test_identical_code_stages_to_the_same_digest(storage: StorageBackend, archive: bytes) -> None:
    one = stage_experiment(storage, "exp1", archive, Limits())
    two = stage_experiment(storage, "exp2", archive, Limits())
    assert one.sha256 == two.sha256


def _evil_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        good = tarfile.TarInfo("train.py")
        good.size = 4
        tar.addfile(good, io.BytesIO(b"pass"))
        evil = tarfile.TarInfo("../../evil.py")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("blob", "limits", "message"),
    [
        (_evil_archive(), Limits(), "escapes"),
        (b"not an archive", Limits(), "not a readable tar"),
        (None, Limits(max_files=2), "more than 2 files"),
    ],
    ids=["traversal", "garbage", "too-many-files"],
)
def test_refused_archive_leaves_nothing_on_storage(
    storage: StorageBackend,
    archive: bytes,
    tmp_path: Path,
    blob: bytes | None,
    limits: Limits,
    message: str,
) -> None:
    storage.write_bytes("kubesweep/other/code/keep.py", b"another experiment")
    share = _on_disk(storage, "kubesweep").parent
    before = _files(tmp_path)
    with pytest.raises(ConfigError, match=message):
        stage_experiment(storage, "exp1", archive if blob is None else blob, limits)
    assert not storage.exists(layout.experiment("exp1"))
    assert _files(tmp_path) == before
    assert sorted(p.name for p in (share / "kubesweep").iterdir()) == ["other"]
    assert storage.read_bytes("kubesweep/other/code/keep.py") == b"another experiment"


def test_failure_after_publishing_removes_what_was_published(
    storage: StorageBackend, archive: bytes
) -> None:
    """A real storage fault at the last step (the manifest's place is taken by a folder)."""
    blocker = f"{layout.manifest('exp1')}/blocker"
    storage.write_bytes(blocker, b"x")
    with pytest.raises(OSError, match=r"code\.manifest\.json"):
        stage_experiment(storage, "exp1", archive, Limits())
    assert not storage.exists(layout.experiment("exp1"))


def test_stage_refuses_an_unsafe_experiment_id(storage: StorageBackend, archive: bytes) -> None:
    with pytest.raises(ConfigError):
        stage_experiment(storage, "../exp", archive, Limits())
    assert not storage.exists("kubesweep")


# parameters ----------------------------------------------------------------------------------


def test_parameter_file_has_nni_format(storage: StorageBackend) -> None:
    params: dict[str, object] = {"lr": 0.01, "layers": [64, 32], "opt": {"_name": "adam"}}
    write_parameters(storage, "exp1", "t1", 7, params)
    raw = storage.read_bytes(layout.parameter_file("exp1", "t1"))
    content = json.loads(raw)
    assert list(content) == ["parameter_id", "parameter_source", "parameters", "parameter_index"]
    assert content == {
        "parameter_id": 7,
        "parameter_source": "algorithm",
        "parameters": params,
        "parameter_index": 0,
    }
    # Rewriting (a retried launch) replaces the file.
    write_parameters(storage, "exp1", "t1", 8, {"lr": 0.1})
    again = json.loads(storage.read_bytes(layout.parameter_file("exp1", "t1")))
    assert (again["parameter_id"], again["parameters"]) == (8, {"lr": 0.1})


def test_parameter_file_is_read_by_the_nni_shim(storage: StorageBackend, archive: bytes) -> None:
    """The staged ``nni`` module reads back what the dispatcher wrote."""
    stage_experiment(storage, "exp1", archive, Limits())
    write_parameters(storage, "exp1", "t1", 3, {"lr": 0.5, "name": "x"})
    sys_dir = _on_disk(storage, layout.trial("exp1", "t1"))
    runtime = _on_disk(storage, layout.runtime("exp1"))
    env = {
        "PYTHONPATH": str(runtime),
        "PATH": os.environ.get("PATH", ""),
        "NNI_PLATFORM": "local",
        "NNI_SYS_DIR": str(sys_dir),
        "NNI_EXP_ID": "exp1",
        "NNI_TRIAL_JOB_ID": "t1",
        "NNI_TRIAL_SEQ_ID": "0",
        "NNI_OUTPUT_DIR": str(sys_dir),
        "KUBESWEEP_EXPERIMENT_ID": "exp1",
        "KUBESWEEP_TRIAL_ID": "t1",
        "KUBESWEEP_TRIAL_SEQ": "0",
        "KUBESWEEP_OUTPUT_DIR": str(sys_dir),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import nni, json; print(json.dumps(nni.get_next_parameter()))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"lr": 0.5, "name": "x"}

"""The local mirror of an experiment's staged code (local trials on remote storage).

Staged through the real `stage_experiment` on NFS (nfs-rs against ganesha); the mirror must
match the manifest, refuse tampered code, and survive racing workers on one host.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kubesweep.codearchive import Limits, pack
from kubesweep.errors import PermanentError
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.platforms.codecache import CODE, RUNTIME, CodeCache
from kubesweep_dispatcher.staging import stage_experiment
from tests.fakes.fixtures import nfs_backend
from tests.fakes.ganesha import GaneshaServer


def _stage(nfs: GaneshaServer, tmp_path: Path) -> Path:
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "trial.py").write_text("print('hi')\n")
    (code / "pkg" / "model.py").write_text("LAYERS = 3\n")
    (code / ".hidden.cfg").write_text("kept\n")
    archive, _ = pack(code, Limits())
    stage_experiment(nfs_backend(nfs), "exp1", archive, Limits())
    return code


def test_mirror_matches_the_staged_code_and_runtime(
    nfs_export: GaneshaServer, tmp_path: Path
) -> None:
    code = _stage(nfs_export, tmp_path)
    mirror = CodeCache(tmp_path / "cache").ensure(nfs_backend(nfs_export), "exp1")
    for rel in ("trial.py", "pkg/model.py", ".hidden.cfg"):
        assert (mirror / CODE / rel).read_bytes() == (code / rel).read_bytes()
    assert (mirror / RUNTIME / "kubesweep_trial" / "keeper.py").is_file()
    assert (mirror / RUNTIME / "nni" / "__init__.py").is_file()


def test_tampered_code_is_refused_and_leaves_nothing(
    nfs_export: GaneshaServer, tmp_path: Path
) -> None:
    _stage(nfs_export, tmp_path)
    staged = nfs_export.export_dir / layout.code("exp1") / "pkg" / "model.py"
    staged.write_text("LAYERS = 300\n")
    cache = CodeCache(tmp_path / "cache")
    with pytest.raises(PermanentError, match=r"pkg/model\.py does not match"):
        cache.ensure(nfs_backend(nfs_export), "exp1")
    assert list((tmp_path / "cache").iterdir()) == []


def test_racing_workers_end_with_one_complete_copy(
    nfs_export: GaneshaServer, tmp_path: Path
) -> None:
    _stage(nfs_export, tmp_path)
    # Two workers on one host (two caches on one folder), four launches each.
    caches = [CodeCache(tmp_path / "cache"), CodeCache(tmp_path / "cache")]
    found: list[Path] = []
    errors: list[BaseException] = []

    def launch(cache: CodeCache) -> None:
        try:
            found.append(cache.ensure(nfs_backend(nfs_export), "exp1"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=launch, args=(c,)) for c in caches * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(set(found)) == 1
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["exp1"]
    assert (found[0] / CODE / "pkg" / "model.py").read_text() == "LAYERS = 3\n"
    caches[0].remove("exp1")
    assert list((tmp_path / "cache").iterdir()) == []

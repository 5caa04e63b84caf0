"""Staging an experiment's code snapshot and trial runtime, once per experiment."""

from __future__ import annotations

import compileall
import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubesweep.codearchive import Limits, unpack
from kubesweep.trial import runtime_files
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.storage import StorageBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagedCode:
    files: int
    bytes: int
    sha256: str


def _manifest(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def stage_experiment(
    storage: StorageBackend, exp_id: str, archive: bytes, limits: Limits
) -> StagedCode:
    """Check and unpack the code archive, then publish code, manifest and runtime.

    Nothing is left on storage when any step fails."""
    try:
        with tempfile.TemporaryDirectory(prefix="kubesweep-stage-") as temp:
            code_dir = Path(temp) / "code"
            summary = unpack(archive, code_dir, limits)
            manifest = _manifest(code_dir)
            runtime_dir = Path(temp) / "runtime"
            for relpath, data in runtime_files().items():
                target = runtime_dir / relpath
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            # Trials then import the runtime without compiling it, each of them, at once.
            compileall.compile_dir(runtime_dir, quiet=1, workers=1)
            storage.publish_tree(code_dir, layout.code(exp_id))
            storage.publish_tree(runtime_dir, layout.runtime(exp_id))
            digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
            storage.write_bytes(
                layout.manifest(exp_id),
                json.dumps({"sha256": digest, "files": manifest}, indent=1).encode(),
            )
    except BaseException:
        storage.delete_tree(layout.experiment(exp_id))
        raise
    log.info(
        "staged %d files (%d bytes)",
        summary.files,
        summary.bytes,
        extra={"experiment_id": exp_id},
    )
    return StagedCode(summary.files, summary.bytes, digest)


def write_parameters(
    storage: StorageBackend,
    exp_id: str,
    trial_id: str,
    parameter_id: int,
    parameters: dict[str, object],
) -> None:
    """Write NNI's ``parameter.cfg`` (parameter_id, parameter_source, parameters, index)."""
    storage.write_bytes(
        layout.parameter_file(exp_id, trial_id), parameter_file(parameter_id, parameters)
    )


def parameter_file(parameter_id: int, parameters: dict[str, object]) -> bytes:
    """The content of NNI's ``parameter.cfg``."""
    content = {
        "parameter_id": parameter_id,
        "parameter_source": "algorithm",
        "parameters": parameters,
        "parameter_index": 0,
    }
    return json.dumps(content).encode()

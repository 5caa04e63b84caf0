"""Custom tuners and assessors (NNI's ``codeDir`` + ``classFileName`` + ``className``):
how their code travels from the user's disk to the tuner service.

The tuner runs as a separate service (in a cluster, a pod that cannot read the user's
disk or the trials' storage), so the code travels inside the experiment spec:

1. the CLI packs the algorithm's code folder (``pack_algorithm_code``; ``.nniignore``
   honoured, at most `MAX_FILES` files / `MAX_BYTES` bytes) and posts it next to the trial
   code archive (form fields ``tuner_code`` / ``assessor_code``);
2. the API refuses it unless the deployment allows custom algorithms, checks the archive
   and stores it base64-encoded with its SHA-256 in the spec (``attach_algorithm_code``);
3. every tuner replica that owns the experiment, now or after a fail-over, unpacks the
   same immutable bytes and imports the class (``kubesweep_tuner.custom``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from kubesweep.codearchive import Limits, pack
from kubesweep.config.spec import AlgorithmSpec, ExperimentSpec
from kubesweep.errors import ConfigError

__all__ = [
    "MAX_ARCHIVE_BYTES",
    "attach_algorithm_code",
    "custom_algorithms",
    "module_file",
    "pack_algorithm_code",
    "public_spec",
]

MAX_FILES = 200
MAX_BYTES = 16 * 1024 * 1024
MAX_ARCHIVE_BYTES = 2 * 1024 * 1024
"""Largest compressed algorithm archive: it is kept in Redis with the experiment."""
ROLES = ("tuner", "assessor")


def custom_algorithms(spec: ExperimentSpec) -> dict[str, AlgorithmSpec]:
    """The custom (``className``) algorithms of ``spec`` by role: tuner, assessor."""
    found = {"tuner": spec.tuner, "assessor": spec.assessor}
    return {role: algo for role, algo in found.items() if algo is not None and algo.class_name}


def _field(spec: ExperimentSpec, role: str, key: str) -> str:
    names = {
        "v1": {"dir": "codeDir", "class": "className"},
        "v2": {"dir": "codeDirectory", "class": "className"},
    }
    return f"{role}.{names[spec.source_format][key]}"


def module_file(algo: AlgorithmSpec) -> tuple[str, str]:
    """``(file inside the code folder, class name)`` for a custom algorithm.

    v1 gives ``classFileName`` and a bare ``className``; v2 gives ``module.Class``
    (``pkg.module.Class`` is ``pkg/module.py``).
    """
    assert algo.class_name is not None
    if algo.class_file_name:
        return algo.class_file_name, algo.class_name
    module, _, cls = algo.class_name.rpartition(".")
    if not module or not cls:
        raise ConfigError(
            f"must be module.ClassName (e.g. my_tuner.MyTuner), got {algo.class_name!r}",
            field="className",
        )
    return module.replace(".", "/") + ".py", cls


def pack_algorithm_code(spec: ExperimentSpec) -> dict[str, bytes]:
    """The code folder of each custom algorithm, packed (client side)."""
    archives: dict[str, bytes] = {}
    for role, algo in custom_algorithms(spec).items():
        folder = Path(algo.code_directory or ".")
        if not folder.is_dir():
            raise ConfigError(
                f"{folder} does not exist or is not a folder", field=_field(spec, role, "dir")
            )
        try:
            archives[role], _ = pack(folder, Limits(max_files=MAX_FILES, max_bytes=MAX_BYTES))
        except ConfigError as exc:
            raise ConfigError(exc.reason, field=_field(spec, role, "dir")) from exc
    return archives


def attach_algorithm_code(
    spec: ExperimentSpec, archives: Mapping[str, bytes], *, allowed: bool
) -> ExperimentSpec:
    """``spec`` with each custom algorithm's archive attached (API side).

    Raises `ConfigError` when custom algorithms are disabled in this deployment, when an
    archive is missing, too large, unreadable, or lacks the class file.
    """
    custom = custom_algorithms(spec)
    if custom and not allowed:
        role = next(iter(custom))
        raise ConfigError(
            f"custom {role}s (className/codeDir) are disabled in this deployment because they "
            "run your code inside the shared tuner service; use a built-in name (e.g. TPE), "
            "or ask the operator to enable them (Helm value tuner.allowCustomAlgorithms, "
            "environment KUBESWEEP_TUNER_ALLOW_CUSTOM_ALGORITHMS=true)",
            field=_field(spec, role, "class"),
        )
    updates: dict[str, Any] = {}
    for role, algo in custom.items():
        data = archives.get(role)
        if not data:
            raise ConfigError(
                f"the request needs the custom {role}'s code folder as file field "
                f"'{role}_code' (the kubesweep CLI sends it)",
                field=f"{role}_code",
            )
        if len(data) > MAX_ARCHIVE_BYTES:
            raise ConfigError(
                f"the {role}'s code archive is {len(data)} bytes, more than "
                f"{MAX_ARCHIVE_BYTES}; keep only the algorithm's files in its code folder "
                "(or list the rest in .nniignore)",
                field=_field(spec, role, "dir"),
            )
        _check_archive(data, module_file(algo)[0], role, _field(spec, role, "class"))
        updates[role] = algo.model_copy(
            update={
                "code_archive": base64.b64encode(data).decode("ascii"),
                "code_sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return spec.model_copy(update=updates) if updates else spec


def _check_archive(data: bytes, wanted: str, role: str, field: str) -> None:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            names = {str(PurePosixPath(m.name)) for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ConfigError(
            f"the {role}'s code archive is not a readable tar file: {exc}", field=f"{role}_code"
        ) from exc
    if str(PurePosixPath(wanted)) not in names:
        raise ConfigError(
            f"{wanted} is not in the {role}'s code folder; the class must be defined in a "
            "file of that folder",
            field=field,
        )


def public_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A stored spec for API responses: attached archives shown by size and digest only."""
    out = dict(spec)
    for role in ROLES:
        algo = out.get(role)
        if isinstance(algo, Mapping) and algo.get("code_archive"):
            size = len(base64.b64decode(algo["code_archive"]))
            out[role] = {**algo, "code_archive": f"<{size} bytes>"}
    return out

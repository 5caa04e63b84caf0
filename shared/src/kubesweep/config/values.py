"""Value parsers shared by the v1 and v2 loaders: durations, memory, GPUs, platforms."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesweep.config.reader import Section, show
from kubesweep.config.spec import RoleSpec
from kubesweep.errors import ConfigError

__all__ = [
    "LOG_LEVELS",
    "SUPPORTED_PLATFORMS",
    "Draft",
    "check_operator_roles",
    "check_platform",
    "class_args",
    "duration_seconds",
    "gpu_indices",
    "memory_mb",
    "missing_search_space",
    "refuse_annotation",
    "resolve_path",
    "v1_duration",
    "v2_duration",
]

SUPPORTED_PLATFORMS = ("local", "kubeflow")
# Platforms some NNI version accepts; kubesweep names them as unsupported rather than unknown.
_NNI_PLATFORMS = (
    "remote",
    "pai",
    "openpai",
    "paiYarn",
    "dlts",
    "aml",
    "adl",
    "dlc",
    "hybrid",
    "frameworkcontroller",
    "kubernetes",
)
LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "fatal")

_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_V1_DURATION = re.compile(r"[1-9][0-9]*[smhd]")
_V2_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([smhd])\s*", re.IGNORECASE)
_MEMORY = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", re.IGNORECASE)
_MEMORY_UNITS_MB = {
    "tb": 1024 * 1024,
    "gb": 1024,
    "mb": 1,
    "kb": 1 / 1024,
    "b": 1 / 1024 / 1024,
    "ti": 1024 * 1024,
    "gi": 1024,
    "mi": 1,
    "ki": 1 / 1024,
}


def check_platform(sec: Section, key: str) -> str:
    """The platform at ``key``, refusing NNI platforms kubesweep does not run."""
    value = sec.req_str(key, f"set {key}: local or {key}: kubeflow")
    if value in SUPPORTED_PLATFORMS:
        return value
    supported = ", ".join(SUPPORTED_PLATFORMS)
    if value in _NNI_PLATFORMS:
        raise sec.error(key, f"{value} is not supported by kubesweep; supported: {supported}")
    raise sec.error(key, f"unknown platform {value!r}; supported: {supported}")


def v1_duration(sec: Section, key: str) -> float | None:
    """NNI v1 ``maxExecDuration`` style: ``<positive integer><s|m|h|d>``, in seconds."""
    if not sec.has(key):
        return None
    value = sec.data[key]
    if not isinstance(value, str) or not _V1_DURATION.fullmatch(value):
        raise sec.error(
            key,
            f"must be a positive whole number followed by s, m, h or d (e.g. 30m, 3h, 2d), "
            f"got {show(value)}",
        )
    return float(int(value[:-1]) * _SECONDS[value[-1]])


def duration_seconds(value: object) -> float | None:
    """An NNI v2 duration (seconds as a number, or ``30s``/``10m``/``1.5h``/``2d``) in
    seconds; None when ``value`` is not a positive duration."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _V2_DURATION.fullmatch(value)):
        seconds = float(match.group(1)) * _SECONDS[match.group(2).lower()]
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds


def v2_duration(sec: Section, key: str) -> float | None:
    """NNI v2 duration: seconds as a number, or a string like ``1.5h``; must be > 0."""
    if not sec.has(key):
        return None
    value = sec.data[key]
    seconds = duration_seconds(value)
    if seconds is None:
        raise sec.error(
            key,
            "must be a positive number of seconds or a string like 30s, 10m, 1.5h or 2d, "
            f"got {show(value)}",
        )
    return seconds


def memory_mb(sec: Section, key: str) -> int:
    """NNI v2 ``memorySize``: an int in MB, or a string with tb|gb|mb|kb|b (or Ti/Gi/Mi/Ki)."""
    value = sec.require(key, "e.g. memorySize: 8gb (or an integer number of MB)")
    megabytes: float | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        megabytes = float(value)
    elif isinstance(value, str) and (match := _MEMORY.fullmatch(value)):
        factor = _MEMORY_UNITS_MB.get(match.group(2).lower())
        if factor is not None:
            megabytes = float(match.group(1)) * factor
    if megabytes is None or megabytes <= 0:
        raise sec.error(
            key,
            "must be a positive integer of MB or a size with a unit tb, gb, mb, kb, b "
            f"(or Ti, Gi, Mi, Ki), e.g. 8gb or 512Mi, got {show(value)}",
        )
    return max(1, math.ceil(megabytes))


def gpu_indices(sec: Section, key: str, *, allow_list: bool) -> list[int] | None:
    """GPU indices as NNI writes them: ``0``, ``"0,1"`` or (v2) ``[0, 1]``."""
    if not sec.has(key):
        return None
    value = sec.data[key]
    items: list[Any]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
        items = [int(p) if p.isdigit() else p for p in items]
    elif isinstance(value, list) and allow_list:
        items = value
    else:
        items = [value]
    if not items or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items
    ):
        form = ', "0,1" or [0, 1]' if allow_list else ' or "0,1"'
        raise sec.error(key, f"must be GPU indices like 0{form}, got {show(value)}")
    return [int(i) for i in items]


def class_args(sec: Section) -> dict[str, Any]:
    """``classArgs`` kept as a dict, except that ``optimize_mode`` must be valid."""
    args = sec.get_json("classArgs")
    inner = sec.section("classArgs")
    if inner is not None and "optimize_mode" in args:
        mode = args["optimize_mode"]
        if mode not in ("maximize", "minimize"):
            raise inner.error("optimize_mode", f"must be maximize or minimize, got {show(mode)}")
    return args


def resolve_path(value: str, base_dir: Path | None) -> str:
    """``value`` made absolute against ``base_dir`` (with ``~`` expanded); as-is without one."""
    if base_dir is None:
        return value
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = base_dir / path
    return os.path.normpath(os.path.abspath(path))


def refuse_annotation(sec: Section) -> None:
    """NNI 3 removed annotation mode, and kubesweep never had it."""
    if sec.get_bool("useAnnotation"):
        raise sec.error(
            "useAnnotation",
            "annotation is not supported (NNI 3 removed it); set useAnnotation: false and "
            "provide a search space file",
        )


def missing_search_space(key: str) -> ConfigError:
    """The error for a config that names no search space at all."""
    return ConfigError(
        f"is required; point it at a JSON search space file, e.g. {key}: search_space.json",
        field=key,
    )


@dataclass
class Draft:
    """What a format loader found: ExperimentSpec fields plus the search-space reference."""

    fields: dict[str, Any]
    search_space_key: str
    search_space_file: str | None = None
    search_space_line: int | None = None
    inline_search_space: Section | None = None


def check_operator_roles(
    roles_sec: Section, operator: str, roles: dict[str, RoleSpec | None], operator_field: str
) -> None:
    """The role rules NNI v1 enforces (and v2 forgets): which roles each operator runs."""
    present = {name for name, role in roles.items() if role is not None}
    other = "pytorch-operator" if operator == "tf-operator" else "tf-operator"
    forbidden = {"tf-operator": ("master",), "pytorch-operator": ("ps", "chief", "evaluator")}
    required = {"tf-operator": "worker", "pytorch-operator": "master"}[operator]
    for name in forbidden[operator]:
        if name in present:
            raise roles_sec.error(
                name,
                f"{operator} jobs have no {name} role; remove it, or set {operator_field}: {other}",
            )
    if required not in present:
        raise roles_sec.error(
            required,
            f"is required for {operator}; add a {required} role (replicas, command, image, "
            "cpu, memory)",
        )
    for name in ("master", "chief"):
        role = roles.get(name)
        if role is not None and role.replicas != 1:
            inner = roles_sec.section(name)
            assert inner is not None
            raise inner.error(
                "replicas", f"a {name} role runs exactly one replica, got {role.replicas}; set 1"
            )

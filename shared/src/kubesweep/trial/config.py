"""The keeper's configuration, read once from the environment the dispatcher sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from . import protocol


class KeeperConfigError(ValueError):
    """A keeper variable is missing or malformed (a dispatcher bug; exit code 78)."""


@dataclass(frozen=True)
class KeeperConfig:
    experiment_id: str
    trial_id: str
    sequence: int
    attempt: int
    command: str
    output_dir: str
    sys_dir: str
    code_dir: str | None
    work_dir: str | None
    collector_url: str | None
    token: str | None
    report_status: bool
    primary: bool
    platform: str
    report_timeout: float
    nni_shim: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KeeperConfig:
        output_dir = _required(env, protocol.ENV_OUTPUT_DIR)
        platform = env.get(protocol.ENV_PLATFORM) or protocol.DEFAULT_PLATFORM
        if platform not in protocol.PLATFORMS:
            raise KeeperConfigError(
                f"{protocol.ENV_PLATFORM}={platform!r}: expected one of "
                + ", ".join(protocol.PLATFORMS)
            )
        collector = (env.get(protocol.ENV_COLLECTOR_URL) or "").rstrip("/") or None
        if collector and not collector.startswith(("http://", "https://")):
            raise KeeperConfigError(
                f"{protocol.ENV_COLLECTOR_URL} must be an http(s) URL, got {collector!r}"
            )
        attempt = _int(env, protocol.ENV_TRIAL_ATTEMPT, 1)
        if attempt < 1:
            raise KeeperConfigError(f"{protocol.ENV_TRIAL_ATTEMPT} must be >= 1, got {attempt}")
        timeout = _float(env, protocol.ENV_REPORT_TIMEOUT, protocol.DEFAULT_REPORT_TIMEOUT)
        return cls(
            experiment_id=_required(env, protocol.ENV_EXPERIMENT_ID),
            trial_id=_required(env, protocol.ENV_TRIAL_ID),
            sequence=_int(env, protocol.ENV_TRIAL_SEQ, 0),
            attempt=attempt,
            command=_required(env, protocol.ENV_TRIAL_COMMAND),
            output_dir=os.path.abspath(output_dir),
            sys_dir=os.path.abspath(_required(env, protocol.ENV_SYS_DIR)),
            code_dir=_optional_dir(env, protocol.ENV_CODE_DIR),
            work_dir=_optional_dir(env, protocol.ENV_WORK_DIR, must_exist=False),
            collector_url=collector,
            token=env.get(protocol.ENV_TRIAL_TOKEN) or None,
            report_status=_flag(env, protocol.ENV_REPORT_STATUS, default=True),
            primary=_flag(env, protocol.ENV_PRIMARY, default=True),
            platform=platform,
            report_timeout=timeout,
            nni_shim=_flag(env, protocol.ENV_NNI_SHIM, default=True),
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise KeeperConfigError(f"{name} is required")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise KeeperConfigError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise KeeperConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise KeeperConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise KeeperConfigError(f"{name} must be 1 or 0, got {raw!r}")


def _optional_dir(env: Mapping[str, str], name: str, *, must_exist: bool = True) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    path = os.path.abspath(raw)
    if must_exist and not os.path.isdir(path):
        raise KeeperConfigError(f"{name}={raw!r} is not a directory")
    return path

"""Preparing and supervising the trial command: work dir, environment, signals."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from types import FrameType

from . import protocol, runtime_files
from .config import KeeperConfig

KILL_GRACE_SECONDS = 10.0


def prepare_workdir(config: KeeperConfig, scratch: str) -> str:
    """Copy the read-only code snapshot where the trial may write (NNI copies it too)."""
    dest = config.work_dir or os.path.join(scratch, "code")
    if config.code_dir is None:
        os.makedirs(dest, exist_ok=True)
    else:
        shutil.copytree(config.code_dir, dest, symlinks=True, dirs_exist_ok=True)
    return dest


def runtime_dir(scratch: str) -> str:
    """The folder holding ``kubesweep_trial/`` and ``nni/``, for the child's PYTHONPATH.

    Staged by the dispatcher, that is the parent of this package. Run from an installed
    ``kubesweep`` instead (``python -m kubesweep.trial.keeper``), the runtime is written
    to the scratch folder first.
    """
    staged = os.environ.get(protocol.ENV_RUNTIME_DIR)
    if staged and os.path.isfile(os.path.join(staged, protocol.SHIM_PACKAGE, "__init__.py")):
        return staged
    package_dir = os.path.dirname(os.path.abspath(__file__))
    parent = os.path.dirname(package_dir)
    if os.path.basename(package_dir) == protocol.RUNTIME_PACKAGE and os.path.isfile(
        os.path.join(parent, protocol.SHIM_PACKAGE, "__init__.py")
    ):
        return parent
    target = os.path.join(scratch, "runtime")
    for relative, content in runtime_files().items():
        path = os.path.join(target, *relative.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
    return target


def child_env(
    config: KeeperConfig, base: Mapping[str, str], metric_fd: int, runtime: str
) -> dict[str, str]:
    """The command's environment: NNI's variables, the metric pipe, and no token."""
    env = dict(base)
    # Least privilege: only the keeper talks to the collector.
    env.pop(protocol.ENV_TRIAL_TOKEN, None)
    env.update(
        {
            protocol.NNI_PLATFORM: config.platform,
            protocol.NNI_EXP_ID: config.experiment_id,
            protocol.NNI_TRIAL_JOB_ID: config.trial_id,
            protocol.NNI_TRIAL_SEQ_ID: str(config.sequence),
            protocol.NNI_SYS_DIR: config.sys_dir,
            protocol.NNI_OUTPUT_DIR: config.output_dir,
            protocol.NNI_MULTI_PHASE: "false",
            protocol.ENV_METRIC_FD: str(metric_fd),
        }
    )
    if config.code_dir is not None:
        env[protocol.NNI_CODE_DIR] = config.code_dir
    # Python trials block-buffer stdout into a pipe; unbuffered, their logs stream live.
    env.setdefault("PYTHONUNBUFFERED", "1")
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != runtime]
    if config.nni_shim:
        paths.insert(0, runtime)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        env.pop("PYTHONPATH", None)
    return env


class Child:
    """The command in its own session, so signals reach every process it started."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.signalled: int | None = None
        self._killer: threading.Timer | None = None

    def start(self, command: str, cwd: str, env: dict[str, str], metric_fd: int) -> None:
        # The trial command is a shell command, as in NNI.
        self.proc = subprocess.Popen(  # noqa: S602
            command,
            shell=True,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=(metric_fd,),
        )

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        self.signalled = signum
        self.kill_group(signum)
        if self._killer is None and self.proc is not None:
            self._killer = threading.Timer(KILL_GRACE_SECONDS, self.kill_group, (signal.SIGKILL,))
            self._killer.daemon = True
            self._killer.start()

    def kill_group(self, signum: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
            os.killpg(self.proc.pid, signum)

    def wait(self) -> int:
        """The command's exit code, ``128 + n`` when signal ``n`` killed it."""
        assert self.proc is not None
        code = self.proc.wait()
        if self._killer is not None:
            self._killer.cancel()
        return 128 - code if code < 0 else code

"""The ``local`` platform: each trial is a keeper process on this machine."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

from kubesweep.errors import PermanentError
from kubesweep.records import TrialRecord
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.platforms.base import LaunchRequest, Platform
from kubesweep_dispatcher.platforms.forkserver import ForkServerClient
from kubesweep_dispatcher.platforms.registry import register_platform

log = logging.getLogger(__name__)
HANDLE_PREFIX = "local"


def _start_time(pid: int) -> str | None:
    """The process' start time in clock ticks since boot, or None if it is gone or a zombie.

    Together with the pid it names one process for good: a recycled pid starts later."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _handle(pid: int) -> str:
    return f"{HANDLE_PREFIX}:{socket.gethostname()}:{pid}:{_start_time(pid) or 0}"


def parse_handle(handle: str) -> tuple[int, str] | None:
    """``(pid, start time)`` of a local job handle created on this host, else None."""
    parts = handle.split(":")
    if len(parts) != 4 or parts[0] != HANDLE_PREFIX or parts[1] != socket.gethostname():
        return None
    if not parts[2].isdigit():
        return None
    return int(parts[2]), parts[3]


def keeper_alive(handle: str) -> bool | None:
    """Whether the keeper behind a local handle still runs; None for another host's handle."""
    parsed = parse_handle(handle)
    if parsed is None:
        return None
    pid, started = parsed
    return _start_time(pid) == started


def _trial_environment(request: LaunchRequest, sys_dir: Path, output_dir: Path) -> dict[str, str]:
    # The worker's own settings (signing key, Redis URL, API token) never reach trial code.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBESWEEP_")}
    runtime = request.storage.local_path(layout.runtime(request.trial.experiment_id))
    code = request.storage.local_path(layout.code(request.trial.experiment_id))
    trial, spec = request.trial, request.spec
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(runtime),
            "KUBESWEEP_RUNTIME_DIR": str(runtime),
            "PYTHONUNBUFFERED": "1",
            "KUBESWEEP_PLATFORM": "local",
            "KUBESWEEP_EXPERIMENT_ID": trial.experiment_id,
            "KUBESWEEP_TRIAL_ID": trial.id,
            "KUBESWEEP_TRIAL_SEQ": str(trial.seq),
            "KUBESWEEP_TRIAL_ATTEMPT": str(trial.attempt),
            "KUBESWEEP_COLLECTOR_URL": request.collector_url,
            "KUBESWEEP_TRIAL_TOKEN": request.token,
            "KUBESWEEP_TRIAL_COMMAND": spec.trial_command,
            "KUBESWEEP_CODE_DIR": str(code),
            "KUBESWEEP_SYS_DIR": str(sys_dir),
            "KUBESWEEP_OUTPUT_DIR": str(output_dir),
            "KUBESWEEP_REPORT_STATUS": "1",
            "KUBESWEEP_PRIMARY": "1",
        }
    )
    if spec.trial_gpu_number == 0:
        # NNI does the same: a trial that asked for no GPU must not grab one.
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.update(request.env)
    return env


@register_platform("local")
class LocalPlatform(Platform):
    """Runs each trial's keeper as a detached process (forked from a warm fork server), so
    trials outlive a restarted worker."""

    name = "local"

    def __init__(self, work_root: Path | None = None) -> None:
        self.work_root = work_root
        self._forks = ForkServerClient()

    def warm_up(self) -> None:
        self._forks.start()

    def launch(self, request: LaunchRequest) -> str:
        trial = request.trial
        sys_dir = request.storage.local_path(layout.trial(trial.experiment_id, trial.id))
        output_dir = request.storage.local_path(layout.output(trial.experiment_id, trial.id))
        if sys_dir is None or output_dir is None:
            raise PermanentError("the local platform needs mounted storage")
        output_dir.mkdir(parents=True, exist_ok=True)
        env = _trial_environment(request, sys_dir, output_dir)
        if self.work_root is not None:
            self.work_root.mkdir(parents=True, exist_ok=True)
            env["KUBESWEEP_WORK_DIR"] = tempfile.mkdtemp(prefix=f"{trial.id}-", dir=self.work_root)
        pid = self._forks.spawn(env, str(sys_dir), str(output_dir / "keeper.stderr"))
        log.info(
            "started keeper pid %d",
            pid,
            extra={"experiment_id": trial.experiment_id, "trial_id": trial.id},
        )
        return _handle(pid)

    def cancel(self, trial: TrialRecord) -> None:
        parsed = parse_handle(trial.job)
        if parsed is None or not keeper_alive(trial.job):
            return
        try:
            os.killpg(parsed[0], signal.SIGTERM)
        except ProcessLookupError:
            return

    def is_alive(self, trial: TrialRecord) -> bool | None:
        return keeper_alive(trial.job)

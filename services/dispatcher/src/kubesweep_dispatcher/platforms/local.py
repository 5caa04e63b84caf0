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


def _handle(pid: int) -> str:
    return f"{HANDLE_PREFIX}:{socket.gethostname()}:{pid}"


def parse_handle(handle: str) -> int | None:
    """The pid of a local job handle created on this host, else None."""
    prefix, _, rest = handle.partition(":")
    host, _, pid = rest.rpartition(":")
    if prefix != HANDLE_PREFIX or host != socket.gethostname() or not pid.isdigit():
        return None
    return int(pid)


def keeper_alive(pid: int, trial_id: str) -> bool:
    """True while ``pid`` is a live (not zombie) keeper of ``trial_id``."""
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        environ = (proc / "environ").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except PermissionError:
        return True
    return f"KUBESWEEP_TRIAL_ID={trial_id}".encode() in environ


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
        pid = parse_handle(trial.job)
        if pid is None or not keeper_alive(pid, trial.id):
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return

    def is_alive(self, trial: TrialRecord) -> bool | None:
        pid = parse_handle(trial.job)
        if pid is None:
            return None
        return keeper_alive(pid, trial.id)

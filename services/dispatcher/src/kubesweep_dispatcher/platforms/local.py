"""The ``local`` platform: each trial is a keeper process on this machine."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from kubesweep.config import ExperimentSpec
from kubesweep.records import TrialRecord
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.platforms import codecache
from kubesweep_dispatcher.platforms.base import LaunchRequest, Platform
from kubesweep_dispatcher.platforms.codecache import CodeCache
from kubesweep_dispatcher.platforms.forkserver import ForkServerClient
from kubesweep_dispatcher.platforms.registry import register_platform
from kubesweep_dispatcher.staging import parameter_file

log = logging.getLogger(__name__)
HANDLE_PREFIX = "local"
PARAMETER_FILE = "parameter.cfg"
LOCAL_ROLE = "local-0"
# How often a supervisor uploads a running trial's changed outputs to remote storage.
UPLOAD_INTERVAL_S = 3.0


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


def _trial_environment(
    request: LaunchRequest, code: Path, runtime: Path, sys_dir: Path, output_dir: Path
) -> dict[str, str]:
    # The worker's own settings (signing key, Redis URL, API token) never reach trial code.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBESWEEP_")}
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
    trials outlive a restarted worker.

    On mounted storage the keeper reads code and writes outputs in place. On remote storage
    (nfs, azureStorage) the experiment's code is mirrored once into ``state_root/cache``,
    each attempt works in ``state_root/trials/<exp>/<trial>/<attempt>``, and a detached
    `supervisor` runs the keeper and uploads its outputs (docs/storage.md)."""

    name = "local"

    def __init__(self, work_root: Path | None = None, state_root: Path | None = None) -> None:
        self.work_root = work_root
        self.state_root = state_root or Path(tempfile.gettempdir()) / f"kubesweep-{os.getuid()}"
        self.cache = CodeCache(self.state_root / "cache")
        self._forks = ForkServerClient()

    def warm_up(self) -> None:
        self._forks.start()

    def attempt_dir(self, exp_id: str, trial_id: str, attempt: int) -> Path:
        """Where an attempt of a trial on remote storage works on this host."""
        return self.state_root / "trials" / exp_id / trial_id / str(attempt)

    def launch(self, request: LaunchRequest) -> str:
        trial, storage = request.trial, request.storage
        exp_id = trial.experiment_id
        code = storage.local_path(layout.code(exp_id))
        runtime = storage.local_path(layout.runtime(exp_id))
        sys_dir = storage.local_path(layout.trial(exp_id, trial.id))
        output_dir = storage.local_path(layout.output(exp_id, trial.id, attempt=trial.attempt))
        supervise: dict[str, Any] | None = None
        if code is None or runtime is None or sys_dir is None or output_dir is None:
            mirror = self.cache.ensure(storage, exp_id)
            code, runtime = mirror / codecache.CODE, mirror / codecache.RUNTIME
            sys_dir = self.attempt_dir(exp_id, trial.id, trial.attempt)
            output_dir = sys_dir / "output" / LOCAL_ROLE
            output_dir.mkdir(parents=True, exist_ok=True)
            (sys_dir / PARAMETER_FILE).write_bytes(
                parameter_file(trial.parameter_id, trial.parameters)
            )
            supervise = {
                "storage": storage.handoff(),
                "local_dir": str(sys_dir),
                "remote_output": f"{layout.attempt_folder(exp_id, trial.id, trial.attempt)}/output",
                "interval_s": UPLOAD_INTERVAL_S,
            }
        output_dir.mkdir(parents=True, exist_ok=True)
        env = _trial_environment(request, code, runtime, sys_dir, output_dir)
        if supervise is not None:
            # The supervisor reports the end, after the last upload.
            env["KUBESWEEP_REPORT_STATUS"] = "0"
        if self.work_root is not None:
            self.work_root.mkdir(parents=True, exist_ok=True)
            env["KUBESWEEP_WORK_DIR"] = tempfile.mkdtemp(prefix=f"{trial.id}-", dir=self.work_root)
        pid = self._forks.spawn(env, str(sys_dir), str(output_dir / "keeper.stderr"), supervise)
        log.info(
            "started %s pid %d",
            "keeper" if supervise is None else "supervisor",
            pid,
            extra={"experiment_id": exp_id, "trial_id": trial.id},
        )
        return _handle(pid)

    def read_live_file(self, trial: TrialRecord, relpath: str) -> bytes | None:
        """A running trial's file from its local work folder, when it runs on this host."""
        if parse_handle(trial.job) is None:
            return None
        own = f"{layout.ATTEMPTS}/{trial.attempt}/"
        if relpath.startswith(own):
            relpath = relpath[len(own) :]
        if relpath != PARAMETER_FILE and not relpath.startswith("output/"):
            return None
        path = self.attempt_dir(trial.experiment_id, trial.id, trial.attempt) / relpath
        try:
            return path.read_bytes()
        except OSError:
            return None  # not on this host's disk (mounted storage, or already uploaded)

    def cleanup_experiment(self, exp_id: str, spec: ExperimentSpec) -> None:
        # Trial folders are removed by their supervisors once uploaded; only the mirror here.
        self.cache.remove(exp_id)

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

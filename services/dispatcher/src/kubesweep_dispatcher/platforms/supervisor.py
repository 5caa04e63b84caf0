"""The supervisor of a local trial whose experiment keeps its files on remote storage.

The keeper is stdlib-only and writes its outputs to a local folder; it cannot reach an NFS
export or an Azure share. So the fork server forks this supervisor instead (detached in its
own session, like a keeper, so it outlives a restarted worker), and the supervisor:

1. forks the keeper as its child (same process group: a cancel's SIGTERM to the group
   reaches both; the keeper forwards it to the trial command),
2. reports RUNNING, then uploads the trial's ``output/`` folder to the trial's folder on
   storage every few seconds while the keeper runs,
3. after the keeper exits, uploads once more and only then reports SUCCEEDED / FAILED
   (the keeper runs with ``KUBESWEEP_REPORT_STATUS=0``): a trial that the API shows as
   ended has its outputs on storage,
4. deletes the local folder when everything was uploaded.

It runs in a process forked from the fork server, configured by the keeper's environment
(``KUBESWEEP_*``, already in ``os.environ``) and a ``spec`` dict from the worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import shutil
import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from kubesweep.errors import KubesweepError
from kubesweep.trial import keeper, lockfile, protocol
from kubesweep.trial.config import KeeperConfig
from kubesweep.trial.sender import Sender
from kubesweep_dispatcher.storage import StorageBackend, restore_storage

log = logging.getLogger("kubesweep.supervisor")
_PR_SET_PDEATHSIG = 1
# How much of the command's stderr is searched for the failure message.
_STDERR_TAIL = 16 * 1024


def run(spec: dict[str, Any]) -> int:
    """Supervise one trial attempt; returns the keeper's exit code."""
    _log_to_stderr()
    local_dir = Path(spec["local_dir"])
    outcome, holder = lockfile.acquire(str(local_dir))
    if outcome != lockfile.ACQUIRED:
        # A redelivered launch: the first supervisor runs (or ran) this attempt.
        log.info("attempt already supervised (%s, %s); not starting", outcome, holder)
        return 0
    config = KeeperConfig.from_env(os.environ)
    pid = _fork_keeper()
    stopper = _Stopper(pid)
    sender = Sender(config.collector_url, config.token, config.report_timeout, log)
    sender.start()
    status_path = protocol.STATUS_PATH.format(
        experiment=config.experiment_id, trial=config.trial_id
    )
    sender.post(status_path, {"attempt": config.attempt, "status": protocol.STATUS_RUNNING})
    uploader = Uploader(
        restore_storage(spec.pop("storage")), local_dir / "output", spec["remote_output"]
    )
    uploader.sync()
    interval = float(spec.get("interval_s", 3.0))
    status = _wait(pid, interval, uploader.sync)
    uploaded = uploader.sync()
    code, message = _outcome(status, Path(config.output_dir), stopper.signalled)
    body: dict[str, Any] = {
        "attempt": config.attempt,
        "status": protocol.STATUS_SUCCEEDED if code == 0 else protocol.STATUS_FAILED,
        "exit_code": code,
    }
    if code != 0:
        body["message"] = message
    sender.post(status_path, body)
    if not sender.close(config.report_timeout):
        log.error("could not deliver the trial's final status to the collector")
    lockfile.mark_finished(str(local_dir), code)
    if uploaded:
        shutil.rmtree(local_dir, ignore_errors=True)
        for folder in (local_dir.parent, local_dir.parent.parent):
            with contextlib.suppress(OSError):
                folder.rmdir()  # the trial's and the experiment's folders, once empty
    else:
        log.error("some outputs could not be uploaded; they stay in %s", local_dir)
    return code


class Uploader:
    """Copies new and changed files of a local folder to a folder on storage."""

    def __init__(self, storage: StorageBackend, local: Path, remote: str) -> None:
        self.storage = storage
        self.local = local
        self.remote = remote
        self._sent: dict[str, tuple[int, int]] = {}
        self._folders: set[str] = set()

    def sync(self) -> bool:
        """Upload what changed since the last call; False if anything failed (logged)."""
        ok = True
        for root, dirs, names in os.walk(self.local):
            dirs.sort()
            rel_root = Path(root).relative_to(self.local).as_posix()
            prefix = "" if rel_root == "." else f"{rel_root}/"
            if prefix and prefix not in self._folders:
                if self._send(prefix, partial(self.storage.make_dirs, self._at(prefix))):
                    self._folders.add(prefix)
                else:
                    ok = False
            for name in sorted(names):
                ok = self._sync_file(Path(root) / name, f"{prefix}{name}") and ok
        return ok

    def _sync_file(self, path: Path, rel: str) -> bool:
        if path.is_symlink() or (rel.endswith(".tmp") and protocol.LOCK_FILE in rel):
            return True  # links may point anywhere; the lock's temp file is about to vanish
        try:
            stat = path.stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
            if self._sent.get(rel) == stamp:
                return True
            data = path.read_bytes()
        except OSError:
            return True  # removed or replaced while we looked: the next pass sees the result
        if self._send(rel, lambda: self.storage.write_bytes(self._at(rel), data)):
            self._sent[rel] = stamp
            return True
        return False

    def _at(self, rel: str) -> str:
        return f"{self.remote}/{rel}".rstrip("/")

    def _send(self, rel: str, operation: Callable[[], object]) -> bool:
        try:
            operation()
        except KubesweepError as exc:
            log.warning("cannot upload %s to %s: %s", rel, self.storage.describe(), exc)
            return False
        return True


class _Stopper:
    """Passes SIGTERM/SIGINT on to the keeper (a cancel signals the whole group anyway)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signalled: int | None = None
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        self.signalled = signum
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)


def _fork_keeper() -> int:
    """Fork the keeper (before this process starts any thread)."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        _die_with(parent)
        code = keeper.main([])
    finally:
        os._exit(code)


def _die_with(parent: int) -> None:
    """Get SIGTERM when the supervisor dies: nobody would report this trial's end."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(70)


def _wait(pid: int, interval: float, tick: Callable[[], object]) -> int:
    """Wait for the keeper, calling ``tick`` every ``interval`` seconds (or less often when
    ticks are slow); returns the keeper's wait status."""
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        next_tick = time.monotonic() + interval
        while True:
            waited, status = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return status
            left = next_tick - time.monotonic()
            if left <= 0:
                started = time.monotonic()
                tick()
                # Uploads of big, growing files take a while: spend at most a fifth of the
                # time uploading, not the whole time re-sending them.
                spent = time.monotonic() - started
                next_tick = time.monotonic() + max(interval, 4 * spent)
            elif pidfd is not None:
                select.select([pidfd], [], [], left)
            else:
                time.sleep(min(0.05, left))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _outcome(status: int, output_dir: Path, signalled: int | None) -> tuple[int, str]:
    """The exit code and failure message, as the keeper itself would report them."""
    if os.WIFSIGNALED(status):
        name = _signal_name(os.WTERMSIG(status))
        return 128 + os.WTERMSIG(status), f"the trial keeper was killed by {name}"
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return 0, ""
    message = _last_line(output_dir / protocol.STDERR_FILE)
    if not message and signalled is not None:
        message = f"stopped by {_signal_name(signalled)}"
    if not message:
        message = f"exit code {code}; see {protocol.LOG_FILE}"
    return code, message[: protocol.MAX_MESSAGE_CHARS]


def _last_line(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - _STDERR_TAIL))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s supervisor: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

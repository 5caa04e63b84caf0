"""``keeper.lock``: at most one keeper per trial attempt and replica.

Launches are at-least-once (Celery redelivers with ``acks_late``, a pod's container can
restart), so a second keeper for the same output folder must not run the command again:
its metrics would mix with the first run's under one attempt. The lock is created with
``O_CREAT|O_EXCL`` and records who holds it::

    {"pid": 123, "host": "pod-or-machine", "started": "<process start ticks>", "exit_code": null}

A second keeper then finds one of:

* ``running`` — the holder is alive on this host: a duplicate launch; exit 0 quietly.
* ``finished`` — the holder completed and wrote its exit code: exit with that code again.
* ``stale`` — the holder died mid-run (OOM kill, node crash) or lives where we cannot see it.
  Whether the command ran partly, and which metrics reached the collector, is unknown, so
  the keeper refuses (exit 75) and the dispatcher decides — typically a new attempt, which
  gets a fresh output folder, token and metric namespace.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from . import protocol

ACQUIRED = "acquired"
RUNNING = "running"
FINISHED = "finished"
STALE = "stale"

# How long a lock file may stay empty: its creator writes it right after O_EXCL succeeds.
_EMPTY_GRACE_SECONDS = 2.0


def acquire(output_dir: str) -> tuple[str, dict[str, Any]]:
    """Take the lock, or say who holds it: ``(ACQUIRED|RUNNING|FINISHED|STALE, holder)``."""
    path = os.path.join(output_dir, protocol.LOCK_FILE)
    me = _identity(os.getpid())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        holder = _read_holder(path)
        return _judge(holder), holder
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(me, handle)
    return ACQUIRED, me


def mark_finished(output_dir: str, exit_code: int) -> None:
    """Record the exit code so later duplicates replay it instead of running again."""
    path = os.path.join(output_dir, protocol.LOCK_FILE)
    record = _identity(os.getpid())
    record["exit_code"] = exit_code
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(tmp, path)


def _identity(pid: int) -> dict[str, Any]:
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "started": _start_ticks(pid),
        "exit_code": None,
    }


def _read_holder(path: str) -> dict[str, Any]:
    deadline = time.monotonic() + _EMPTY_GRACE_SECONDS
    while True:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            text = ""
        if text.strip() or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _judge(holder: dict[str, Any]) -> str:
    if isinstance(holder.get("exit_code"), int):
        return FINISHED
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") != socket.gethostname():
        return STALE
    if not _alive(pid):
        return STALE
    started = holder.get("started")
    # A restarted container reuses small pids; the start time tells the processes apart.
    if started is not None and _start_ticks(pid) != started:
        return STALE
    return RUNNING


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    # Field 22 (starttime) is the 20th after the parenthesised command name.
    return fields[19] if len(fields) > 19 else None

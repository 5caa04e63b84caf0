"""A fork server for local trial keepers.

Starting a fresh interpreter and importing the keeper costs ~150 ms per trial; forking it
from a warm, single-threaded server costs a few. The server is a child of the worker and
reads one JSON request per line on stdin; each keeper it forks starts its own session, so
it outlives a restarted worker or server exactly as a separately started keeper would.
For a trial on remote storage it forks a `supervisor` instead, which runs the keeper and
uploads its outputs.

    python -m kubesweep_dispatcher.platforms.forkserver   (started by `ForkServerClient`)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from kubesweep.trial import keeper

_loaded: set[str] = set()


def _detach(request: dict[str, Any]) -> None:
    """In a forked child: own session, stdio, working folder and environment."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    os.closerange(3, 256)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the process' own stdout
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115


def _run_child(request: dict[str, Any]) -> None:
    """In the forked child: become the keeper (or its supervisor) and exit."""
    code = 70
    try:
        _detach(request)
        spec = request.get("supervise")
        if spec is None:
            code = keeper.main([])
        else:
            from kubesweep_dispatcher.platforms import supervisor

            code = supervisor.run(spec)
    finally:
        os._exit(code)


def _prepare(request: dict[str, Any]) -> None:
    """Import what a supervisor needs (its storage's SDK) once, here, instead of in every
    forked child."""
    spec = request.get("supervise")
    kind = None if spec is None else spec["storage"]["kind"]
    if kind is not None and kind not in _loaded:
        from kubesweep_dispatcher.platforms import supervisor  # noqa: F401
        from kubesweep_dispatcher.storage.registry import load_storage

        load_storage(kind)
        _loaded.add(kind)


def _reap(*_: object) -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        return


def serve() -> None:
    """Fork one keeper per request line; answer ``{"pid": n}`` or ``{"error": "..."}``."""
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in sys.stdin:
        try:
            request = json.loads(line)
            _prepare(request)
            pid = os.fork()
        except (OSError, ValueError, ImportError) as exc:
            # Never echo the request: a supervisor's carries a storage credential.
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
            continue
        if pid == 0:
            _run_child(request)
        print(json.dumps({"pid": pid}), flush=True)


class ForkServerClient:
    """Starts the server on first use (and again if it died) and asks it for keepers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with self._lock:
            self._ensure()

    def _ensure(self) -> subprocess.Popen[str]:
        if self._server is None or self._server.poll() is not None:
            self._server = subprocess.Popen(
                [sys.executable, "-m", "kubesweep_dispatcher.platforms.forkserver"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
                env={k: v for k, v in os.environ.items() if not k.startswith("KUBESWEEP_")},
            )
        return self._server

    def spawn(
        self,
        env: dict[str, str],
        cwd: str,
        stderr_path: str,
        supervise: dict[str, Any] | None = None,
    ) -> int:
        """Fork a keeper, or with ``supervise`` a `supervisor` that runs the keeper."""
        fields: dict[str, Any] = {"env": env, "cwd": cwd, "stderr": stderr_path}
        if supervise is not None:
            fields["supervise"] = supervise
        request = json.dumps(fields)
        with self._lock:
            server = self._ensure()
            assert server.stdin is not None
            assert server.stdout is not None
            try:
                server.stdin.write(request + "\n")
                server.stdin.flush()
                reply = json.loads(server.stdout.readline() or "{}")
            except (OSError, ValueError) as exc:
                server.kill()
                raise OSError(f"the keeper fork server failed: {exc}") from exc
        if "pid" not in reply:
            raise OSError(f"the keeper fork server failed: {reply.get('error', 'no reply')}")
        return int(reply["pid"])


if __name__ == "__main__":
    serve()

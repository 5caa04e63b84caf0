"""Shared rig for the collector benchmarks: a private Redis with running trials, collector
servers (full or an empty Flask endpoint) in their own processes, and HTTP load clients."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from kubesweep.cli.embedded import free_port, redis_server_binary
from kubesweep.messaging import ExperimentStatus, TrialStatus
from kubesweep.records import ExperimentRecord
from kubesweep.store import Store
from kubesweep.tokens import trial_token

KEY = "bench-signing-key"
EXP = "bench"

EMPTY_SERVER = """
import logging, sys
from flask import Flask, jsonify
from waitress import serve
logging.getLogger("waitress").setLevel(logging.ERROR)
app = Flask("empty")

@app.post("/api/v1/trials/<exp>/<trial>/metrics")
def empty(exp, trial):
    return jsonify({"accepted": True}), 201

serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]), _quiet=True)
"""


@dataclass(frozen=True)
class TrialPath:
    exp_id: str
    trial_id: str
    token: str

    @property
    def metrics(self) -> str:
        return f"/api/v1/trials/{self.exp_id}/{self.trial_id}/metrics"


@contextmanager
def private_redis() -> Iterator[str]:
    """A throw-away redis-server on a free port; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="ks-bench-redis-") as temp:
        port = free_port()
        process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                temp,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


def running_trials(redis_url: str, count: int) -> list[TrialPath]:
    """``count`` RUNNING trials of one experiment, with their tokens."""
    store = Store.from_url(redis_url)
    now = time.time()
    store.create_experiment(
        ExperimentRecord(id=EXP, spec={}, status=ExperimentStatus.RUNNING, created=now, updated=now)
    )
    store.acquire_lease(EXP, "bench", 600_000)
    paths = []
    for index in range(count):
        trial = store.create_trial(
            owner="bench", max_trials=0, exp_id=EXP, parameter_id=index, parameters={"x": index}
        )
        assert trial is not None
        store.transition_trial(
            EXP, trial.id, TrialStatus.RUNNING, allowed_from=[TrialStatus.WAITING]
        )
        paths.append(TrialPath(EXP, trial.id, trial_token(KEY, EXP, trial.id, 1)))
    return paths


def start_server(
    mode: str, redis_url: str, threads: int = 8
) -> tuple[subprocess.Popen[bytes], int]:
    """``mode`` "full": the real collector (``python -m kubesweep_collector``);
    "empty": the same Flask + waitress answering an empty endpoint."""
    port = free_port()
    if mode == "full":
        env = dict(
            os.environ,
            KUBESWEEP_SIGNING_KEY=KEY,
            KUBESWEEP_REDIS_URL=redis_url,
            KUBESWEEP_COLLECTOR_PORT=str(port),
            KUBESWEEP_COLLECTOR_THREADS=str(threads),
            KUBESWEEP_LOG_LEVEL="WARNING",
        )
        argv = [sys.executable, "-m", "kubesweep_collector"]
    else:
        env = dict(os.environ)
        argv = [sys.executable, "-c", EMPTY_SERVER, str(port), str(threads)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return process, port
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{mode} collector did not start")


def post(
    conn: http.client.HTTPConnection, path: str, token: str, body: dict[str, object]
) -> tuple[int, str | None]:
    """One POST on a kept-alive connection: ``(status, Retry-After)``."""
    conn.request(
        "POST",
        path,
        body=json.dumps(body),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    response = conn.getresponse()
    response.read()
    return response.status, response.getheader("Retry-After")


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]

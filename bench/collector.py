"""Collector throughput: metric reports per second through the full path (HTTP, token,
validation, de-duplication, Lua + stream append) against the same server answering an
empty endpoint, and against raw Redis XADD from one client — measured in one run, as ratios.

    uv run python bench/collector.py [--seconds 5] [--clients 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import redis

from kubesweep.cli.embedded import free_port, redis_server_binary
from kubesweep.messaging import TrialStatus
from kubesweep.records import ExperimentRecord
from kubesweep.store import Store
from kubesweep.tokens import trial_token

KEY = "bench-signing-key"
SERVER = """
import sys
from flask import Flask, jsonify
from waitress import serve
import logging
logging.getLogger("waitress").setLevel(logging.ERROR)
from kubesweep_collector.app import create_app
from kubesweep_collector.settings import CollectorSettings

mode, port, redis_url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == "full":
    app = create_app(CollectorSettings(signing_key="__KEY__", redis_url=redis_url))
else:
    app = Flask("empty")

    @app.post("/api/v1/trials/<exp>/<trial>/metrics")
    def empty(exp, trial):
        return jsonify({"accepted": True}), 201
serve(app, host="127.0.0.1", port=port, threads=8, _quiet=True)
""".replace("__KEY__", KEY)


def _load(
    port: int, paths: list[tuple[str, str, str]], seconds: float, clients: int
) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        sequence = index * 1_000_000
        while time.monotonic() < stop:
            exp, trial, token = paths[sequence % len(paths)]
            body = json.dumps(
                {"attempt": 1, "type": "PERIODICAL", "sequence": sequence, "value": 0.5}
            )
            started = time.perf_counter()
            conn.request(
                "POST",
                f"/api/v1/trials/{exp}/{trial}/metrics",
                body=body,
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            )
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            assert response.status in (200, 201), response.status
            sequence += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def _serve(mode: str, port: int, redis_url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", SERVER, mode, str(port), redis_url])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{mode} server did not start")


def _raw_xadd(client: redis.Redis, seconds: float) -> float:
    stop = time.monotonic() + seconds
    count = 0
    began = time.monotonic()
    while time.monotonic() < stop:
        client.xadd("bench:raw", {"data": '{"type":"metric.intermediate","value":0.5}'})
        count += 1
    return count / (time.monotonic() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        redis_port = free_port()
        redis_proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(redis_port),
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
            time.sleep(0.3)
            url = f"redis://127.0.0.1:{redis_port}/0"
            store = Store.from_url(url)
            now = time.time()
            store.create_experiment(
                ExperimentRecord(
                    id="bench",
                    spec={},
                    status="RUNNING",
                    created=now,
                    updated=now,  # type: ignore[arg-type]
                )
            )
            store.acquire_lease("bench", "bench", 600_000)
            paths = []
            for index in range(20):
                trial = store.create_trial(
                    owner="bench",
                    max_trials=0,
                    exp_id="bench",
                    parameter_id=index,
                    parameters={"x": index},
                )
                assert trial is not None
                store.transition_trial(
                    "bench", trial.id, TrialStatus.RUNNING, allowed_from=[TrialStatus.WAITING]
                )
                paths.append(("bench", trial.id, trial_token(KEY, "bench", trial.id, 1)))
            results = {}
            for mode in ("empty", "full"):
                port = free_port()
                server = _serve(mode, port, url)
                try:
                    _load(port, paths, 1.0, args.clients)  # warm-up
                    results[mode] = _load(port, paths, args.seconds, args.clients)
                finally:
                    server.terminate()
                    server.wait()
            raw = _raw_xadd(redis.Redis(port=redis_port), args.seconds)
        finally:
            redis_proc.terminate()
    full, empty = results["full"], results["empty"]
    print("| path | reports/s | p50 ms | p99 ms |\n|---|---|---|---|")
    print(f"| raw Redis XADD, one client | {raw:.0f} | | |")
    print(
        f"| Flask + waitress, empty endpoint | {empty['per_s']:.0f} | {empty['p50_ms']:.1f} | "
        f"{empty['p99_ms']:.1f} |"
    )
    print(
        f"| collector, full path | {full['per_s']:.0f} | {full['p50_ms']:.1f} | "
        f"{full['p99_ms']:.1f} |"
    )
    print(
        f"\nfull path / empty endpoint = {full['per_s'] / empty['per_s']:.0%} "
        f"(target >= 50 %); full path / raw XADD = {full['per_s'] / raw:.0%}"
    )


if __name__ == "__main__":
    main()

"""Collector load test: a long burst of metric posts from several client processes against
the real collector (``python -m kubesweep_collector``) and a real Redis, whose writes are
paused once mid-run (``CLIENT PAUSE ... WRITE``) to force back-pressure. Clients behave like
keepers: on 429/503 they wait ``Retry-After`` and resend the same metric.

Prints sustained metrics/s, p50/p99 latency, 429s, the collector's RSS sampled over the run
(peak, and the second half's peak against the first's: memory must stay bounded), and checks
that Redis holds exactly the metrics the collector accepted (none lost, none twice).

    uv run python bench/collector_load.py [--seconds 30] [--processes 4] [--threads 4]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import statistics
import sys
import threading
import time
from pathlib import Path
from queue import Empty
from typing import Any

import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._collector_rig import (
    TrialPath,
    percentile,
    post,
    private_redis,
    running_trials,
    start_server,
)
from kubesweep import keys

MIB = 1024 * 1024


def _client(port: int, trials: list[TrialPath], seconds: float, threads: int, out: Any) -> None:
    """One client process: ``threads`` keep-alive connections, each owning its trials."""
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    totals = {"accepted": 0, "duplicates": 0, "refused": 0, "sent": {}}
    latencies: list[float] = []

    def worker(mine: list[TrialPath]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        sequences = dict.fromkeys((t.trial_id for t in mine), 0)
        samples: list[float] = []
        counts = {"accepted": 0, "duplicates": 0, "refused": 0}
        turn = 0
        while time.monotonic() < stop:
            trial = mine[turn % len(mine)]
            turn += 1
            body = {
                "attempt": 1,
                "type": "PERIODICAL",
                "sequence": sequences[trial.trial_id],
                "value": 0.5,
            }
            started = time.perf_counter()
            status, retry_after = post(conn, trial.metrics, trial.token, body)
            if status in (429, 503):
                counts["refused"] += 1
                time.sleep(float(retry_after or 1))
                turn -= 1  # the same trial resends the same metric, like a keeper
                continue
            if status not in (200, 201):
                raise RuntimeError(f"HTTP {status}")
            samples.append(time.perf_counter() - started)
            counts["accepted" if status == 201 else "duplicates"] += 1
            sequences[trial.trial_id] += 1
        with lock:
            latencies.extend(samples)
            for key, value in counts.items():
                totals[key] += value  # type: ignore[operator]
            totals["sent"].update(sequences)  # type: ignore[union-attr]

    split = [trials[i::threads] for i in range(threads)]
    workers = [threading.Thread(target=worker, args=(mine,)) for mine in split if mine]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    out.put({**totals, "latencies": latencies})


def run(
    seconds: float, processes: int, threads: int, trials: int, pause: float = 1.0
) -> dict[str, Any]:
    """The load test; returns its figures (see ``main`` for what they mean)."""
    with private_redis() as url:
        paths = running_trials(url, trials)
        server, port = start_server("full", url)
        try:
            watched = psutil.Process(server.pid)
            client = redis.Redis.from_url(url, decode_responses=True)
            time.sleep(0.5)
            idle_rss = watched.memory_info().rss
            queue: multiprocessing.Queue[dict[str, Any]] = multiprocessing.Queue()
            procs = [
                multiprocessing.Process(
                    target=_client, args=(port, paths[i::processes], seconds, threads, queue)
                )
                for i in range(processes)
            ]
            began = time.monotonic()
            for proc in procs:
                proc.start()
            samples: list[tuple[float, int]] = []
            results: list[dict[str, Any]] = []
            paused = False
            # Read results while sampling: a child cannot exit before its result is read.
            while len(results) < len(procs):
                now = time.monotonic() - began
                samples.append((now, watched.memory_info().rss))
                if pause and not paused and now >= seconds / 2:
                    client.client_pause(int(pause * 1000), all=False)
                    paused = True
                with contextlib.suppress(Empty):
                    results.append(queue.get(timeout=0.2))
                if now > seconds + 60:
                    raise RuntimeError("clients did not finish")
            for proc in procs:
                proc.join(10)
            elapsed = time.monotonic() - began
            stored = sum(
                int(client.hget(keys.trial(t.exp_id, t.trial_id), "intermediate_count") or 0)
                for t in paths
            )
            events = client.xlen(keys.events(paths[0].exp_id))
            redis_memory = int(client.info("memory")["used_memory"])
        finally:
            server.terminate()
            server.wait(10)
    latencies = sorted(x for r in results for x in r["latencies"])
    accepted = sum(r["accepted"] for r in results)
    sent = sum(sum(r["sent"].values()) for r in results)
    steady = [rss for t, rss in samples if t >= 0.1 * seconds]
    half = len(steady) // 2
    first, second = max(steady[:half]), max(steady[half:])
    bound = max(5 * MIB, first // 20)
    return {
        "seconds": round(elapsed, 1),
        "client_processes": processes,
        "connections": processes * threads,
        "metrics_accepted": accepted,
        "metrics_per_s": accepted / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "answered_429_or_503": sum(r["refused"] for r in results),
        "duplicates_answered": sum(r["duplicates"] for r in results),
        "stored_in_redis": stored,
        "lost": sent - stored,
        "stream_entries": events,
        "redis_used_mib": redis_memory / MIB,
        "rss_idle_mib": idle_rss / MIB,
        "rss_peak_mib": max(rss for _, rss in samples) / MIB,
        "rss_first_half_peak_mib": first / MIB,
        "rss_second_half_peak_mib": second / MIB,
        "rss_growth_mib": (second - first) / MIB,
        "rss_bounded": second - first <= bound,
        "rss_samples": [(round(t, 2), round(rss / MIB, 1)) for t, rss in samples],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="connections per process")
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--pause", type=float, default=1.0, help="Redis write pause mid-run, s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.seconds, args.processes, args.threads, args.trials, args.pause)
    if args.json:
        print(json.dumps(result))
        return
    curve = result.pop("rss_samples")
    print(
        f"{result['connections']} keep-alive connections from {result['client_processes']} "
        f"processes, {args.trials} trials, {args.seconds:.0f} s; Redis writes paused "
        f"{args.pause:.1f} s mid-run\n"
    )
    print("| figure | value |\n|---|---|")
    for key, value in result.items():
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        print(f"| {key} | {shown} |")
    step = max(1, len(curve) // 12)
    print(
        "\nCollector RSS over the run (s: MiB): "
        + ", ".join(f"{t:.0f}: {m:.1f}" for t, m in curve[::step])
    )
    verdict = "bounded" if result["rss_bounded"] else "GROWING"
    print(
        f"\nsustained {result['metrics_per_s']:.0f} metrics/s, p99 {result['p99_ms']:.1f} ms, "
        f"peak RSS {result['rss_peak_mib']:.1f} MiB; memory {verdict} "
        f"({result['rss_growth_mib']:+.1f} MiB second half vs first); lost {result['lost']}"
    )


if __name__ == "__main__":
    main()

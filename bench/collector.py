"""Collector throughput: metric reports per second through the full path (HTTP, token,
validation, de-duplication, one Lua call appending to the stream) against the same Flask +
waitress server answering an empty endpoint, and against raw Redis XADD from one client;
plus the batch endpoint (metrics/s when keepers send 10 per request). The variants run
interleaved, ``--repeats`` rounds, and the table shows medians with the ratio of each round.

    uv run python bench/collector.py [--seconds 2] [--clients 8] [--repeats 7]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path

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

BATCH = 10


def load(
    port: int, paths: list[TrialPath], seconds: float, clients: int, batch: int = 0
) -> dict[str, float]:
    """``clients`` threads, each on one kept-alive connection, post for ``seconds``."""
    latencies: list[float] = []
    refused = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        sequence = index * 1_000_000  # the collector accepts sequences up to 10 M
        while time.monotonic() < stop:
            path = paths[(sequence // max(batch, 1)) % len(paths)]
            if batch:
                metrics = [
                    {"type": "PERIODICAL", "sequence": sequence + i, "value": 0.5}
                    for i in range(batch)
                ]
                body: dict[str, object] = {"attempt": 1, "metrics": metrics}
                target = path.metrics + "/batch"
            else:
                body = {"attempt": 1, "type": "PERIODICAL", "sequence": sequence, "value": 0.5}
                target = path.metrics
            started = time.perf_counter()
            status, _ = post(conn, target, path.token, body)
            if status == 429:
                with lock:
                    refused[0] += 1
                continue
            if status not in (200, 201):
                raise RuntimeError(f"unexpected HTTP {status}")
            mine.append(time.perf_counter() - started)
            sequence += max(batch, 1)
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
        "per_s": len(latencies) * max(batch, 1) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "refused": refused[0],
    }


def raw_xadd(client: redis.Redis, seconds: float) -> float:
    stop = time.monotonic() + seconds
    count = 0
    began = time.monotonic()
    while time.monotonic() < stop:
        client.xadd("bench:raw", {"data": '{"type":"metric.intermediate","value":0.5}'})
        count += 1
    return count / (time.monotonic() - began)


def measure(seconds: float, clients: int, repeats: int) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {"empty": [], "full": [], "batch": [], "raw": []}
    with private_redis() as url:
        paths = running_trials(url, 20)
        empty, empty_port = start_server("empty", url)
        full, full_port = start_server("full", url)
        try:
            for port in (empty_port, full_port):
                load(port, paths, 1.0, clients)  # warm-up
            for _ in range(repeats):
                results["empty"].append(load(empty_port, paths, seconds, clients))
                results["full"].append(load(full_port, paths, seconds, clients))
                results["batch"].append(load(full_port, paths, seconds, clients, BATCH))
                xadd = raw_xadd(redis.Redis.from_url(url), seconds)
                results["raw"].append({"per_s": xadd})
        finally:
            for process in (empty, full):
                process.terminate()
                process.wait(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    results = measure(args.seconds, args.clients, args.repeats)

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    ratios = [
        f["per_s"] / e["per_s"] for f, e in zip(results["full"], results["empty"], strict=True)
    ]
    print(
        f"{args.clients} client threads, keep-alive; waitress 8 threads; medians of {args.repeats}"
    )
    print("interleaved rounds\n")
    print("| path | metrics/s | p50 ms | p99 ms | 429s |\n|---|---|---|---|---|")
    print(f"| raw Redis XADD, one client | {med('raw', 'per_s'):.0f} | | | |")
    for kind, label in (
        ("empty", "Flask + waitress, empty endpoint"),
        ("full", "collector, full path, one metric per request"),
        ("batch", f"collector, batch endpoint, {BATCH} metrics per request"),
    ):
        print(
            f"| {label} | {med(kind, 'per_s'):.0f} | {med(kind, 'p50_ms'):.1f} | "
            f"{med(kind, 'p99_ms'):.1f} | {sum(r['refused'] for r in results[kind]):.0f} |"
        )
    print(
        f"\nfull path / empty endpoint = {statistics.median(ratios):.0%} (median; rounds: "
        f"{', '.join(f'{r:.0%}' for r in ratios)}; target >= 50 %); "
        f"full path / raw XADD = {med('full', 'per_s') / med('raw', 'per_s'):.0%}; "
        f"batch / single = {med('batch', 'per_s') / med('full', 'per_s'):.1f}x"
    )


if __name__ == "__main__":
    main()

"""Scale simulation: many experiments of trivial trials against one stack, first with one
replica of each service, then with two of the tuner, the dispatcher worker and the
collector (the API and the watcher stay single). Trials run on the local platform and only
print one NNI metric line, so the services, not the trials, are what is measured.

Prints per configuration: wall time, trials/s, p50/p99 of decision -> launched (tuner +
Celery + dispatch), decision -> running and decision -> ended, and the RSS of every service
process idle and at its peak under the load; then the two-vs-one ratio. On a 2-core machine
a second replica can only help where a replica waits (Redis round trips, a single Celery
thread pool, one tuner's lease loop), not where both cores are already busy.

Replicas: tuners share experiments through per-experiment leases; Celery workers share the
dispatch queue; collectors share one port with SO_REUSEPORT (the kernel spreads keepers'
connections, as a Kubernetes Service spreads them over pods).

    uv run python bench/scale.py [--experiments 100] [--concurrency 20] [--trials 20]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from kubesweep import keys
from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.store import Store

TRIAL = (
    'printf \'%s\\n\' "NNISDK_MEb\'{\\"parameter_id\\": 0, \\"trial_job_id\\": \\"t\\", '
    '\\"type\\": \\"FINAL\\", \\"sequence\\": 0, \\"value\\": \\"0.5\\"}\'"'
)
SCALED = ("tuner", "dispatcher-worker", "collector")
MIB = 1024 * 1024


def _config(folder: Path, concurrency: int, trials: int) -> Path:
    code = folder / "code"
    code.mkdir(parents=True)
    (code / "README").write_text("trivial trial\n")
    (folder / "space.json").write_text('{"x": {"_type": "uniform", "_value": [0, 1]}}')
    config = folder / "config.yml"
    config.write_text(
        "experimentName: scale\nsearchSpaceFile: space.json\n"
        f"trialCommand: {json.dumps(TRIAL)}\ntrialCodeDirectory: code\n"
        f"trialConcurrency: {concurrency}\nmaxTrialNumber: {trials}\n"
        "tuner:\n  name: Random\ntrainingService:\n  platform: local\n"
    )
    return config


class RssSampler:
    """Samples each service process' RSS (not its trials') every 0.25 s in a thread."""

    def __init__(self, stack: EmbeddedStack) -> None:
        self.procs = {
            c.name: psutil.Process(c.process.pid) for c in stack.children if c.name != "redis"
        }
        self.peak = dict.fromkeys(self.procs, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> dict[str, int]:
        out = {}
        for name, proc in self.procs.items():
            try:
                out[name] = proc.memory_info().rss
            except psutil.Error:
                out[name] = 0
        return out

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            for name, value in self.rss().items():
                self.peak[name] = max(self.peak[name], value)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _set_replicas(stack: EmbeddedStack, store: Store, replicas: int) -> None:
    """Start or stop the extra replicas of the scaled services, then wait until they beat."""
    commands = stack.service_commands()
    for name in SCALED:
        for index in range(2, 3):
            extra = f"{name}-{index}"
            running = any(c.name == extra for c in stack.children)
            if index <= replicas and not running:
                stack.spawn(extra, commands[name])
            elif index > replicas and running:
                pid = stack.child(extra).process.pid
                stack.kill(extra, signal.SIGTERM)
                # Its heartbeat would outlive it by the key's TTL.
                store.redis.delete(keys.heartbeat(name, f"{socket.gethostname()}:{pid}"))
    deadline = time.monotonic() + 120
    while any(len(_alive(store, name)) != replicas for name in SCALED):
        stack.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the services did not settle on {replicas} replica(s)")
        time.sleep(0.1)


def measure(stack: EmbeddedStack, config: Path, replicas: int, experiments: int) -> dict[str, Any]:
    """One round: ``experiments`` submissions of ``config`` with ``replicas`` of each."""
    store = Store.from_url(stack.redis_url)
    _set_replicas(stack, store, replicas)
    sampler = RssSampler(stack)
    time.sleep(1.0)
    idle = sampler.rss()
    client = ApiClient(stack.api_url, stack.api_token)
    with sampler:
        started = time.time()
        ids = [client.submit(config) for _ in range(experiments)]
        submitted = time.time() - started
        pending = set(ids)
        while pending:
            stack.check_alive()
            for exp_id in list(pending):
                if store.get_experiment(exp_id).status in ("DONE", "ERROR", "STOPPED"):
                    pending.discard(exp_id)
            if time.time() - started > 3600:
                raise RuntimeError(f"{len(pending)} experiments did not finish")
            time.sleep(0.25)
        wall = time.time() - started
    records = [t for exp_id in ids for t in store.list_trials(exp_id)]
    statuses = [store.get_experiment(exp_id).status for exp_id in ids]
    launched = [t.launched - t.created for t in records if t.launched]
    running = [t.started - t.created for t in records if t.started]
    ended = [t.ended - t.created for t in records if t.ended]
    return {
        "replicas": replicas,
        "experiments_done": sum(s == "DONE" for s in statuses),
        "trials": len(records),
        "succeeded": sum(t.status.value == "SUCCEEDED" for t in records),
        "final_metrics": sum(t.final is not None for t in records),
        "submit_s": submitted,
        "wall_s": wall,
        "trials_per_s": len(records) / wall,
        "launched_p50_ms": 1000 * _pct(launched, 0.5),
        "launched_p99_ms": 1000 * _pct(launched, 0.99),
        "running_p50_ms": 1000 * _pct(running, 0.5),
        "running_p99_ms": 1000 * _pct(running, 0.99),
        "ended_p50_ms": 1000 * _pct(ended, 0.5),
        "ended_p99_ms": 1000 * _pct(ended, 0.99),
        "rss_idle_mib": {k: v / MIB for k, v in idle.items()},
        "rss_peak_mib": {k: v / MIB for k, v in sampler.peak.items()},
    }


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median trials/s (its other figures stay consistent with it)."""
    ordered = sorted(rounds, key=lambda r: float(r["trials_per_s"]))
    return ordered[(len(ordered) - 1) // 2]


def _alive(store: Store, service: str) -> list[str]:
    from kubesweep import heartbeat

    return heartbeat.alive(store.redis, service)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--trials", type=int, default=20, help="trials per experiment")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved 1/2 rounds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rounds: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="ks-scale-") as temp:
        config = _config(Path(temp) / "exp", args.concurrency, args.trials)
        # One stack for every round: the extra replicas come and go between rounds.
        stack = EmbeddedStack(
            Path(temp) / "stack", extra_env={"KUBESWEEP_COLLECTOR_REUSE_PORT": "true"}
        )
        with stack:
            for index in range(args.repeats):
                # The stack accumulates finished experiments: alternate which goes first.
                for replicas in (1, 2) if index % 2 == 0 else (2, 1):
                    rounds[replicas].append(measure(stack, config, replicas, args.experiments))
    if args.json:
        print(json.dumps(rounds))
        return
    one, two = (_median_round(rounds[n]) for n in (1, 2))
    print(
        f"{args.experiments} experiments x {args.trials} trials, trialConcurrency "
        f"{args.concurrency}, trials print one metric and exit; local platform; wall from the "
        f"first submission to the last DONE; median of {args.repeats} interleaved round(s); "
        f"all 2/1 ratios per round: "
        + ", ".join(
            f"{b['trials_per_s'] / a['trials_per_s']:.2f}"
            for a, b in zip(rounds[1], rounds[2], strict=True)
        )
        + "\n"
    )
    print("| figure | 1 replica each | 2 replicas (tuner, worker, collector) | 2 / 1 |")
    print("|---|---|---|---|")
    for key in one:
        if key.startswith("rss") or key == "replicas":
            continue
        a, b = one[key], two[key]
        ratio = f"{b / a:.2f}" if isinstance(a, float) and a else ""
        shown = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in (a, b)]
        print(f"| {key} | {shown[0]} | {shown[1]} | {ratio} |")
    print("\nService RSS, MiB (idle -> peak under the load above; trials not included):\n")
    print("| service | 1 replica: idle | peak | 2 replicas: idle | peak |\n|---|---|---|---|---|")
    for name in two["rss_idle_mib"]:
        row = [
            one["rss_idle_mib"].get(name),
            one["rss_peak_mib"].get(name),
            two["rss_idle_mib"][name],
            two["rss_peak_mib"][name],
        ]
        cells = ["" if v is None else f"{v:.1f}" for v in row]
        print(f"| {name} | {' | '.join(cells)} |")
    print(
        f"\nscale-out: two replicas of each give {two['trials_per_s'] / one['trials_per_s']:.2f}x "
        f"the trials/s of one ({one['trials_per_s']:.1f} -> {two['trials_per_s']:.1f}) on "
        f"{len(psutil.Process().cpu_affinity() or [])} cores"
    )


if __name__ == "__main__":
    sys.exit(main())

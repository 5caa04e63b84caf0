"""Fault injection on the embedded stack and the invariants every chaos run must keep.

The stack is the real embedded default (``EmbeddedStack``) with one difference: its Redis
writes an append-only file with ``appendfsync always``, so a SIGKILLed Redis restarts with
every acknowledged write (the configuration kubesweep documents for production)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from kubesweep.cli.embedded import Child, EmbeddedStack
from kubesweep.messaging import ExperimentStatus
from kubesweep.store import Store
from kubesweep_dispatcher.platforms.local import keeper_alive

# What the chaos kills. Redis is restarted on the same port and data directory.
ALL_TARGETS = (
    "tuner",
    "dispatcher-worker",
    "dispatcher-watch",
    "collector",
    "dispatcher-api",
    "redis",
)
# KUBESWEEP_CHAOS_TARGETS=redis,dispatcher-worker narrows a run by hand.
TARGETS = tuple(
    t for t in os.environ.get("KUBESWEEP_CHAOS_TARGETS", ",".join(ALL_TARGETS)).split(",") if t
)

# The trial records every run of its command next to the keeper's lock, so a test can
# prove the command ran exactly once whatever was redelivered.
TRIAL_SCRIPT = """\
import os, time, nni
with open(os.path.join(os.environ["NNI_OUTPUT_DIR"], "runs.txt"), "a") as runs:
    runs.write(f"{{os.getpid()}}\\n")
params = nni.get_next_parameter()
for step in range({steps}):
    time.sleep({sleep})
    nni.report_intermediate_result(params["x"] * (step + 1))
nni.report_final_result(params["x"])
"""


def write_experiment(
    folder: Path, *, trials: int, concurrency: int, sleep: float, steps: int, tuner: str = "TPE"
) -> Path:
    """An NNI v2 local experiment whose trials sleep, report ``steps`` results, and exit."""
    code = folder / "code"
    code.mkdir(parents=True)
    (code / "trial.py").write_text(TRIAL_SCRIPT.format(sleep=sleep, steps=steps))
    (folder / "search_space.json").write_text(
        '{"x": {"_type": "uniform", "_value": [0, 1]}, '
        '"n": {"_type": "randint", "_value": [0, 1000]}}'
    )
    config = folder / "config.yml"
    config.write_text(
        f"experimentName: chaos\nsearchSpaceFile: search_space.json\n"
        f"trialCommand: python3 trial.py\ntrialCodeDirectory: code\n"
        f"trialConcurrency: {concurrency}\nmaxTrialNumber: {trials}\n"
        f"tuner:\n  name: {tuner}\n  classArgs:\n    optimize_mode: maximize\n"
        f"trainingService:\n  platform: local\n"
    )
    return config


@dataclass
class ChaosStack(EmbeddedStack):
    """The embedded stack with a persistent Redis (AOF, fsync on every write)."""

    redis_argv: list[str] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str]) -> Child:
        if name == "redis":
            if not self.redis_argv:
                assert "--appendonly" in argv, argv
                argv = list(argv)
                argv[argv.index("--appendonly") + 1] = "yes"
                argv += ["--appendfsync", "always"]
                self.redis_argv = argv
            argv = self.redis_argv
        return super().spawn(name, argv)

    def respawn(self, name: str) -> Child:
        if name == "redis":
            return self.spawn("redis", self.redis_argv)
        return super().respawn(name)

    def process_groups(self) -> list[int]:
        return [child.process.pid for child in self.children]

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Every service answers again (after the chaos, before checking results)."""
        import requests

        from kubesweep import heartbeat

        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.redis_port, decode_responses=True)
        pending = {"redis", "collector", "dispatcher-api"}
        while pending:
            assert time.monotonic() < deadline, f"still down after the chaos: {pending}"
            self.check_alive()
            with contextlib.suppress(Exception):
                if "redis" in pending and client.ping():
                    pending.discard("redis")
                for name, url in (
                    ("collector", self.collector_url),
                    ("dispatcher-api", self.api_url),
                ):
                    if name in pending and requests.get(f"{url}/healthz", timeout=1).ok:
                        pending.discard(name)
            time.sleep(0.1)
        # Heartbeats of killed instances linger for their TTL; a live one is enough here.
        for name in ("tuner", "dispatcher-worker", "dispatcher-watch"):
            while not heartbeat.alive(client, name):
                assert time.monotonic() < deadline, f"{name} not ready after the chaos"
                time.sleep(0.1)


@dataclass
class Figures:
    """Totals over a session, printed as the suite's last line."""

    faults: int = 0
    experiments: int = 0
    trials_lost: int = 0
    duplicate_launches: int = 0
    duplicate_metrics: int = 0
    by_target: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (
            f"chaos: faults injected {self.faults}, experiments completed {self.experiments}, "
            f"trials lost {self.trials_lost}, duplicate launches {self.duplicate_launches}, "
            f"duplicate metrics {self.duplicate_metrics}"
        )


class Chaos:
    """Kills and restarts services at seeded random moments."""

    def __init__(self, stack: ChaosStack, rng: random.Random, figures: Figures) -> None:
        self.stack, self.rng, self.figures = stack, rng, figures
        self.log: list[str] = []

    def inject(self, *targets: str) -> None:
        """SIGKILL services (each its whole process group), keep them down for a moment -
        mostly short, sometimes several seconds - and start them again."""
        for target in targets:
            self.stack.kill(target)
        long = self.rng.random() < 0.25
        downtime = self.rng.uniform(3.0, 8.0) if long else self.rng.uniform(0.0, 1.5)
        self.log.append(
            f"{time.strftime('%H:%M:%S')} kill {'+'.join(targets)}, down {downtime:.1f} s"
        )
        time.sleep(downtime)
        for target in targets:
            self.stack.respawn(target)
            self.figures.faults += 1
            self.figures.by_target[target] += 1

    def pause(self, low: float, high: float) -> None:
        time.sleep(self.rng.uniform(low, high))


def experiment_status(store: Store, exp_id: str) -> ExperimentStatus | None:
    """The status, or None while Redis is restarting."""
    try:
        return store.experiment_status(exp_id)
    except redis.RedisError:
        return None


def wait_status(
    store: Store, exp_id: str, wanted: set[ExperimentStatus], timeout: float
) -> ExperimentStatus:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = experiment_status(store, exp_id)
        if status in wanted:
            return status
        time.sleep(0.2)
    raise AssertionError(f"experiment {exp_id} is {status}, not {wanted}, after {timeout} s")


def all_events(store: Store, exp_id: str) -> list[Any]:
    events = []
    after = "0-0"
    while entries := store.read_events(exp_id, after, count=1000):
        events.extend(entry.event for entry in entries)
        after = entries[-1].id
    return events


@dataclass
class Verdict:
    """What one experiment's record shows, and every broken invariant."""

    trials: int
    succeeded: int  # SUCCEEDED with its one final metric and every intermediate one
    duplicate_launches: int
    duplicate_metrics: int
    problems: list[str]


def verify(store: Store, storage_root: Path, exp_id: str, expected: int, steps: int) -> Verdict:
    """Check the invariants of a finished experiment against Redis and the trial folders."""
    problems: list[str] = []
    trials = store.list_trials(exp_id)
    if len(trials) != expected:
        problems.append(f"{len(trials)} trials instead of {expected}")
    if sorted(t.seq for t in trials) != list(range(len(trials))):
        problems.append(f"sequence numbers {sorted(t.seq for t in trials)}")
    events = all_events(store, exp_id)
    launched: Counter[tuple[str, int]] = Counter()
    finals: Counter[str] = Counter()
    intermediates: Counter[tuple[str, int, int]] = Counter()
    for event in events:
        tid = event.trial_id or ""
        if event.type == "trial.launched" and "job" in event.payload:
            launched[(tid, int(event.payload.get("attempt", 1)))] += 1
        elif event.type == "metric.final":
            finals[tid] += 1
        elif event.type == "metric.intermediate":
            payload = event.payload
            intermediates[(tid, int(payload["attempt"]), int(payload["sequence"]))] += 1
    duplicate_launches = sum(n - 1 for n in launched.values() if n > 1)
    duplicate_metrics = sum(n - 1 for n in intermediates.values() if n > 1)
    succeeded = 0
    for trial in trials:
        where = f"trial {trial.id} (seq {trial.seq})"
        if trial.status.value != "SUCCEEDED":
            problems.append(f"{where} is {trial.status.value}: {trial.message}")
            continue
        complete = True
        if finals[trial.id] != 1:
            problems.append(f"{where} has {finals[trial.id]} final metrics")
            duplicate_metrics += max(0, finals[trial.id] - 1)
            complete = False
        sequences = sorted(s for (t, _a, s) in intermediates if t == trial.id)
        if sequences != list(range(steps)) or trial.intermediate_count != steps:
            problems.append(
                f"{where} intermediate sequences {sequences}, count {trial.intermediate_count}"
            )
            complete = complete and len(set(sequences)) == steps
        succeeded += complete
        output = storage_root / "kubesweep" / exp_id / "trials" / trial.id / "output" / "local-0"
        runs = (output / "runs.txt").read_text().split() if (output / "runs.txt").exists() else []
        if len(runs) != 1:
            problems.append(f"{where}: the command ran {len(runs)} times")
            duplicate_launches += max(0, len(runs) - 1)
        lock = json.loads((output / "keeper.lock").read_text())
        if lock.get("exit_code") != 0:
            problems.append(f"{where}: keeper lock {lock}")
    if duplicate_launches:
        problems.append(f"{duplicate_launches} duplicate launches: {dict(launched)}")
    if duplicate_metrics:
        problems.append(f"{duplicate_metrics} duplicate metrics")
    return Verdict(len(trials), succeeded, duplicate_launches, duplicate_metrics, problems)


def wait_keepers_gone(store: Store, exp_id: str, timeout: float = 30.0) -> list[str]:
    """Handles of keepers still alive after ``timeout`` (none expected once trials ended)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [t.job for t in store.list_trials(exp_id) if t.job and keeper_alive(t.job)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def leftovers(root: Path) -> list[str]:
    """Processes still running with their working directory inside ``root``."""
    found = []
    prefix = str(root.resolve())
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.cwd().startswith(prefix):
                found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])[:120]}")
    return found


def diagnose(stack: ChaosStack, store: Store, exp_id: str, label: str) -> str:
    """Trials, the last events and the lease, for a failure message; the service logs are
    copied to /tmp/kubesweep-chaos/<label> (pytest's own tmp folders are recycled)."""
    keep = Path("/tmp/kubesweep-chaos") / label
    with contextlib.suppress(OSError):
        shutil.copytree(stack.log_dir, keep, dirs_exist_ok=True)
    lines = [f"logs copied to {keep}"]
    try:
        for t in store.list_trials(exp_id):
            lines.append(
                f"trial {t.seq} {t.id} {t.status.value} job={t.job!r} launched={t.launched} "
                f"intermediates={t.intermediate_count} {t.message!r}"
            )
        tail = store.redis.xrevrange(f"ks:exp:{exp_id}:events", count=40)
        for entry_id, fields in reversed(tail):
            lines.append(f"{entry_id} {fields['data'][:200]}")
        lease = store.redis.get(f"ks:lease:tuner:{exp_id}")
        lines.append(f"lease {lease} ttl {store.redis.pttl(f'ks:lease:tuner:{exp_id}')} ms")
    except redis.RedisError as exc:
        lines.append(f"Redis unavailable: {exc}")
    return "\n".join(lines)


def command_pids(storage_root: Path, exp_id: str) -> list[int]:
    """The pids of every trial command run in the experiment (each trial records its own)."""
    pids = []
    for runs in (storage_root / "kubesweep" / exp_id / "trials").glob("*/output/*/runs.txt"):
        pids += [int(line) for line in runs.read_text().split()]
    return pids


def process_alive(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False

"""Helpers for tests that run the whole stack as processes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from kubesweep.cli.client import ApiClient
from kubesweep.store import Store

TRIAL_SCRIPT = """\
import os, time, nni
params = nni.get_next_parameter()
for step in range({steps}):
    time.sleep({sleep})
    nni.report_intermediate_result(params["x"] * (step + 1))
nni.report_final_result(params["x"])
"""


def write_experiment(
    folder: Path,
    *,
    trials: int,
    concurrency: int,
    sleep: float = 0.0,
    steps: int = 1,
    tuner: str = "Random",
) -> Path:
    """An NNI v2 local experiment whose trials sleep, report, and exit."""
    code = folder / "code"
    code.mkdir(parents=True)
    (code / "trial.py").write_text(TRIAL_SCRIPT.format(sleep=sleep, steps=steps))
    (folder / "search_space.json").write_text(
        '{"x": {"_type": "uniform", "_value": [0, 1]}, '
        '"n": {"_type": "randint", "_value": [0, 1000]}}'
    )
    config = folder / "config.yml"
    config.write_text(
        f"experimentName: it\nsearchSpaceFile: search_space.json\n"
        f"trialCommand: python3 trial.py\ntrialCodeDirectory: code\n"
        f"trialConcurrency: {concurrency}\nmaxTrialNumber: {trials}\n"
        f"tuner:\n  name: {tuner}\n  classArgs:\n    optimize_mode: maximize\n"
        f"trainingService:\n  platform: local\n"
    )
    return config


def wait_for(client: ApiClient, exp_id: str, statuses: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exp = client.experiment(exp_id)
        if exp["status"] in statuses:
            return exp
        time.sleep(0.2)
    raise AssertionError(f"experiment {exp_id} not in {statuses} after {timeout} s: {exp}")


def event_counts(store: Store, exp_id: str) -> Counter[tuple[str, str | None]]:
    """How often each (event type, trial) pair appears in the experiment's stream."""
    counts: Counter[tuple[str, str | None]] = Counter()
    after = "0-0"
    while entries := store.read_events(exp_id, after, count=1000):
        for entry in entries:
            counts[(entry.event.type, entry.event.trial_id)] += 1
        after = entries[-1].id
    return counts


def max_active(store: Store, exp_id: str) -> int:
    """The largest number of unfinished trials at any point of the event log."""
    active: set[str] = set()
    peak = 0
    after = "0-0"
    ends = {
        "trial.succeeded",
        "trial.failed",
        "trial.user_canceled",
        "trial.sys_canceled",
        "trial.early_stopped",
    }
    while entries := store.read_events(exp_id, after, count=1000):
        for entry in entries:
            event = entry.event
            if event.type == "trial.waiting" and event.trial_id:
                active.add(event.trial_id)
            elif event.type in ends:
                active.discard(event.trial_id or "")
            peak = max(peak, len(active))
        after = entries[-1].id
    return peak

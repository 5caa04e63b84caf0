"""Local throughput: N trials of a fixed-length command at concurrency C on the embedded
default. Prints wall time, trials/min, time to first trial and slot efficiency
(ideal wall = N x duration / C).

    uv run python bench/local_throughput.py [--trials 50] [--concurrency 4] [--sleep 1.0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.store import Store

TRIAL = """\
import random, time, nni
nni.get_next_parameter()
time.sleep({sleep})
nni.report_final_result(random.random())
"""


def write_experiment(folder: Path, trials: int, concurrency: int, sleep: float) -> Path:
    code = folder / "code"
    code.mkdir(parents=True)
    (code / "trial.py").write_text(TRIAL.format(sleep=sleep))
    (folder / "space.json").write_text('{"x": {"_type": "uniform", "_value": [0, 1]}}')
    config = folder / "config.yml"
    config.write_text(
        "experimentName: bench\nsearchSpaceFile: space.json\ntrialCommand: python3 trial.py\n"
        f"trialCodeDirectory: code\ntrialConcurrency: {concurrency}\n"
        f"maxTrialNumber: {trials}\ntuner:\n  name: Random\n"
        "trainingService:\n  platform: local\n"
    )
    return config


def measure(trials: int, concurrency: int, sleep: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ks-bench-") as temp:
        config = write_experiment(Path(temp) / "exp", trials, concurrency, sleep)
        with EmbeddedStack(Path(temp) / "stack") as stack:
            client = ApiClient(stack.api_url, stack.api_token)
            store = Store.from_url(stack.redis_url)
            started = time.time()
            exp_id = client.submit(config)
            while client.experiment(exp_id)["status"] not in ("DONE", "ERROR", "STOPPED"):
                time.sleep(0.1)
            wall = time.time() - started
            records = store.list_trials(exp_id)
    first = min(t.started or float("inf") for t in records) - started
    ideal = trials * sleep / concurrency
    return {
        "trials": trials,
        "concurrency": concurrency,
        "trial_seconds": sleep,
        "succeeded": sum(t.status.value == "SUCCEEDED" for t in records),
        "wall_s": round(wall, 2),
        "trials_per_min": round(trials / wall * 60, 1),
        "first_trial_s": round(first, 2),
        "ideal_s": ideal,
        "slot_efficiency": round(ideal / wall, 3) if ideal else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.trials, args.concurrency, args.sleep)
    if args.json:
        print(json.dumps(result))
        return
    print("| metric | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value} |")
    print(
        "\nNNI 3.0 local mode, same workload on this machine: 93.6-112.6 s, 11-13 % "
        "(shared/notes/performance-anchors.md)"
    )


if __name__ == "__main__":
    main()

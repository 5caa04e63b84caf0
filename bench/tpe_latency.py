"""TPE suggestion latency: one ``generate_parameters`` after N completed trials.

Compares, on the 7-dimension mixed space below (performance-anchors.md), at N = 10, 100,
500, 1000 and 2000 completed trials:

* kubesweep ``TPE`` (its default joint TPE) and ``TPE`` with
  ``tpe_args: {nni_compatible: true}`` (NNI 3.0's algorithm, numpy),
* kubesweep ``TPE_legacy`` (hyperopt, through kubesweep's wrapper),
* raw hyperopt ``tpe.suggest`` on the same ``Trials``,
* with ``--nni``: NNI 3.0's own ``TpeTuner``, run in ``bench/.nni-venv`` (created and
  ``pip install nni==3.0``-ed on first use; nni is not a project dependency). ``--nni``
  also checks that kubesweep's TPE in ``nni_compatible`` mode proposes exactly NNI's
  parameters for the same seed and events (concurrency 4, some failed trials).

Every tuner gets the same N random configurations and losses (parameter ids it never
generated, or ``import_data`` for NNI, whose ``receive_trial_result`` rejects those).
Each timed call is followed by ``trial_end(id, False)``, so the history stays at N.
Implementations are interleaved per N, ``--rounds`` times ``--calls`` calls each; the
table shows medians in ms and ratios to kubesweep TPE.

    uv run python bench/tpe_latency.py [--nni] [--rounds 5] [--calls 5] [--n 10 100 ...]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hyperopt import tpe

from kubesweep_tuner.algorithms import Tuner, create_tuner
from kubesweep_tuner.algorithms.nni_space import NniSpace

SPACE: dict[str, Any] = {
    "lr": {"_type": "loguniform", "_value": [1e-5, 1e-1]},
    "momentum": {"_type": "uniform", "_value": [0.5, 0.99]},
    "dropout": {"_type": "quniform", "_value": [0.0, 0.5, 0.05]},
    "batch_size": {"_type": "choice", "_value": [16, 32, 64, 128, 256]},
    "layers": {"_type": "randint", "_value": [1, 8]},
    "activation": {"_type": "choice", "_value": ["relu", "tanh", "gelu"]},
    "init_scale": {"_type": "normal", "_value": [0.0, 1.0]},
}
VENV = Path(__file__).resolve().parent / ".nni-venv"
NNI_WORKER = Path(__file__).resolve().parent / "_nni_tpe_worker.py"
Timer = Callable[[int], float]


def loss_of(p: dict[str, Any]) -> float:
    """A smooth synthetic loss over all seven parameters."""
    act = {"relu": 0.0, "tanh": 0.3, "gelu": 0.1}[p["activation"]]
    return (
        (math.log10(p["lr"]) + 3) ** 2
        + (p["momentum"] - 0.9) ** 2 * 10
        + abs(p["dropout"] - 0.2)
        + abs(math.log2(p["batch_size"]) - 6) * 0.2
        + abs(p["layers"] - 4) * 0.1
        + act
        + p["init_scale"] ** 2 * 0.05
    )


def history(n: int, seed: int = 0) -> list[tuple[dict[str, Any], float]]:
    """``n`` random configurations of `SPACE` with their losses."""
    space, rng = NniSpace(SPACE), np.random.default_rng(seed)
    out = []
    for _ in range(n):
        params = space.to_params(space.sample(rng))
        out.append((params, loss_of(params)))
    return out


NNI_MODE: dict[str, Any] = {"tpe_args": {"nni_compatible": True}}


def kubesweep_timer(
    name: str, data: list[tuple[dict[str, Any], float]], class_args: dict[str, Any] | None = None
) -> tuple[Tuner, Timer]:
    """A fed tuner and a function timing one suggestion (ms) for parameter id ``pid``."""
    tuner = create_tuner(name, {"seed": 1, **(class_args or {})})
    tuner.update_search_space(SPACE)
    for pid, (params, loss) in enumerate(data):
        tuner.receive_trial_result(pid, params, loss)
        tuner.trial_end(pid, True)

    def once(pid: int) -> float:
        start = time.perf_counter()
        tuner.generate_parameters(pid)
        elapsed = time.perf_counter() - start
        tuner.trial_end(pid, False)
        return elapsed * 1e3

    return tuner, once


def raw_hyperopt_timer(legacy: Any) -> Timer:
    """Time hyperopt's ``tpe.suggest`` directly on the legacy tuner's domain and trials."""

    def once(pid: int) -> float:
        start = time.perf_counter()
        tpe.suggest([10**7 + pid], legacy._domain, legacy._trials, pid)
        return (time.perf_counter() - start) * 1e3

    return once


class NniWorker:
    """NNI 3.0's TpeTuner in the bench venv, driven over stdin/stdout (one JSON per line)."""

    def __init__(self) -> None:
        """Create the venv and install nni==3.0 if needed, then start the worker."""
        python = VENV / "bin" / "python"
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            (VENV / ".gitignore").write_text("*\n")
        probe = subprocess.run([str(python), "-c", "import nni"], check=False, capture_output=True)
        if probe.returncode != 0:
            print("installing nni==3.0 into bench/.nni-venv ...", file=sys.stderr)
            subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "nni==3.0"], check=True)
        self.proc = subprocess.Popen(
            [str(python), str(NNI_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, **request: Any) -> Any:
        """Send one request; skip NNI's log lines until the reply."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the NNI worker exited")
            if line.startswith("RESULT "):
                return json.loads(line[7:])

    def close(self) -> None:
        """Stop the worker."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def agreement(worker: NniWorker, trials: int = 200, seed: int = 7) -> tuple[int, int]:
    """How many of ``trials`` suggestions kubesweep TPE (NNI mode) and NNI 3.0 share."""
    ours = create_tuner("TPE", {"seed": seed, **NNI_MODE})
    ours.update_search_space(SPACE)
    theirs: list[Any] = worker.call(op="replay", space=SPACE, seed=seed, trials=trials)
    running: list[tuple[int, dict[str, Any]]] = []
    got = []
    for pid in range(trials):
        params = ours.generate_parameters(pid)
        got.append(params)
        running.append((pid, params))
        if len(running) >= 4:  # concurrency 4; every 7th trial fails without a result
            done, p = running.pop(0)
            if done % 7 != 3:
                ours.receive_trial_result(done, p, loss_of(p))
            ours.trial_end(done, done % 7 != 3)
    return sum(a == b for a, b in zip(got, theirs, strict=True)), trials


def main() -> None:
    """Run the benchmark and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nni", action="store_true", help="also time NNI 3.0 (own venv)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--n", type=int, nargs="+", default=[10, 100, 500, 1000, 2000])
    args = parser.parse_args()
    worker = NniWorker() if args.nni else None
    names = ["kubesweep TPE", "TPE nni_compatible", "TPE_legacy", "hyperopt tpe.suggest"]
    names += ["NNI 3.0 TPE"] if worker else []
    rows = []
    for n in args.n:
        data = history(n)
        _, ours = kubesweep_timer("TPE", data)
        _, ours_nni = kubesweep_timer("TPE", data, NNI_MODE)
        legacy, legacy_once = kubesweep_timer("TPE_legacy", data)
        timers: dict[str, Timer] = {
            "kubesweep TPE": ours,
            "TPE nni_compatible": ours_nni,
            "TPE_legacy": legacy_once,
            "hyperopt tpe.suggest": raw_hyperopt_timer(legacy),
        }
        if worker:
            worker.call(op="load", space=SPACE, data=data)
            timers["NNI 3.0 TPE"] = lambda pid: float(worker.call(op="time", pid=pid))
        samples: dict[str, list[float]] = {name: [] for name in names}
        pid = 10**6
        for _ in range(args.rounds):
            for name in names:  # interleaved, so machine noise hits every implementation
                for _ in range(args.calls):
                    pid += 1
                    samples[name].append(timers[name](pid))
        medians = {name: statistics.median(samples[name]) for name in names}
        rows.append((n, medians))
        print(f"N={n}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in medians.items()), flush=True)
    header = "| N completed | " + " | ".join(f"{n} (ms)" for n in names)
    header += " | " + " | ".join(f"{n} / kubesweep TPE" for n in names[1:]) + " |"
    print()
    print(header)
    print("|---" * (2 * len(names)) + "|")
    for n, med in rows:
        base = med["kubesweep TPE"]
        cells = [f"{med[name]:.2f}" for name in names]
        cells += [f"{med[name] / base:.1f}x" for name in names[1:]]
        print(f"| {n} | " + " | ".join(cells) + " |")
    if worker:
        same, total = agreement(worker)
        print(
            f"\nkubesweep TPE (nni_compatible) vs NNI 3.0, seed 7, concurrency 4: "
            f"{same}/{total} identical"
        )
        worker.close()


if __name__ == "__main__":
    main()

"""Every registered tuner on four test functions: median best regret after 20/50/100 trials.

Functions (all minimised; regret = best value found - known minimum):

* Branin (2-D, min 0.397887), Hartmann-6 (6-D on [0, 1], min -3.32237),
* Rosenbrock (5-D on [-2, 2], min 0),
* "nested": a ``choice`` between three models with their own sub-parameters (loguniform,
  uniform, quniform, randint) plus a shared ``normal`` parameter (min 0).

Trials run sequentially through the `Tuner` interface (ask, tell, end), no service.
Hyperband is budget-aware: a trial at budget b costs b/R trial-equivalents and observes
f(x) plus Gaussian noise shrinking to 0 at the full budget R; its regret counts only
configurations evaluated at full budget. Batch is skipped (it needs a single
``combine_params`` choice). GridSearch has no seed: its five runs are identical.
``TPE_nni`` is ``TPE`` with ``tpe_args: {nni_compatible: true}`` (NNI 3.0's TPE); ``TPE``
is kubesweep's default joint TPE.

    uv run python bench/tuners.py [--quick] [--seeds 5] [--trials 100] [--tuners TPE Random]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubesweep_tuner.algorithms import (
    TRIAL_BUDGET,
    NoMoreTrials,
    NotReady,
    Tuner,
    available,
    create_tuner,
)
from kubesweep_tuner.algorithms.registry import resolve

Objective = Callable[[dict[str, Any]], float]
SKIPPED = {"Batch": "needs a single combine_params choice"}
#: Bench-only names: a registered tuner with extra classArgs.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "TPE_nni": ("TPE", {"tpe_args": {"nni_compatible": True}}),
}
HYPERBAND_R = 9


@dataclass(frozen=True)
class Problem:
    """A search space, its objective and the objective's minimum."""

    space: dict[str, Any]
    f: Objective
    minimum: float


def _uniform(low: float, high: float) -> dict[str, Any]:
    return {"_type": "uniform", "_value": [low, high]}


def branin(p: dict[str, Any]) -> float:
    """Branin-Hoo on [-5, 10] x [0, 15]."""
    x1, x2 = p["x1"], p["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


_H_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
     [17, 8, 0.05, 10, 0.1, 14]]
)  # fmt: skip
_H_P = 1e-4 * np.array(
    [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
)  # fmt: skip
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: dict[str, Any]) -> float:
    """Hartmann 6-D on [0, 1]^6."""
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


def rosenbrock5(p: dict[str, Any]) -> float:
    """Rosenbrock 5-D on [-2, 2]^5."""
    x = [p[f"x{i}"] for i in range(5)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(4))


def nested(p: dict[str, Any]) -> float:
    """A model choice with per-model sub-parameters; the best is "quad" at x=1, y=-2."""
    model, shared = p["model"], 0.5 * (p["w"] - 0.5) ** 2
    if model == "const":
        return 2.0 + shared
    if model["_name"] == "quad":
        return (model["x"] - 1) ** 2 + (model["y"] + 2) ** 2 + shared
    return (math.log10(model["lr"]) + 3) ** 2 + 0.3 * abs(model["depth"] - 6) + 0.5 + shared


NESTED_SPACE: dict[str, Any] = {
    "model": {
        "_type": "choice",
        "_value": [
            {
                "_name": "quad",
                "x": _uniform(-5, 5),
                "y": {"_type": "quniform", "_value": [-5, 5, 0.5]},
            },
            {
                "_name": "log",
                "lr": {"_type": "loguniform", "_value": [1e-5, 1]},
                "depth": {"_type": "randint", "_value": [1, 10]},
            },
            "const",
        ],
    },
    "w": {"_type": "normal", "_value": [0, 1]},
}
PROBLEMS = {
    "Branin (2-D)": Problem({"x1": _uniform(-5, 10), "x2": _uniform(0, 15)}, branin, 0.397887),
    "Hartmann-6": Problem({f"x{i}": _uniform(0, 1) for i in range(6)}, hartmann6, -3.32237),
    "Rosenbrock (5-D)": Problem({f"x{i}": _uniform(-2, 2) for i in range(5)}, rosenbrock5, 0.0),
    "nested choice": Problem(NESTED_SPACE, nested, 0.0),
}


def make(name: str, space: dict[str, Any], seed: int) -> Tuner:
    """``name`` minimising, seeded when it takes a seed, small R for Hyperband."""
    name, extra = VARIANTS.get(name, (name, {}))
    args: dict[str, Any] = {"optimize_mode": "minimize", "seed": seed, **extra}
    if resolve(name).deterministic:
        args = {}
    if name == "Hyperband":
        args["R"] = HYPERBAND_R
    tuner = create_tuner(name, args)
    tuner.update_search_space(space)
    return tuner


def best_so_far(name: str, problem: Problem, seed: int, trials: int) -> list[float]:
    """Best true value after each trial (or trial-equivalent for Hyperband)."""
    tuner = make(name, problem.space, seed)
    if resolve(VARIANTS.get(name, (name, {}))[0]).budgeted:
        return _budgeted(tuner, problem, seed, trials)
    best, curve = math.inf, []
    for pid in range(trials):
        try:
            params = tuner.generate_parameters(pid)
        except NoMoreTrials:
            break
        value = problem.f(params)
        tuner.receive_trial_result(pid, params, value)
        tuner.trial_end(pid, True)
        best = min(best, value)
        curve.append(best)
    return curve + [best] * (trials - len(curve))


def _budgeted(tuner: Tuner, problem: Problem, seed: int, trials: int) -> list[float]:
    # Noise scale: the objective's spread over random configurations.
    rng = np.random.default_rng(seed + 1000)
    scale = statistics.pstdev(best_so_far("Random", problem, seed, 50)) or 1.0
    best, cost, curve, pid = math.inf, 0.0, [], 0
    while len(curve) < trials:
        try:
            params = tuner.generate_parameters(pid)
        except (NoMoreTrials, NotReady):
            break  # sequential: NotReady cannot happen with nothing running
        budget = params.pop(TRIAL_BUDGET)
        true = problem.f(params)
        noise = float(rng.normal()) * scale * (1 - budget / HYPERBAND_R)
        tuner.receive_trial_result(pid, {**params, TRIAL_BUDGET: budget}, true + noise)
        tuner.trial_end(pid, True)
        pid += 1
        if budget >= HYPERBAND_R:
            best = min(best, true)
        cost += budget / HYPERBAND_R
        while len(curve) < min(trials, math.floor(cost)):
            curve.append(best)
    return curve + [best] * (trials - len(curve))


def main() -> None:
    """Run every tuner on every problem and print the regret table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, 50 trials (< 3 min)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--tuners", nargs="+", help="only these tuners (default: all)")
    args = parser.parse_args()
    seeds, trials = (3, 50) if args.quick else (args.seeds, args.trials)
    checkpoints = [c for c in (20, 50, 100) if c <= trials]
    tuners = [t for t in (args.tuners or [*available(), *VARIANTS]) if t not in SKIPPED]
    start = time.perf_counter()
    rows: dict[tuple[str, str], list[float]] = {}
    finals: dict[tuple[str, str], list[float]] = {}
    for pname, problem in PROBLEMS.items():
        for tname in tuners:
            curves = [best_so_far(tname, problem, s, trials) for s in range(seeds)]
            finals[pname, tname] = [c[checkpoints[-1] - 1] - problem.minimum for c in curves]
            rows[pname, tname] = [
                statistics.median(c[k - 1] - problem.minimum for c in curves) for k in checkpoints
            ]
            print(f"{pname} / {tname}: done", file=sys.stderr, flush=True)
    print(f"\nMedian best regret over {seeds} seeds (lower is better)\n")
    print("| function | tuner | " + " | ".join(f"@{k}" for k in checkpoints) + " |")
    print("|---|---|" + "---|" * len(checkpoints))
    for (pname, tname), regrets in rows.items():
        print(f"| {pname} | {tname} | " + " | ".join(f"{r:.4g}" for r in regrets) + " |")
    for name, why in SKIPPED.items():
        print(f"\n{name} skipped: {why}.")
    last = checkpoints[-1]
    for name in [t for t in ("TPE", "TPE_nni") if t in tuners and "Random" in tuners]:
        for pname in PROBLEMS:
            tpe, rand = rows[pname, name][-1], rows[pname, "Random"][-1]
            verdict = "beats" if tpe < rand else "DOES NOT beat"
            # Paired by seed: how often TPE ends below Random (the median alone is noisy).
            pairs = zip(finals[pname, name], finals[pname, "Random"], strict=True)
            wins = sum(t < r for t, r in pairs)
            print(
                f"{name} {verdict} Random on {pname} at {last}: {tpe:.4g} vs {rand:.4g} "
                f"(median; {name} lower on {wins} of {seeds} seeds)"
            )
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()

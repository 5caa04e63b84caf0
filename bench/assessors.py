"""Early-stopping saving: a simulated experiment where half the configurations are bad.

Each configuration has a learning curve ``plateau * (1 - exp(-t / tau)) + noise`` over
``steps`` steps; good ones plateau at 0.80-0.95, bad ones at 0.10-0.30. Trials run
``concurrency`` at a time, one step per tick, and report every step. Without an assessor
every trial runs to the end; with one, a BAD verdict stops the trial (as the service
cancels it EARLY_STOPPED). Prints total steps, saving and best final result.

    uv run python bench/assessors.py [--seed 7] [--trials 40] [--steps 50]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kubesweep_tuner.assessors import Assessor, AssessResult, create_assessor

Curve = list[float]


def make_curves(seed: int, trials: int = 40, steps: int = 50) -> list[Curve]:
    """``trials`` curves, half good and half bad, in a random order."""
    rng = np.random.default_rng(seed)
    curves = []
    for i in range(trials):
        plateau = rng.uniform(0.80, 0.95) if i % 2 == 0 else rng.uniform(0.10, 0.30)
        tau = rng.uniform(2, 8)
        t = np.arange(1, steps + 1)
        y = plateau * (1 - np.exp(-t / tau)) + rng.normal(0, 0.01, steps)
        curves.append([float(v) for v in y])
    order = rng.permutation(trials)
    return [curves[i] for i in order]


@dataclass
class Outcome:
    """What one simulated experiment cost and found."""

    total_steps: int
    best_final: float
    stopped: int


def simulate(curves: list[Curve], assessor: Assessor | None, concurrency: int = 4) -> Outcome:
    """Run the curves ``concurrency`` at a time, stopping those the assessor judges BAD."""
    pending = list(enumerate(curves))
    running: dict[str, tuple[Curve, int]] = {}
    total, stopped, finals = 0, 0, []
    while pending or running:
        while pending and len(running) < concurrency:
            index, curve = pending.pop(0)
            running[f"trial{index}"] = (curve, 0)
        for trial_id, (curve, before) in list(running.items()):
            done = before + 1
            total += 1
            verdict = AssessResult.GOOD
            if assessor is not None:
                verdict = assessor.assess_trial(trial_id, curve[:done])
            if verdict is AssessResult.BAD:
                stopped += 1
                del running[trial_id]
                assessor.trial_end(trial_id, False)  # type: ignore[union-attr]
            elif done == len(curve):
                finals.append(curve[-1])
                del running[trial_id]
                if assessor is not None:
                    assessor.trial_end(trial_id, True)
            else:
                running[trial_id] = (curve, done)
    return Outcome(total, max(finals), stopped)


def compare(
    seed: int, factory: Callable[[], Assessor], trials: int = 40, steps: int = 50
) -> tuple[Outcome, Outcome]:
    """The same curves without and with an assessor."""
    curves = make_curves(seed, trials, steps)
    return simulate(curves, None), simulate(curves, factory())


def main() -> None:
    """Print the comparison for each built-in assessor."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    factories: dict[str, Callable[[], Assessor]] = {
        "Medianstop": lambda: create_assessor("Medianstop", {"start_step": 5}),
        "Curvefitting": lambda: create_assessor("Curvefitting", {"epoch_num": args.steps}),
        "ASHA": lambda: create_assessor("ASHA", {"grace_period": 3, "max_budget": args.steps}),
    }
    print(f"{'assessor':<13} {'steps':>6} {'saving':>7} {'stopped':>8} {'best final':>11}")
    for name, factory in factories.items():
        base, with_it = compare(args.seed, factory, args.trials, args.steps)
        saving = 1 - with_it.total_steps / base.total_steps
        print(f"{'(none)':<13} {base.total_steps:>6} {'':>7} {0:>8} {base.best_final:>11.4f}")
        print(
            f"{name:<13} {with_it.total_steps:>6} {saving:>7.1%} {with_it.stopped:>8}"
            f" {with_it.best_final:>11.4f}"
        )


if __name__ == "__main__":
    main()

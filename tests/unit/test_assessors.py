"""Each assessor's own decision rule on hand-made curves, and the Medianstop saving property."""

from __future__ import annotations

import math

from bench.assessors import compare

from kubesweep_tuner.assessors import AssessResult, create_assessor
from kubesweep_tuner.assessors.curvefitting import predict

GOOD, BAD = AssessResult.GOOD, AssessResult.BAD


def complete(assessor: object, trial_id: str, history: list[float]) -> None:
    for n in range(1, len(history) + 1):
        assessor.assess_trial(trial_id, history[:n])  # type: ignore[attr-defined]
    assessor.trial_end(trial_id, True)  # type: ignore[attr-defined]


def test_medianstop_compares_best_so_far_with_median_running_average() -> None:
    a = create_assessor("Medianstop", {"start_step": 2})
    complete(a, "r1", [0.2, 0.4, 0.6])  # running averages 0.2, 0.3, 0.4
    complete(a, "r2", [0.4, 0.6, 0.8])  # 0.4, 0.5, 0.6
    complete(a, "r3", [0.6, 0.8, 1.0])  # 0.6, 0.7, 0.8
    assert a.assess_trial("t", [0.0]) is GOOD  # before start_step
    assert a.assess_trial("t", [0.0, 0.49]) is BAD  # median at step 2 is 0.5
    assert a.assess_trial("t", [0.0, 0.5]) is GOOD
    assert a.assess_trial("u", [0.61, 0.0, 0.0]) is GOOD  # best so far 0.61 >= 0.6
    assert a.assess_trial("u", [0.61, 0.0, 0.0, 0.0]) is GOOD  # nobody reached step 4


def test_medianstop_even_count_uses_the_lenient_middle() -> None:
    up = create_assessor("Medianstop", {})
    down = create_assessor("Medianstop", {"optimize_mode": "minimize"})
    for assessor in (up, down):
        complete(assessor, "a", [1.0])
        complete(assessor, "b", [2.0])
    assert up.assess_trial("t", [1.0]) is GOOD  # lower middle (1.0) when maximizing
    assert up.assess_trial("t", [0.9]) is BAD
    assert down.assess_trial("t", [2.0]) is GOOD  # upper middle (2.0) when minimizing
    assert down.assess_trial("t", [2.1]) is BAD


def test_medianstop_ignores_unsuccessful_trials() -> None:
    a = create_assessor("Medianstop", {})
    a.assess_trial("x", [0.9])
    a.trial_end("x", False)
    assert a.assess_trial("t", [0.1]) is GOOD


def test_asha_keeps_the_top_third_at_each_rung() -> None:
    a = create_assessor("ASHA", {"min_budget": 1, "reduction_factor": 3, "max_budget": 9})
    assert a.rungs(100) == [1, 3]  # 9 is the final budget, not a rung
    assert a.assess_trial("t1", [0.5]) is GOOD  # first at the rung always continues
    assert a.assess_trial("t2", [0.4]) is BAD  # below the 2/3 quantile of {0.5}
    assert a.assess_trial("t3", [0.6]) is GOOD
    assert a.assess_trial("t4", [0.52]) is BAD  # 2/3 quantile of {0.4, 0.5, 0.6} is 0.533
    assert a.assess_trial("t5", [0.54]) is GOOD
    assert a.assess_trial("t3", [0.6, 0.7]) is GOOD  # between rungs
    assert a.assess_trial("t3", [0.6, 0.7, 0.8]) is GOOD  # first at rung 3
    assert a.assess_trial("t1", [0.5, 0.5, 0.5]) is BAD


def test_asha_minimize_and_aliases() -> None:
    a = create_assessor("ASHA", {"optimize_mode": "minimize", "grace_period": 2, "eta": 2})
    assert a.rungs(10) == [2, 4, 8]
    assert a.assess_trial("t1", [9.0]) is GOOD  # before the first rung
    assert a.assess_trial("t1", [9.0, 1.0]) is GOOD
    assert a.assess_trial("t2", [9.0, 2.0]) is BAD
    assert a.assess_trial("t3", [9.0, 0.5]) is GOOD


def test_curvefitting_extrapolates_known_curves() -> None:
    power = [0.9 - 0.5 * t**-0.7 for t in range(1, 11)]
    assert math.isclose(predict(power, 50) or 0, 0.9 - 0.5 * 50**-0.7, abs_tol=0.01)
    expo = [0.8 - 0.6 * math.exp(-0.3 * t) for t in range(1, 11)]
    assert math.isclose(predict(expo, 40) or 0, 0.8 - 0.6 * math.exp(-12), abs_tol=0.01)


def test_curvefitting_threshold_start_step_and_gap() -> None:
    a = create_assessor("Curvefitting", {"epoch_num": 20, "start_step": 4, "gap": 3})
    complete(a, "best", [0.5, 0.7, 0.8, 0.85, 0.9])
    low = [0.1, 0.15, 0.18, 0.2, 0.21, 0.22, 0.22]
    assert a.assess_trial("t", low[:3]) is GOOD  # before start_step
    assert a.assess_trial("t", low[:4]) is BAD  # predicted ~0.25 < 0.9 * 0.95
    assert a.assess_trial("t", low[:5]) is GOOD  # within the gap after a judgment
    assert a.assess_trial("t", low[:6]) is GOOD
    assert a.assess_trial("t", low[:7]) is BAD
    near = [0.5, 0.7, 0.8, 0.84]
    assert a.assess_trial("u", near) is GOOD  # heading for ~0.9


def test_medianstop_saves_steps_without_losing_the_best() -> None:
    # Seeded simulation (bench/assessors.py): half the configurations plateau low.
    def factory() -> object:
        return create_assessor("Medianstop", {"start_step": 5})

    without, with_it = compare(7, factory)  # type: ignore[arg-type]
    assert with_it.best_final == without.best_final
    assert 1 - with_it.total_steps / without.total_steps >= 0.30

"""The numpy TPE (`kubesweep_tuner.algorithms.tpe`): NNI 3.0's algorithm piece by piece
(``tpe_args: {nni_compatible: true}``), and the joint TPE that is the default."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pytest

from kubesweep_tuner.algorithms import create_tuner
from kubesweep_tuner.algorithms.nni_space import NniSpace
from kubesweep_tuner.algorithms.tpe.args import Liar, parse_tpe_args
from kubesweep_tuner.algorithms.tpe.estimator import (
    TpeArgs,
    adaptive_parzen_normal,
    gmm1,
    gmm1_lpdf,
    linear_forgetting_weights,
    random_parameter,
    split_history,
)
from kubesweep_tuner.algorithms.tpe.tuner import TpeTuner

QUADRATIC = {"x": {"_type": "uniform", "_value": [-10.0, 10.0]}}


def tpe(space: dict[str, Any], seed: int = 0, **tpe_args: Any) -> TpeTuner:
    """TPE in NNI mode unless ``nni_compatible=False`` is passed."""
    tpe_args.setdefault("nni_compatible", True)
    tuner = create_tuner("TPE", {"seed": seed, "tpe_args": tpe_args})
    assert isinstance(tuner, TpeTuner)
    tuner.update_search_space(space)
    return tuner


def test_forgetting_weights_ramp_only_beyond_linear_forgetting() -> None:
    assert np.array_equal(linear_forgetting_weights(24, 25), np.ones(24))
    assert np.array_equal(linear_forgetting_weights(25, 25), np.ones(25))
    w = linear_forgetting_weights(30, 25)
    assert len(w) == 30
    assert np.array_equal(w[5:], np.ones(25))
    assert w[0] == pytest.approx(1 / 30)
    assert np.all(np.diff(w) >= 0)  # non-decreasing: the first positions are forgotten most


def test_split_keeps_gamma_sqrt_n_best_capped_by_linear_forgetting() -> None:
    args = TpeArgs()
    losses = np.array([5.0, 1.0, 3.0, 1.0, 4.0] * 20)  # N = 100: ceil(0.25 * 10) = 3
    values = np.arange(100.0)
    below, above = split_history(values, losses, args)
    assert below.tolist() == [1.0, 3.0, 6.0]  # ties in history order (a stable sort, as NNI)
    assert len(above) == 97
    big = np.arange(10_000.0)
    below, _ = split_history(big, big, args)  # ceil(0.25 * 100) = 25 = linear_forgetting
    assert len(below) == 25
    below, _ = split_history(big, big, TpeArgs(linear_forgetting=10))
    assert len(below) == 10


def test_adaptive_parzen_estimator_shape() -> None:
    args = TpeArgs(prior_weight=0.5)
    weights, mus, sigmas = adaptive_parzen_normal(np.array([3.0, 0.0, 1.0]), 2.0, 10.0, args)
    assert mus.tolist() == [0.0, 1.0, 2.0, 3.0]  # observations plus the prior, sorted
    # neighbour distances (1, 1, -, 1), the prior keeps its sigma; all clipped to >= 10/5
    assert sigmas.tolist() == [2.0, 2.0, 10.0, 2.0]
    assert weights.tolist() == pytest.approx([1 / 3.5, 1 / 3.5, 0.5 / 3.5, 1 / 3.5])
    assert weights.sum() == pytest.approx(1.0)
    # Only the prior: one component with the prior's own sigma.
    weights, mus, sigmas = adaptive_parzen_normal(np.array([]), 0.0, 4.0, args)
    assert (weights.tolist(), mus.tolist(), sigmas.tolist()) == ([1.0], [0.0], [4.0])
    # Two components: the observation gets half the prior sigma.
    _, mus, sigmas = adaptive_parzen_normal(np.array([-1.0]), 0.0, 4.0, args)
    assert (mus.tolist(), sigmas.tolist()) == ([-1.0, 0.0], [2.0, 4.0])


def test_mixture_sampling_respects_clip_and_density_integrates_to_one() -> None:
    rng = np.random.default_rng(0)
    weights, mus, sigmas = adaptive_parzen_normal(np.array([0.1, 0.9]), 0.5, 1.0, TpeArgs())
    samples = gmm1(rng, weights, mus, sigmas, (0.0, 1.0), n_candidates=500)
    assert len(samples) == 500
    assert samples.min() >= 0.0
    assert samples.max() <= 1.0
    grid = np.linspace(0.0, 1.0, 2001)
    density = np.exp(gmm1_lpdf(grid, weights, mus, sigmas, (0.0, 1.0)))
    assert float(np.sum(density) * (grid[1] - grid[0])) == pytest.approx(1.0, abs=2e-3)


def test_startup_phase_draws_from_the_prior_whatever_the_results() -> None:
    space = {
        "x": {"_type": "uniform", "_value": [-1, 1]},
        "c": {"_type": "choice", "_value": ["a", "b", "c"]},
        "lr": {"_type": "loguniform", "_value": [1e-4, 1]},
    }
    tuner = tpe(space, seed=5)
    nni_space, rng = NniSpace(space), np.random.default_rng(5)
    for pid in range(20):
        params = tuner.generate_parameters(pid)
        tuner.receive_trial_result(pid, params, params["x"] ** 2)
        expected = {s.key: random_parameter(rng, s) for s in nni_space.specs}
        assert params["x"] == expected[("x",)]
        assert params["c"] == ["a", "b", "c"][int(expected[("c",)])]
        assert params["lr"] == pytest.approx(math.exp(expected[("lr",)]))
    # the 21st suggestion is TPE's: it no longer follows the prior stream
    nxt = {s.key: random_parameter(rng, s) for s in nni_space.specs}
    assert tuner.generate_parameters(20)["x"] != nxt[("x",)]


def test_liar_values() -> None:
    for kind in ("best", "worst", "mean"):
        assert Liar(kind).lie() == 0.0  # no result yet: NNI lies 0.0
    liars = {kind: Liar(kind) for kind in ("best", "worst", "mean")}
    for loss in (3.0, -1.0, 4.0):
        for liar in liars.values():
            liar.update(loss)
    assert [liars[k].lie() for k in ("best", "worst", "mean")] == [-1.0, 4.0, 2.0]
    assert parse_tpe_args({"constant_liar_type": "None"}).constant_liar_type is None
    assert parse_tpe_args({"constant_liar_type": "WORST"}).constant_liar_type == "worst"


def _history_size(tuner: TpeTuner) -> tuple[int, list[float]]:
    values, losses = tuner._history_with_lies()[("x",)]
    return len(values), losses.tolist()


def test_running_trials_are_lied_about_until_they_end() -> None:
    tuner = tpe(QUADRATIC, seed=1, constant_liar_type="worst")
    for pid in range(5):
        params = tuner.generate_parameters(pid)
        tuner.receive_trial_result(pid, params, float(pid))
    running = [tuner.generate_parameters(pid) for pid in (10, 11, 12)]
    size, losses = _history_size(tuner)
    assert size == 8
    assert losses[5:] == [4.0, 4.0, 4.0]  # the worst loss so far
    tuner.trial_end(10, False)  # failed: no lie, and no fake loss either
    assert _history_size(tuner) == (7, [0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0])
    tuner.receive_trial_result(11, running[1], -2.0)  # a real result replaces the lie
    tuner.trial_end(11, True)
    tuner.trial_end(11, True)
    assert _history_size(tuner) == (7, [0.0, 1.0, 2.0, 3.0, 4.0, -2.0, 4.0])
    tuner.trial_end(12, True)  # ended without a result: nothing recorded
    assert _history_size(tuner)[0] == 6


def test_no_liar_leaves_history_alone() -> None:
    tuner = tpe(QUADRATIC, seed=1, constant_liar_type=None)
    params = tuner.generate_parameters(0)
    tuner.receive_trial_result(0, params, 1.0)
    tuner.generate_parameters(1)
    assert _history_size(tuner) == (1, [1.0])


def test_liar_spreads_concurrent_suggestions() -> None:
    def spread(liar: str | None) -> float:
        tuner = tpe(QUADRATIC, seed=3, constant_liar_type=liar)
        for pid in range(30):
            params = tuner.generate_parameters(pid)
            tuner.receive_trial_result(pid, params, (params["x"] - 3) ** 2)
        batch = [tuner.generate_parameters(pid)["x"] for pid in range(100, 108)]
        return float(np.std(batch))

    assert spread("worst") > spread(None)


def test_matches_nni_3_0_golden_suggestions() -> None:
    # NNI 3.0's TpeTuner(seed=42) on this space and event sequence (concurrency 2)
    # proposed exactly these as trials 24-29 (bench/tpe_latency.py --nni checks more).
    space = {
        "x": {"_type": "uniform", "_value": [-10, 10]},
        "c": {"_type": "choice", "_value": ["a", "b", "c"]},
        "lr": {"_type": "qloguniform", "_value": [1e-3, 1, 1e-3]},
    }
    tuner = tpe(space, seed=42)
    out, running = [], []
    for pid in range(30):
        params = tuner.generate_parameters(pid)
        out.append(params)
        running.append((pid, params))
        if len(running) >= 2:
            done, p = running.pop(0)
            value = (p["x"] - 3) ** 2 + (p["c"] != "b") + abs(p["lr"] - 0.01) * 10
            tuner.receive_trial_result(done, p, value)
            tuner.trial_end(done, True)
    assert out[24:] == [
        {"x": -9.680602631453523, "c": "b", "lr": 0.01},
        {"x": -9.650509992346443, "c": "b", "lr": 0.012},
        {"x": -0.4859476754163098, "c": "b", "lr": 0.014},
        {"x": -0.36030411933614304, "c": "a", "lr": 0.001},
        {"x": 3.6856695399297204, "c": "a", "lr": 0.002},
        {"x": 3.4882244860234324, "c": "a", "lr": 0.003},
    ]


def test_converges_on_a_quadratic_better_than_random() -> None:
    def best(name: str, seed: int) -> float:
        tuner = create_tuner(name, {"seed": seed})
        tuner.update_search_space(QUADRATIC)
        found = math.inf
        for pid in range(50):
            params = tuner.generate_parameters(pid)
            value = (params["x"] - 3.0) ** 2
            tuner.receive_trial_result(pid, params, value)
            tuner.trial_end(pid, True)
            found = min(found, value)
        return found

    seeds = range(10)
    ours = [best("TPE", s) for s in seeds]
    rand = [best("Random", s) for s in seeds]
    assert statistics.median(ours) < statistics.median(rand) / 5
    assert sum(o < r for o, r in zip(ours, rand, strict=True)) >= 8


def test_results_of_foreign_and_zero_valued_parameters_are_used() -> None:
    space = {"w": {"_type": "qlognormal", "_value": [0.0, 1.0, 2.0]}}
    tuner = tpe(space, seed=0)
    tuner.receive_trial_result(900, {"w": 0.0}, 1.0)  # round(exp(x)/2)*2 == 0: log is -inf
    tuner.import_data([{"parameter": {"w": 4.0}, "value": 0.5}])
    values, losses = tuner._history_with_lies()[("w",)]
    assert values.tolist() == pytest.approx([math.log(1.0), math.log(4.0)])
    assert losses.tolist() == [1.0, 0.5]
    assert tuner._liar is not None
    assert tuner._liar.lie() == 0.5  # imports feed the liar too

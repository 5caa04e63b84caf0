"""TPE's default joint (multivariate) mode: `kubesweep_tuner.algorithms.tpe.joint`."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pytest

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms import create_tuner
from kubesweep_tuner.algorithms.nni_space import NniSpace
from kubesweep_tuner.algorithms.tpe.args import JOINT_DEFAULTS, parse_tpe_args
from kubesweep_tuner.algorithms.tpe.estimator import TpeArgs, random_parameter
from kubesweep_tuner.algorithms.tpe.joint import _Mixture, group_key, suggest_group
from kubesweep_tuner.algorithms.tpe.tuner import TpeTuner

NESTED = {
    "model": {
        "_type": "choice",
        "_value": [
            {"_name": "a", "x": {"_type": "uniform", "_value": [-5, 5]}},
            {"_name": "b", "lr": {"_type": "loguniform", "_value": [1e-4, 1]}},
            "none",
        ],
    },
    "w": {"_type": "normal", "_value": [0, 1]},
}


def joint(space: dict[str, Any], seed: int = 0, **tpe_args: Any) -> TpeTuner:
    tuner = create_tuner("TPE", {"seed": seed, "tpe_args": tpe_args})
    assert isinstance(tuner, TpeTuner)
    assert not tuner.args.nni_compatible
    tuner.update_search_space(space)
    return tuner


def test_defaults_are_joint_and_nni_mode_keeps_nni_defaults() -> None:
    default = parse_tpe_args(None)
    assert (default.nni_compatible, default.n_startup_jobs, default.gamma) == (False, 10, 0.1)
    assert default.constant_liar_type == "worst"
    assert parse_tpe_args({"constant_liar_type": None}).constant_liar_type is None
    assert parse_tpe_args({}) == default
    assert parse_tpe_args({"n_startup_jobs": 5}).gamma == JOINT_DEFAULTS["gamma"]
    assert parse_tpe_args({"nni_compatible": True}) == TpeArgs()  # NNI 3.0's defaults
    assert parse_tpe_args({"nni_compatible": False, "gamma": 0.3}).gamma == 0.3
    with pytest.raises(ConfigError, match=r"tpe_args\.nni_compatible.*true or false"):
        parse_tpe_args({"nni_compatible": "yes"})


def test_groups_follow_activation_conditions() -> None:
    specs = {spec.key: spec for spec in NniSpace(NESTED).specs}
    assert group_key(specs[("model",)]) == ()
    assert group_key(specs[("w",)]) == ()
    assert group_key(specs[("model", 0, "x")]) == ("model", 0)
    assert group_key(specs[("model", 1, "lr")]) == ("model", 1)


def test_startup_draws_come_from_the_prior() -> None:
    space = {
        "x": {"_type": "uniform", "_value": [-1, 1]},
        "c": {"_type": "choice", "_value": ["a", "b", "c"]},
    }
    tuner = joint(space, seed=5)
    nni_space, rng = NniSpace(space), np.random.default_rng(5)
    for pid in range(10):
        params = tuner.generate_parameters(pid)
        tuner.receive_trial_result(pid, params, params["x"] ** 2)
        expected = {s.key: random_parameter(rng, s) for s in nni_space.specs}
        assert params == {"x": expected[("x",)], "c": ["a", "b", "c"][int(expected[("c",)])]}
    nxt = {s.key: random_parameter(rng, s) for s in nni_space.specs}
    assert tuner.generate_parameters(10)["x"] != nxt[("x",)]


def test_mixture_density_is_normalised_inside_the_range() -> None:
    spec = NniSpace({"x": {"_type": "uniform", "_value": [0, 1]}}).specs[0]
    mix = _Mixture([spec], np.array([[0.02], [0.5], [0.97]]), np.ones(3), TpeArgs())
    samples = mix.sample(np.random.default_rng(0), 500)
    assert samples.min() >= 0.0
    assert samples.max() <= 1.0
    grid = np.linspace(0.0, 1.0, 4001).reshape(-1, 1)
    density = np.exp(mix.log_pdf(grid))
    assert float(np.sum(density) * (grid[1, 0] - grid[0, 0])) == pytest.approx(1.0, abs=2e-3)


def test_joint_kernels_keep_coordinates_together() -> None:
    # Good points lie on the diagonal x == y; candidates drawn from l(x, y) follow it,
    # which a product of two 1-D densities (NNI mode) cannot do.
    space = NniSpace(
        {"x": {"_type": "uniform", "_value": [0, 1]}, "y": {"_type": "uniform", "_value": [0, 1]}}
    )
    rng = np.random.default_rng(1)
    observed = rng.uniform(0, 1, (200, 2))
    losses = np.abs(observed[:, 0] - observed[:, 1])
    picks = np.array(
        [suggest_group(TpeArgs(**JOINT_DEFAULTS), rng, space.specs, observed, losses)
         for _ in range(40)]
    )  # fmt: skip
    assert float(np.median(np.abs(picks[:, 0] - picks[:, 1]))) < 0.05


def test_nested_groups_use_only_their_own_observations() -> None:
    tuner = joint(NESTED, seed=3)
    names = []
    for pid in range(60):
        params = tuner.generate_parameters(pid)
        model = params["model"]
        names.append(model if model == "none" else model["_name"])
        value = 1.0 if model == "none" else (model.get("x", 9.0) - 2.0) ** 2
        tuner.receive_trial_result(pid, params, value + 0.1 * params["w"] ** 2)
        tuner.trial_end(pid, True)
    history = tuner._group_history_with_lies()
    n_a = len(history[("model", 0)][1])
    n_b = len(history[("model", 1)][1])
    assert len(history[()][1]) == 60
    assert n_a + n_b <= 60
    assert history[("model", 0)][0].shape == (n_a, 1)
    # "a" (the only option that can reach 0) dominates once TPE has taken over
    assert names[30:].count("a") >= 15


def test_running_trials_join_their_groups_with_the_lie() -> None:
    tuner = joint(
        {"x": {"_type": "uniform", "_value": [-10, 10]}}, seed=1, constant_liar_type="worst"
    )
    for pid in range(5):
        params = tuner.generate_parameters(pid)
        tuner.receive_trial_result(pid, params, float(pid))
    tuner.generate_parameters(10)
    tuner.generate_parameters(11)
    _, losses = tuner._group_history_with_lies()[()]
    assert losses.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0]
    tuner.trial_end(10, False)
    assert len(tuner._group_history_with_lies()[()][1]) == 6


def test_beats_nni_mode_on_a_curved_valley() -> None:
    # Rosenbrock 2-D: the optimum lies in a curved valley (parameters interact).
    space = {
        "a": {"_type": "uniform", "_value": [-2, 2]},
        "b": {"_type": "uniform", "_value": [-2, 2]},
    }

    def best(nni: bool, seed: int) -> float:
        tuner = create_tuner("TPE", {"seed": seed, "tpe_args": {"nni_compatible": nni}})
        tuner.update_search_space(space)
        found = math.inf
        for pid in range(60):
            p = tuner.generate_parameters(pid)
            value = 100 * (p["b"] - p["a"] ** 2) ** 2 + (1 - p["a"]) ** 2
            tuner.receive_trial_result(pid, p, value)
            tuner.trial_end(pid, True)
            found = min(found, value)
        return found

    seeds = range(8)
    assert statistics.median(best(False, s) for s in seeds) < statistics.median(
        best(True, s) for s in seeds
    )


def test_default_liar_spreads_concurrent_suggestions() -> None:
    def spread(liar: str) -> float:
        tuner = joint(
            {"x": {"_type": "uniform", "_value": [-10, 10]}}, seed=3, constant_liar_type=liar
        )
        for pid in range(30):
            params = tuner.generate_parameters(pid)
            tuner.receive_trial_result(pid, params, (params["x"] - 3) ** 2)
        batch = [tuner.generate_parameters(pid)["x"] for pid in range(100, 108)]
        return float(np.std(batch))

    assert parse_tpe_args(None).constant_liar_type == "worst"
    assert spread("worst") > spread("best")

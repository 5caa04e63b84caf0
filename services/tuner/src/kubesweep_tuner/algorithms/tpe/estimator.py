"""The TPE algorithm for one parameter: NNI 3.0's ``tpe_tuner`` on numpy arrays.

TPE (Bergstra et al., 2011) splits the history of one parameter into the ``n_below``
best observations ("below", the good density l(x)) and the rest ("above", g(x)), samples
``n_ei_candidates`` candidates from l and returns the one maximising log l - log g,
which maximises expected improvement. Each parameter is modelled independently.

Every step follows the released NNI 3.0 (``nni/algorithms/hpo/tpe_tuner.py``) line for
line, and the random generator is called in the same order with the same arguments, so
a seeded run fed the same events proposes the same values as NNI (``bench/tpe_latency.py
--nni`` checks this). One NNI quirk is kept on purpose, because fixing it would change
which values are proposed: linear-forgetting weights are assigned by *loss rank* (the
order `split_history` returns), not by age as in hyperopt and the paper. It only matters
once a split holds more than ``linear_forgetting`` observations, i.e. for "above".

Only history handling differs: arrays instead of lists of records, so a suggestion
costs O(N log N) in numpy rather than Python-level sorting of record objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import erf  # type: ignore[import-untyped]

from kubesweep_tuner.algorithms.nni_space import ParamSpec

__all__ = [
    "TpeArgs",
    "adaptive_parzen_normal",
    "gmm1",
    "gmm1_lpdf",
    "linear_forgetting_weights",
    "random_parameter",
    "split_history",
    "suggest_parameter",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

_EPS = 1e-12
_EXP_UNDERFLOW = -750.0  # float64 exp(x) rounds to 0.0 for every x below this


@dataclass(frozen=True)
class TpeArgs:
    """The algorithm's own hyperparameters (NNI's ``TpeArguments``, same defaults)."""

    constant_liar_type: str | None = "best"
    n_startup_jobs: int = 20
    n_ei_candidates: int = 24
    linear_forgetting: int = 25
    prior_weight: float = 1.0
    gamma: float = 0.25
    #: True: NNI 3.0's per-parameter TPE, suggestion for suggestion. False: the joint
    #: (multivariate) TPE of `joint`, where ``gamma`` is a fraction of N, not of sqrt N.
    nni_compatible: bool = True


def linear_forgetting_weights(n: int, linear_forgetting: int) -> Floats:
    """Weights of ``n`` observations: the last ``linear_forgetting`` get 1, earlier ones ramp up.

    The ramp runs from ``1/n`` to 1 over the first ``n - linear_forgetting`` positions.
    """
    if n < linear_forgetting:
        return np.ones(n)
    ramp = np.linspace(1.0 / n, 1.0, n - linear_forgetting)
    return np.concatenate([ramp, np.ones(linear_forgetting)])


def split_history(
    values: npt.NDArray[np.generic], losses: Floats, args: TpeArgs
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.generic]]:
    """``(below, above)``: the ``min(ceil(gamma sqrt N), linear_forgetting)`` best values, the rest.

    Both are ordered by loss; ties keep history order (NNI sorts with Python's stable sort).
    """
    n_below = min(math.ceil(args.gamma * math.sqrt(len(losses))), args.linear_forgetting)
    order = np.argsort(losses, kind="stable")
    return values[order[:n_below]], values[order[n_below:]]


def adaptive_parzen_normal(
    observed: Floats, prior_mu: float, prior_sigma: float, args: TpeArgs
) -> tuple[Floats, Floats, Floats]:
    """The adaptive Parzen estimator (paper §4.2): ``(weights, mus, sigmas)`` sorted by mu.

    One Gaussian per observation plus one for the prior (``prior_mu``, ``prior_sigma``).
    Each observation's sigma is the larger distance to its neighbours, clipped to
    ``[prior_sigma / min(100, K + 1), prior_sigma]`` (hyperopt's "magic" bounds).
    """
    mus = np.append(observed, prior_mu)
    order = np.argsort(mus, kind="stable")
    mus = mus[order]
    prior_index = int(np.searchsorted(mus, prior_mu))
    if len(mus) == 1:
        sigmas = np.asarray([prior_sigma])
    elif len(mus) == 2:
        sigmas = np.asarray([prior_sigma * 0.5, prior_sigma * 0.5])
        sigmas[prior_index] = prior_sigma
    else:
        l_delta = mus[1:-1] - mus[:-2]
        r_delta = mus[2:] - mus[1:-1]
        sigmas = np.concatenate([[mus[1] - mus[0]], np.maximum(l_delta, r_delta)])
        sigmas = np.append(sigmas, mus[-1] - mus[-2])
        sigmas[prior_index] = prior_sigma
    n = min(100, len(mus) + 1)
    sigmas = np.clip(sigmas, prior_sigma / n, prior_sigma)
    # Observations in the order given (by loss, see module docstring), then the prior.
    weights = np.append(
        linear_forgetting_weights(len(observed), args.linear_forgetting), args.prior_weight
    )[order]
    return weights / np.sum(weights), mus, sigmas


def gmm1(
    rng: np.random.Generator,
    weights: Floats,
    mus: Floats,
    sigmas: Floats,
    clip: tuple[float, float] | None,
    *,
    n_candidates: int,
) -> Floats:
    """``n_candidates`` draws from the 1-D Gaussian mixture, rejecting draws outside ``clip``."""
    out: Floats = np.asarray([], dtype=np.float64)
    while len(out) < n_candidates:
        n = n_candidates - len(out)
        active = np.argmax(rng.multinomial(1, weights, n), axis=1)
        samples = rng.normal(mus[active], sigmas[active])
        if clip:
            samples = samples[(clip[0] <= samples) & (samples <= clip[1])]
        out = np.concatenate([out, samples])
    return out


def gmm1_lpdf(
    samples: Floats,
    weights: Floats,
    mus: Floats,
    sigmas: Floats,
    clip: tuple[float, float] | None,
) -> Floats:
    """Log density of the (truncated to ``clip``) Gaussian mixture at each sample."""
    if clip:
        scale = np.maximum(np.sqrt(2) * sigmas, _EPS)
        cdf_low = erf((clip[0] - mus) / scale) * 0.5 + 0.5
        cdf_high = erf((clip[1] - mus) / scale) * 0.5 + 0.5
        p_accept = np.sum(weights * (cdf_high - cdf_low))
    else:
        p_accept = 1.0
    # NNI's arithmetic, operation for operation (so results are bit-identical), but in
    # place: at N = 1000 the 24 x N matrix is the whole cost of a suggestion.
    lpdf = samples.reshape(-1, 1) - mus
    lpdf /= np.maximum(sigmas, _EPS)
    np.square(lpdf, out=lpdf)
    lpdf *= -0.5
    lpdf += np.log(weights / (np.sqrt(2 * np.pi) * sigmas) / p_accept)
    # log-sum-exp over the components, row by row
    m = lpdf.max(axis=1)
    lpdf -= m.reshape(-1, 1)
    # exp() of anything below -745.2 is exactly 0.0; most components are that far from a
    # sample, and skipping their exp() leaves the array, hence the sum, unchanged.
    dens = np.zeros_like(lpdf)
    np.exp(lpdf, out=dens, where=lpdf > _EXP_UNDERFLOW)
    result: Floats = np.log(dens.sum(axis=1)) + m
    return result


def _categorical(
    args: TpeArgs, rng: np.random.Generator, values: Ints, losses: Floats, size: int
) -> int:
    below, above = split_history(values, losses, args)

    def probabilities(observed: npt.NDArray[np.generic]) -> Floats:
        weights = linear_forgetting_weights(len(observed), args.linear_forgetting)
        counts = np.bincount(observed.astype(np.int64), weights, size) + args.prior_weight
        return counts / sum(counts)  # type: ignore[no-any-return]

    p_below = probabilities(below)
    samples = rng.choice(size, args.n_ei_candidates, p=p_below)
    score = np.log(p_below[samples]) - np.log(probabilities(above)[samples])
    return int(samples[np.argmax(score)])


def _numeric(
    args: TpeArgs, rng: np.random.Generator, spec: ParamSpec, values: Floats, losses: Floats
) -> float:
    if spec.normal:
        mu, sigma, clip = spec.mu, spec.sigma, None
    else:
        # TPE has no native uniform: it becomes normal(middle, width), truncated to the range.
        mu, sigma = (spec.low + spec.high) * 0.5, spec.high - spec.low
        clip = (spec.low, spec.high)
    below, above = split_history(values, losses, args)
    weights, mus, sigmas = adaptive_parzen_normal(below.astype(np.float64), mu, sigma, args)
    samples = gmm1(rng, weights, mus, sigmas, clip, n_candidates=args.n_ei_candidates)
    below_llik = gmm1_lpdf(samples, weights, mus, sigmas, clip)
    weights, mus, sigmas = adaptive_parzen_normal(above.astype(np.float64), mu, sigma, args)
    above_llik = gmm1_lpdf(samples, weights, mus, sigmas, clip)
    return float(samples[np.argmax(below_llik - above_llik)])


def random_parameter(rng: np.random.Generator, spec: ParamSpec) -> int | float:
    """A draw from the prior in base space (NNI's ``random_tuner.suggest_parameter``)."""
    if spec.categorical:
        return int(rng.integers(spec.size))
    if spec.normal:
        return float(rng.normal(spec.mu, spec.sigma))
    return float(rng.uniform(spec.low, spec.high))


def suggest_parameter(
    args: TpeArgs,
    rng: np.random.Generator,
    spec: ParamSpec,
    values: Floats,
    losses: Floats,
) -> int | float:
    """One parameter's next value in base space (option index, or log value for log types).

    Random while the parameter has fewer than ``n_startup_jobs`` observations (lies
    included, as in NNI) or none at all.
    """
    if len(values) < args.n_startup_jobs or len(values) == 0:
        return random_parameter(rng, spec)
    if spec.categorical:
        return _categorical(args, rng, values.astype(np.int64), losses, spec.size)
    return _numeric(args, rng, spec, values, losses)

"""Joint (multivariate) TPE over a group of parameters that always occur together.

NNI's TPE models every parameter on its own: l(x) and g(x) are products of 1-D
densities, so it cannot see that good values of x1 go with particular values of x2
(Branin's curved valley, Rosenbrock's banana). Here, as in Optuna's multivariate TPE
(Falkner et al., 2018, BOHB; Optuna ``TPESampler(multivariate=True, group=True)``),
each observation is one *product* kernel over all parameters of its group, so l and g
are mixtures of joint kernels and a candidate drawn from l keeps its coordinates
together. The estimator follows Optuna 5.0's ``_ParzenEstimator``:

* split: the ``min(ceil(gamma N), linear_forgetting)`` lowest losses are "below"
  (Optuna's default ``gamma(N) = min(ceil(0.1 N), 25)``), both halves in history order;
* weights by age: the last ``linear_forgetting`` observations weigh 1, older ones ramp
  down linearly (the paper's forgetting), plus the prior with ``prior_weight``;
* numeric kernels: a Gaussian per observation, sigma = the larger distance to its
  neighbours with the range ends as neighbours (the outermost observations use their
  inner neighbour), clipped to ``[width / min(100, K + 1), width]`` (the "magic clip");
  truncated to the range; the prior is ``normal(middle, width)``; unbounded ``normal``
  types use their own prior and no truncation;
* categorical kernels: ``prior_weight / K`` on every option plus 1 on the observed one.

A group is a set of parameters sharing one activation condition (the top level, or one
option of a nested ``choice``); groups are sampled in space order, each from the
observations where it was active, so a nested space is handled as Optuna's ``group``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr, ndtri  # type: ignore[import-untyped]

from kubesweep_tuner.algorithms.nni_space import Key, ParamSpec
from kubesweep_tuner.algorithms.tpe.estimator import Floats, TpeArgs, random_parameter

__all__ = ["group_key", "suggest_group"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def group_key(spec: ParamSpec) -> Key:
    """The activation condition of ``spec``: ``()`` at the top, else ``(*choice, option)``."""
    if len(spec.key) < 2 or isinstance(spec.key[-2], str):
        return ()
    return spec.key[:-1]


def _age_weights(n: int, window: int) -> Floats:
    if n < window:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - window), np.ones(window)])


class _Mixture:
    """Weighted product kernels (one per observation, plus the prior) over a group."""

    def __init__(
        self, specs: Sequence[ParamSpec], observed: Floats, weights: Floats, args: TpeArgs
    ) -> None:
        n = len(observed)
        w = np.append(weights, args.prior_weight) if n else np.ones(1)
        self.log_w = np.log(np.maximum(w / w.sum(), 1e-300))
        self.w = w / w.sum()
        self.dims: list[tuple[ParamSpec, Floats, Floats, Floats]] = []
        for i, spec in enumerate(specs):
            x = observed[:, i] if n else np.empty(0)
            if spec.categorical:
                table = np.full((n + 1, spec.size), args.prior_weight / (n + 1) if n else 1.0)
                table[np.arange(n), x.astype(np.int64)] += 1.0
                table[n] = 1.0  # the prior: uniform
                table /= table.sum(axis=1, keepdims=True)
                self.dims.append((spec, np.log(table), table, np.empty(0)))
            else:
                mus, sigmas, log_norm = _numeric_kernels(spec, x)
                self.dims.append((spec, mus, sigmas, log_norm))

    def sample(self, rng: np.random.Generator, size: int) -> Floats:
        comp = rng.choice(len(self.w), size, p=self.w)
        out = np.empty((size, len(self.dims)))
        for i, (spec, a, b, _) in enumerate(self.dims):
            if spec.categorical:
                cum = np.cumsum(b[comp], axis=1)
                u = rng.random(size)[:, None] * cum[:, -1:]
                out[:, i] = np.minimum((cum < u).sum(axis=1), spec.size - 1)
                continue
            mu, sigma = a[comp], b[comp]
            if spec.normal:
                out[:, i] = rng.normal(mu, sigma)
                continue
            lo, hi = ndtr((spec.low - mu) / sigma), ndtr((spec.high - mu) / sigma)
            u = lo + rng.random(size) * (hi - lo)
            out[:, i] = np.clip(
                mu + sigma * ndtri(np.clip(u, 1e-300, 1 - 1e-16)), spec.low, spec.high
            )
        return out

    def log_pdf(self, x: Floats) -> Floats:
        total = np.tile(self.log_w, (len(x), 1))
        for i, (spec, a, b, log_norm) in enumerate(self.dims):
            if spec.categorical:
                total += a[:, x[:, i].astype(np.int64)].T
            else:
                z = (x[:, i : i + 1] - a) / b
                total -= 0.5 * z * z
                total -= log_norm
        m = total.max(axis=1, keepdims=True)
        result: Floats = np.log(np.exp(total - m).sum(axis=1)) + m[:, 0]
        return result


def _numeric_kernels(spec: ParamSpec, x: Floats) -> tuple[Floats, Floats, Floats]:
    """``(mus, sigmas, log normaliser)`` of the observations' kernels and the prior's."""
    if spec.normal:
        low, high, mid, width = -math.inf, math.inf, spec.mu, spec.sigma
    else:
        low, high = spec.low, spec.high
        mid, width = 0.5 * (low + high), high - low
    n = len(x)
    if n:
        order = np.argsort(x)
        first, last = (x[order[0]], x[order[-1]]) if spec.normal else (low, high)
        padded = np.concatenate([[first], x[order], [last]])
        sorted_sigmas = np.maximum(padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1])
        if n >= 2:  # Optuna's consider_endpoints=False: the outermost use their inner gap
            sorted_sigmas[0] = padded[2] - padded[1]
            sorted_sigmas[-1] = padded[-2] - padded[-3]
        sigmas = np.empty(n)
        sigmas[order] = sorted_sigmas
        sigmas = np.clip(sigmas, width / min(100.0, n + 2.0), width)
    else:
        sigmas = np.empty(0)
    mus = np.append(x, mid)
    sigmas = np.append(sigmas, width)
    log_norm = np.log(sigmas) + _LOG_SQRT_2PI
    if not spec.normal:  # truncation: divide by the kernel's mass inside the range
        mass = ndtr((high - mus) / sigmas) - ndtr((low - mus) / sigmas)
        log_norm = log_norm + np.log(np.maximum(mass, 1e-300))
    return mus, sigmas, log_norm


def suggest_group(
    args: TpeArgs,
    rng: np.random.Generator,
    specs: Sequence[ParamSpec],
    observed: Floats,
    losses: Floats,
) -> list[int | float]:
    """Base-space values for ``specs`` (a group) from its ``observed`` rows and their losses.

    From the prior while the group has fewer than ``n_startup_jobs`` observations (lies
    included) or none at all.
    """
    n = len(losses)
    if n < args.n_startup_jobs or n == 0:
        return [random_parameter(rng, spec) for spec in specs]
    n_below = min(math.ceil(args.gamma * n), args.linear_forgetting)
    order = np.argsort(losses, kind="stable")
    below = np.sort(order[:n_below])  # history order: weights by age
    above = np.sort(order[n_below:])
    window = args.linear_forgetting
    l_mix = _Mixture(specs, observed[below], _age_weights(len(below), window), args)
    g_mix = _Mixture(specs, observed[above], _age_weights(len(above), window), args)
    candidates = l_mix.sample(rng, args.n_ei_candidates)
    score = l_mix.log_pdf(candidates) - g_mix.log_pdf(candidates)
    best = candidates[int(np.argmax(score))]
    return [int(v) if spec.categorical else float(v) for spec, v in zip(specs, best, strict=True)]

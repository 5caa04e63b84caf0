"""The tuner extension point: the abstract `Tuner` every search algorithm implements.

The shape follows NNI's ``nni.tuner.Tuner`` so NNI tuners port with little change:
the service calls `update_search_space` once (and again if the user edits the space),
`generate_parameters` whenever a trial slot is free, `receive_trial_result` when a
trial reports its final metric and `trial_end` when the trial finishes. The last two
may arrive in either order, more than once, or not at all (a failed trial reports
nothing); implementations must accept every interleaving.

Tuners are built by `kubesweep_tuner.algorithms.registry.create_tuner` from the
experiment's ``tuner.name`` and ``tuner.classArgs``; classArgs become keyword arguments.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from enum import StrEnum
from typing import Any, ClassVar

from kubesweep.config.extension import Objective
from kubesweep.errors import ConfigError, KubesweepError
from kubesweep.results import objective_values

__all__ = [
    "TRIAL_BUDGET",
    "NoMoreTrials",
    "NotReady",
    "OptimizeMode",
    "Tuner",
    "check_bool",
    "check_choice",
    "check_number",
    "class_arg_field",
    "metric_to_scalar",
]


class NoMoreTrials(KubesweepError):  # noqa: N818 - NNI's name for this signal
    """Raised by `Tuner.generate_parameters` when a finite search space is exhausted."""


class NotReady(KubesweepError):  # noqa: N818 - a signal, like NoMoreTrials
    """Raised by `Tuner.generate_parameters`: no suggestion right now, ask again later.

    Multi-fidelity tuners (Hyperband in serial mode) raise it while the next
    configurations depend on results of trials still running. The caller leaves the
    slot free and calls `generate_parameters` again after the next `receive_trial_result`
    or `trial_end`; the ``parameter_id`` it passed stays unused and may be passed again.
    It is never raised while no trial is running.
    """


TRIAL_BUDGET = "TRIAL_BUDGET"
"""Parameter under which budgeted tuners pass a trial its budget (epochs, steps...): NNI's name."""


class OptimizeMode(StrEnum):
    """Whether the trial metric should be made small or large."""

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


def class_arg_field(name: str) -> str:
    """The config path of a classArg, as error messages name it."""
    return f"tuner.classArgs.{name}"


def check_choice(name: str, value: object, allowed: Collection[str]) -> str:
    """Return ``value`` lower-cased if it is one of ``allowed``, else raise `ConfigError`."""
    if isinstance(value, str) and value.lower() in allowed:
        return value.lower()
    raise ConfigError(
        f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}",
        field=class_arg_field(name),
    )


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise `ConfigError`."""
    if isinstance(value, bool):
        return value
    raise ConfigError(f"must be true or false, got {value!r}", field=class_arg_field(name))


def check_number(
    name: str,
    value: object,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive: bool = False,
) -> float:
    """Return ``value`` as a number within the given bounds, else raise `ConfigError`.

    With ``exclusive`` the bounds themselves are not allowed.
    """
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and integer:
        ok = isinstance(value, int) or float(value).is_integer()  # type: ignore[arg-type]
    if not ok or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise ConfigError(f"must be {kind}, got {value!r}", field=class_arg_field(name))
    number = float(value)  # type: ignore[arg-type]
    too_low = minimum is not None and (number <= minimum if exclusive else number < minimum)
    too_high = maximum is not None and (number >= maximum if exclusive else number > maximum)
    if too_low or too_high:
        lo = "(" if exclusive else "["
        hi = ")" if exclusive else "]"
        bounds = f"{lo}{'-inf' if minimum is None else minimum}, "
        bounds += f"{'inf' if maximum is None else maximum}{hi}"
        raise ConfigError(f"must be {kind} in {bounds}, got {value!r}", field=class_arg_field(name))
    return number


def metric_to_scalar(value: float | dict[str, Any]) -> float:
    """The number a final metric stands for: itself, or the ``default`` key of a dict.

    Raises `ValueError` when the metric is neither (booleans are not numbers here).
    """
    if isinstance(value, dict):
        if "default" not in value:
            raise ValueError(f"metric dict has no 'default' key: {value!r}")
        value = value["default"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"metric must be a number or a dict with a numeric 'default': {value!r}")
    return float(value)


class Tuner(ABC):
    """Base class of every search algorithm (NNI's ``Tuner`` shape).

    Subclasses declare their classArgs as keyword-only ``__init__`` parameters and
    validate the values, raising `ConfigError` with ``field=class_arg_field(name)``.
    The registry rejects classArgs the constructor does not declare, so a tuner
    needs no ``**kwargs`` catch-all.

    The class attributes below describe what the tuner supports; the contract suite
    and the service read them, so a subclass must keep them truthful.
    """

    supported_types: ClassVar[frozenset[str] | None] = None
    """Search-space ``_type``s accepted; None means all ten NNI types."""
    supports_nested: ClassVar[bool] = True
    """Whether nested ``choice`` options (dicts with ``_name``) are accepted."""
    deterministic: ClassVar[bool] = False
    """True for fixed enumerations (GridSearch, Batch): no seed, same order every time."""
    budgeted: ClassVar[bool] = False
    """True when parameters carry `TRIAL_BUDGET` and the same configuration is re-proposed
    with a larger budget (Hyperband); such a tuner may raise `NotReady`."""
    multi_objective: ClassVar[bool] = False
    """True when the tuner optimises every objective of a multi-objective experiment
    (`metric_to_losses`); the others optimise the first one (`metric_to_loss`)."""
    objectives: tuple[Objective, ...] = ()
    """The experiment's named objectives (``kubesweep: {objectives: ...}``), if any."""

    def __init__(self, *, optimize_mode: str = "minimize", seed: int | None = None) -> None:
        """Validate and store the arguments every tuner shares.

        ``seed`` makes the suggestions reproducible given the same sequence of calls;
        ``None`` seeds from the operating system.
        """
        self.optimize_mode = OptimizeMode(
            check_choice("optimize_mode", optimize_mode, [m.value for m in OptimizeMode])
        )
        if seed is not None:
            seed = int(check_number("seed", seed, integer=True, minimum=0, maximum=2**32 - 1))
        self.seed = seed

    def set_objectives(self, objectives: Sequence[Objective]) -> None:
        """Adopt the experiment's named objectives; called before `update_search_space`.

        The first objective's direction becomes ``optimize_mode`` (the config loader has
        already refused a contradicting classArg).
        """
        self.objectives = tuple(objectives)
        if self.objectives:
            self.optimize_mode = OptimizeMode(self.objectives[0].direction)

    def metric_to_loss(self, value: float | dict[str, Any]) -> float:
        """The reported metric as a loss to minimise (negated when maximising): the
        ``default`` value, or the first objective's when objectives are named."""
        if self.objectives:
            found = objective_values(value, self.objectives[:1])
            if found is None:
                raise ValueError(f"metric has no numeric {self.objectives[0].name!r}: {value!r}")
            scalar = found[0]
        else:
            scalar = metric_to_scalar(value)
        return -scalar if self.optimize_mode is OptimizeMode.MAXIMIZE else scalar

    def metric_to_losses(self, value: float | dict[str, Any]) -> list[float]:
        """Every objective's loss (negated where maximised); without named objectives,
        the one-element `metric_to_loss`. `ValueError` when an objective is missing."""
        if not self.objectives:
            return [self.metric_to_loss(value)]
        found = objective_values(value, self.objectives)
        if found is None:
            names = ", ".join(o.name for o in self.objectives)
            raise ValueError(f"metric lacks a numeric value for one of {names}: {value!r}")
        return [
            -v if o.direction == OptimizeMode.MAXIMIZE.value else v
            for o, v in zip(self.objectives, found, strict=True)
        ]

    @abstractmethod
    def update_search_space(self, search_space: dict[str, Any]) -> None:
        """Adopt a search space: NNI's JSON format, already validated by the caller.

        ``{"lr": {"_type": "loguniform", "_value": [1e-4, 0.1]}, ...}``; nested
        ``choice`` options are dicts with ``_name`` and sub-parameters. Called before
        the first `generate_parameters`, and again if the user changes the space.
        """

    @abstractmethod
    def generate_parameters(self, parameter_id: int) -> dict[str, Any]:
        """Propose the parameters for a new trial, identified by ``parameter_id``.

        Returns NNI-format parameters of plain JSON types; a nested choice yields the
        chosen option's dict (``{"_name": "svm", "C": 1.3}``). Raises `NoMoreTrials`
        when a finite space has no unproposed configuration left.
        """

    @abstractmethod
    def receive_trial_result(
        self, parameter_id: int, parameters: dict[str, Any], value: float | dict[str, Any]
    ) -> None:
        """Record a trial's final metric (a number, or a dict with a numeric ``default``).

        Must accept a ``parameter_id`` this tuner never generated (customised or
        replayed trials), a result arriving after `trial_end`, and a repeated result
        for the same ``parameter_id`` (to be ignored).
        """

    def trial_end(self, parameter_id: int, success: bool) -> None:  # noqa: B027 - optional hook
        """Note that a trial finished; ``success`` is False for failed or killed trials.

        A trial may end before, after or without reporting a result. The default
        does nothing; tuners that track running trials override it.
        """

    def import_data(self, data: list[dict[str, Any]]) -> None:  # noqa: B027 - optional hook
        """Learn from earlier results: ``[{"parameter": {...}, "value": ...}, ...]``.

        Used to warm-start and on resume. The default ignores the data, as NNI's does.
        """

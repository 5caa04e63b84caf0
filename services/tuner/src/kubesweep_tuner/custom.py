"""Loading a custom tuner or assessor from the code archive carried in the experiment spec.

The archive (see `kubesweep.config.custom`) is unpacked once per content digest under
the temp folder and the class is imported from its file under a module name unique to
that digest, so two experiments with a ``my_tuner.py`` each get their own. The folder
is put on ``sys.path`` too, so the class file can import its neighbours (as NNI does).

Classes written for NNI (subclasses of ``nni.tuner.Tuner`` / ``nni.assessor.Assessor``)
work as they are: when the real ``nni`` package is not installed, a minimal ``nni``
with those base classes, ``AssessResult`` and ``NoMoreTrialError`` is provided. Any
object with NNI's methods is adapted to kubesweep's interface.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import hashlib
import importlib.util
import inspect
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubesweep.codearchive import Limits, unpack
from kubesweep.config import AlgorithmSpec
from kubesweep.config.custom import MAX_BYTES, MAX_FILES, module_file
from kubesweep.config.extension import Objective
from kubesweep.errors import ConfigError, KubesweepError
from kubesweep_tuner.algorithms.base import NoMoreTrials, NotReady, Tuner
from kubesweep_tuner.assessors.base import Assessor, AssessResult, Metric

__all__ = ["CustomAlgorithmError", "load_custom_assessor", "load_custom_tuner"]


def _code_root() -> Path:
    return Path(tempfile.gettempdir()) / "kubesweep-algorithms"


def _load_class(algo: AlgorithmSpec, role: str) -> type:
    if not algo.code_archive:
        raise ConfigError(
            f"the custom {role}'s code was not attached at submission; submit the "
            "experiment again with the kubesweep CLI",
            field=f"{role}.className",
        )
    data = base64.b64decode(algo.code_archive)
    digest = hashlib.sha256(data).hexdigest()
    folder = _code_root() / digest
    if not (folder / ".complete").exists():
        staging = Path(tempfile.mkdtemp(prefix=f"{digest[:12]}-", dir=_ensure(_code_root())))
        unpack(data, staging, Limits(max_files=MAX_FILES, max_bytes=MAX_BYTES))
        (staging / ".complete").touch()
        with contextlib.suppress(OSError):  # the same code may have got there first
            staging.rename(folder)
    file, class_name = module_file(algo)
    path = folder / file
    _install_nni_compat()
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    module_name = f"kubesweep_custom_{digest[:16]}_{Path(file).stem}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot import {file}", field=f"{role}.className")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise ConfigError(
                f"importing {file} failed: {type(exc).__name__}: {exc}", field=f"{role}.className"
            ) from exc
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls):
        raise ConfigError(f"{file} defines no class {class_name!r}", field=f"{role}.className")
    return cls


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _instantiate(cls: type, algo: AlgorithmSpec, role: str) -> Any:
    try:
        return cls(**algo.class_args)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"{cls.__name__}(**classArgs) failed: {type(exc).__name__}: {exc}",
            field=f"{role}.classArgs",
        ) from exc


class CustomAlgorithmError(KubesweepError):
    """User code in a custom tuner or assessor raised; the experiment cannot go on."""


def load_custom_tuner(algo: AlgorithmSpec) -> Tuner:
    """The custom tuner of ``algo`` behind kubesweep's `Tuner` interface."""
    instance = _instantiate(_load_class(algo, "tuner"), algo, "tuner")
    for method in ("update_search_space", "generate_parameters", "receive_trial_result"):
        if not callable(getattr(instance, method, None)):
            raise ConfigError(f"the custom tuner has no {method} method", field="tuner.className")
    return _GuardedTuner(instance)


def load_custom_assessor(algo: AlgorithmSpec) -> Assessor:
    """The custom assessor of ``algo`` behind kubesweep's `Assessor` interface."""
    instance = _instantiate(_load_class(algo, "assessor"), algo, "assessor")
    if not callable(getattr(instance, "assess_trial", None)):
        raise ConfigError(
            "the custom assessor has no assess_trial method", field="assessor.className"
        )
    return _GuardedAssessor(instance)


def _call(role: str, method: Callable[..., Any], *args: Any) -> Any:
    try:
        return method(*args)
    except (NoMoreTrials, NotReady):
        raise
    except Exception as exc:
        if type(exc).__name__ in ("NoMoreTrialError", "NoMoreTrials"):
            raise NoMoreTrials(str(exc)) from exc
        name = getattr(method, "__name__", "a method")
        raise CustomAlgorithmError(
            f"the custom {role}'s {name} raised {type(exc).__name__}: {exc}"
        ) from exc


class _GuardedTuner(Tuner):
    """A custom tuner (kubesweep `Tuner` or any object with NNI's methods) whose errors
    become `CustomAlgorithmError`, so they stop its experiment and no other."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def set_objectives(self, objectives: Sequence[Objective]) -> None:
        super().set_objectives(objectives)
        if isinstance(self.inner, Tuner):
            _call("tuner", self.inner.set_objectives, objectives)

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        _call("tuner", self.inner.update_search_space, search_space)

    def generate_parameters(self, parameter_id: int) -> dict[str, Any]:
        params = _call("tuner", self.inner.generate_parameters, parameter_id)
        if not isinstance(params, dict):
            raise CustomAlgorithmError(
                f"the custom tuner's generate_parameters returned {type(params).__name__}, "
                "not a dict of parameters"
            )
        return params

    def receive_trial_result(
        self, parameter_id: int, parameters: dict[str, Any], value: float | dict[str, Any]
    ) -> None:
        _call("tuner", self.inner.receive_trial_result, parameter_id, parameters, value)

    def trial_end(self, parameter_id: int, success: bool) -> None:
        hook = getattr(self.inner, "trial_end", None)
        if callable(hook):
            _call("tuner", hook, parameter_id, success)

    def import_data(self, data: list[dict[str, Any]]) -> None:
        hook = getattr(self.inner, "import_data", None)
        if callable(hook):
            _call("tuner", hook, data)


class _GuardedAssessor(Assessor):
    """A custom assessor (kubesweep `Assessor` or NNI-style object), errors guarded."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def assess_trial(self, trial_id: str, trial_history: Sequence[Metric]) -> AssessResult:
        verdict = _call("assessor", self.inner.assess_trial, trial_id, list(trial_history))
        # NNI's AssessResult.Bad is False; a plain bool or "bad" string means the same.
        bad = verdict is False or getattr(verdict, "value", verdict) in (False, "bad", "Bad")
        return AssessResult.BAD if bad else AssessResult.GOOD

    def trial_end(self, trial_id: str, success: bool) -> None:
        hook = getattr(self.inner, "trial_end", None)
        if callable(hook):
            _call("assessor", hook, trial_id, success)


class _NniAssessResult(enum.Enum):
    Good = True
    Bad = False


class _NoMoreTrialError(Exception):
    """NNI's signal that a tuner has nothing left to propose."""


class _NniTunerBase:
    """NNI's ``nni.tuner.Tuner`` surface for custom tuners written against it."""

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        raise NotImplementedError

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def receive_trial_result(
        self, parameter_id: int, parameters: dict[str, Any], value: Any, **kwargs: Any
    ) -> None:
        raise NotImplementedError

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        """Optional in NNI."""

    def import_data(self, data: list[dict[str, Any]]) -> None:
        """Optional in NNI."""


class _NniAssessorBase:
    """NNI's ``nni.assessor.Assessor`` surface."""

    def assess_trial(self, trial_job_id: str, trial_history: list[Any]) -> Any:
        raise NotImplementedError

    def trial_end(self, trial_job_id: str, success: bool) -> None:
        """Optional in NNI."""


def _install_nni_compat() -> None:
    """Provide ``nni.tuner`` / ``nni.assessor`` if the real NNI is not installed."""
    if "nni" in sys.modules or importlib.util.find_spec("nni") is not None:
        return
    nni = types.ModuleType("nni")
    tuner = types.ModuleType("nni.tuner")
    assessor = types.ModuleType("nni.assessor")
    tuner.Tuner = _NniTunerBase  # type: ignore[attr-defined]
    assessor.Assessor = _NniAssessorBase  # type: ignore[attr-defined]
    assessor.AssessResult = _NniAssessResult  # type: ignore[attr-defined]
    nni.tuner, nni.assessor = tuner, assessor  # type: ignore[attr-defined]
    nni.NoMoreTrialError = _NoMoreTrialError  # type: ignore[attr-defined]
    nni.__path__ = []  # a package, so `import nni.tuner` works
    sys.modules.update({"nni": nni, "nni.tuner": tuner, "nni.assessor": assessor})

"""Name → assessor class registry, resolving ``assessor.name`` / ``assessor.classArgs``.

Mirrors the tuner registry: built-ins register themselves with `register` and are
imported on first use; names match case-insensitively; unknown names and classArgs
raise `ConfigError` with a did-you-mean and the config field.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubesweep.errors import ConfigError
from kubesweep_tuner.assessors.base import Assessor

__all__ = ["available", "create_assessor", "register", "required_args", "resolve"]

_BUILTIN_MODULES = (
    "kubesweep_tuner.assessors.medianstop",
    "kubesweep_tuner.assessors.curvefitting",
    "kubesweep_tuner.assessors.asha",
)

A = TypeVar("A", bound=type[Assessor])

_canonical: dict[str, type[Assessor]] = {}
_by_key: dict[str, str] = {}
_loaded = False


def register(name: str, *aliases: str) -> Callable[[A], A]:
    """Class decorator: make an `Assessor` subclass available as ``name`` and ``aliases``."""

    def decorate(cls: A) -> A:
        for key in (name, *aliases):
            owner = _by_key.get(key.lower())
            if owner is not None and _canonical[owner] is not cls:
                raise ValueError(f"assessor name {key!r} is already registered to {owner}")
        _canonical[name] = cls
        for key in (name, *aliases):
            _by_key[key.lower()] = name
        return cls

    return decorate


def _load_builtins() -> None:
    global _loaded  # noqa: PLW0603 - one-time lazy import avoids an import cycle
    if not _loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def available() -> list[str]:
    """Canonical names of every registered assessor, sorted."""
    _load_builtins()
    return sorted(_canonical)


def resolve(name: str) -> type[Assessor]:
    """The assessor class registered as ``name`` or an alias; `ConfigError` if none is."""
    _load_builtins()
    canonical = _by_key.get(name.lower()) if isinstance(name, str) else None
    if canonical is None:
        close = difflib.get_close_matches(str(name).lower(), list(_by_key), n=1, cutoff=0.5)
        hint = f" Did you mean {_by_key[close[0]]!r}?" if close else ""
        raise ConfigError(
            f"unknown assessor {name!r}.{hint} Available: {', '.join(sorted(_canonical))}.",
            field="assessor.name",
        )
    return _canonical[canonical]


def _params(cls: type[Assessor]) -> list[inspect.Parameter]:
    params = inspect.signature(cls.__init__).parameters.values()
    return [p for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]


def required_args(name: str) -> list[str]:
    """The classArgs ``name`` cannot do without (Curvefitting's ``epoch_num``)."""
    return [p.name for p in _params(resolve(name)) if p.default is inspect.Parameter.empty]


def create_assessor(name: str, class_args: Mapping[str, Any] | None = None) -> Assessor:
    """Build the assessor ``name`` with ``class_args`` as keyword arguments.

    Raises `ConfigError` (field ``assessor.name`` or ``assessor.classArgs.<arg>``) for an
    unknown name, an undeclared or missing classArg, or a value the assessor rejects.
    """
    cls = resolve(name)
    args = dict(class_args or {})
    accepted = sorted(p.name for p in _params(cls))
    for key in args:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"{_canonical_name(cls)} does not accept this argument; {hint}"
                f"accepted: {', '.join(accepted) or 'none'}.",
                field=f"assessor.classArgs.{key}",
            )
    for key in required_args(name):
        if key not in args:
            raise ConfigError("is required", field=f"assessor.classArgs.{key}")
    try:
        return cls(**args)
    except ConfigError as exc:
        # The shared check_* helpers name tuner fields; this is an assessor's.
        field = (exc.field or "").replace("tuner.", "assessor.", 1) or None
        raise ConfigError(exc.reason, field=field) from None


def _canonical_name(cls: type[Assessor]) -> str:
    return next(n for n, c in _canonical.items() if c is cls)

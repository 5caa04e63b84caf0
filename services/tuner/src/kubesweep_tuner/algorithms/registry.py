"""Name → tuner class registry, resolving ``tuner.name`` / ``tuner.classArgs`` from a config.

Built-in tuners register themselves with the `register` decorator when their module
is imported; `create_tuner` and `available` import the built-ins on first use.
Names match case-insensitively, as users type ``tpe`` as often as ``TPE``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubesweep.errors import ConfigError
from kubesweep_tuner.algorithms.base import Tuner, class_arg_field

__all__ = ["accepted_args", "available", "create_tuner", "register", "resolve"]

_BUILTIN_MODULES = (
    "kubesweep_tuner.algorithms.hyperopt_tuners",
    "kubesweep_tuner.algorithms.tpe",
    "kubesweep_tuner.algorithms.grid_batch",
    "kubesweep_tuner.algorithms.evolution",
    "kubesweep_tuner.algorithms.hyperband",
    "kubesweep_tuner.algorithms.optuna_tuners",
)

T = TypeVar("T", bound=type[Tuner])

_canonical: dict[str, type[Tuner]] = {}
_by_key: dict[str, str] = {}  # lower-cased name or alias -> canonical name
_builtins_loaded = False


def register(name: str, *aliases: str) -> Callable[[T], T]:
    """Class decorator: make a `Tuner` subclass available as ``name`` and ``aliases``."""

    def decorate(cls: T) -> T:
        for key in (name, *aliases):
            owner = _by_key.get(key.lower())
            if owner is not None and _canonical[owner] is not cls:
                raise ValueError(f"tuner name {key!r} is already registered to {owner}")
        _canonical[name] = cls
        for key in (name, *aliases):
            _by_key[key.lower()] = name
        return cls

    return decorate


def _load_builtins() -> None:
    global _builtins_loaded  # noqa: PLW0603 - one-time lazy import avoids an import cycle
    if not _builtins_loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


def available() -> list[str]:
    """Canonical names of every registered tuner, sorted (aliases excluded)."""
    _load_builtins()
    return sorted(_canonical)


def resolve(name: str) -> type[Tuner]:
    """The tuner class registered as ``name`` or an alias; `ConfigError` if none is."""
    _load_builtins()
    canonical = _by_key.get(name.lower()) if isinstance(name, str) else None
    if canonical is None:
        close = difflib.get_close_matches(str(name).lower(), list(_by_key), n=1, cutoff=0.5)
        hint = f" Did you mean {_by_key[close[0]]!r}?" if close else ""
        raise ConfigError(
            f"unknown tuner {name!r}.{hint} Available: {', '.join(sorted(_canonical))}.",
            field="tuner.name",
        )
    return _canonical[canonical]


def accepted_args(name: str) -> set[str]:
    """The classArgs the tuner registered as ``name`` declares."""
    return _accepted_args(resolve(name))[0]


def _accepted_args(cls: type[Tuner]) -> tuple[set[str], bool]:
    params = inspect.signature(cls.__init__).parameters.values()
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - {
        "self"
    }
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def create_tuner(name: str, class_args: Mapping[str, Any] | None = None) -> Tuner:
    """Build the tuner ``name`` with ``class_args`` as keyword arguments.

    Raises `ConfigError` for an unknown name, an undeclared classArg (with a
    did-you-mean) or a value the tuner rejects.
    """
    cls = resolve(name)
    args = dict(class_args or {})
    accepted, open_ended = _accepted_args(cls)
    if not open_ended:
        for key in args:
            if key not in accepted:
                close = difflib.get_close_matches(key, sorted(accepted), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(
                    f"{_canonical_name(cls)} does not accept this argument; {hint}"
                    f"accepted: {', '.join(sorted(accepted)) or 'none'}.",
                    field=class_arg_field(key),
                )
    return cls(**args)


def _canonical_name(cls: type[Tuner]) -> str:
    return next(n for n, c in _canonical.items() if c is cls)

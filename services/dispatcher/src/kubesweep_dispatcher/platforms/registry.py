"""Registry of platforms by the name experiment configs use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubesweep.errors import ConfigError
from kubesweep_dispatcher.platforms.base import Platform

Factory = Callable[..., Platform]
_REGISTRY: dict[str, Factory] = {}


def register_platform(name: str) -> Callable[[Factory], Factory]:
    def decorate(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        return factory

    return decorate


def available_platforms() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def create_platform(name: str, **options: Any) -> Platform:
    _load_builtins()
    if name not in _REGISTRY:
        raise ConfigError(
            f"platform {name!r} is not available in this deployment "
            f"(available: {', '.join(sorted(_REGISTRY))})",
            field="trainingServicePlatform",
        )
    return _REGISTRY[name](**options)


def _load_builtins() -> None:
    from kubesweep_dispatcher.platforms import local  # noqa: F401  (registers itself)
    from kubesweep_dispatcher.platforms.kubeflow import platform  # noqa: F401

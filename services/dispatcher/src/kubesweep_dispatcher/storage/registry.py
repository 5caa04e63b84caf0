"""Registry of storage backends by the name experiment configs use."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from difflib import get_close_matches
from typing import Any

from kubesweep.errors import ConfigError
from kubesweep_dispatcher.storage.base import StorageBackend

Factory = Callable[..., StorageBackend]
_REGISTRY: dict[str, Factory] = {}
_BUILTIN_MODULES = {
    "mounted": "kubesweep_dispatcher.storage.mounted",
    "nfs": "kubesweep_dispatcher.storage.nfs",
    "azureStorage": "kubesweep_dispatcher.storage.azure",
}


def register_storage(name: str) -> Callable[[Factory], Factory]:
    def decorate(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        return factory

    return decorate


def create_storage(name: str, **options: Any) -> StorageBackend:
    _load_builtins()
    if name not in _REGISTRY:
        close = get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown storage {name!r}{hint} (available: {', '.join(sorted(_REGISTRY))})",
            field="storage",
        )
    return _REGISTRY[name](**options)


def load_storage(kind: str) -> None:
    """Import one backend's module (and its SDK) only: a supervisor needs one of them."""
    module = _BUILTIN_MODULES.get(kind)
    if module is None:
        _load_builtins()
    else:
        importlib.import_module(module)


def restore_storage(options: dict[str, Any]) -> StorageBackend:
    """The backend `StorageBackend.handoff` described, in this process."""
    kind = options["kind"]
    load_storage(kind)
    factory = _REGISTRY[kind]
    restore = getattr(factory, "from_handoff", None)
    if restore is None:
        raise ConfigError(f"the {kind} backend cannot be rebuilt from a handoff", field="storage")
    backend: StorageBackend = restore(options)
    return backend


def available_storages() -> list[str]:
    """The registered backends (importing the built-ins, whose SDKs take a while)."""
    _load_builtins()
    return sorted(_REGISTRY)


def _load_builtins() -> None:
    # Each module registers itself on import.
    from kubesweep_dispatcher.storage import azure, mounted, nfs  # noqa: F401

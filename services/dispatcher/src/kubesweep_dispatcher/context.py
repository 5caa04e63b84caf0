"""What every dispatcher entry point works with: settings, the store, and the storage
and platform for a given experiment."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubesweep.codearchive import Limits
from kubesweep.config import ExperimentSpec
from kubesweep.store import Store
from kubesweep_dispatcher.platforms import Platform, create_platform
from kubesweep_dispatcher.settings import DispatcherSettings
from kubesweep_dispatcher.storage import StorageBackend, create_storage


@dataclass
class DispatcherContext:
    settings: DispatcherSettings
    store: Store
    _platforms: dict[str, Platform] = field(default_factory=dict)
    _storages: dict[str, StorageBackend] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: DispatcherSettings) -> DispatcherContext:
        return cls(settings, Store.from_url(settings.redis_url))

    @property
    def limits(self) -> Limits:
        return Limits(
            max_files=self.settings.max_code_files,
            max_bytes=self.settings.max_code_mb * 1024 * 1024,
        )

    @property
    def signing_key(self) -> str:
        return self.settings.signing_key.get_secret_value()

    def storage_for(self, spec: ExperimentSpec) -> StorageBackend:
        # Local trials read the experiment's files in place from the mounted root.
        if "mounted" not in self._storages:
            self._storages["mounted"] = create_storage("mounted", root=self.settings.storage_root)
        return self._storages["mounted"]

    def platform_for(self, spec: ExperimentSpec) -> Platform:
        return self.platform(spec.platform)

    def platform(self, name: str) -> Platform:
        if name not in self._platforms:
            options = {"work_root": self.settings.work_root} if name == "local" else {}
            self._platforms[name] = create_platform(name, **options)
        return self._platforms[name]

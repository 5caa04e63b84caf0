"""What every dispatcher entry point works with: settings, the store, and the storage
and platform for a given experiment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.core.credentials import TokenCredential

from kubesweep.codearchive import Limits
from kubesweep.config import ExperimentSpec
from kubesweep.config.spec import AzureStorage, MountedStorage, NfsStorage
from kubesweep.store import Store
from kubesweep_dispatcher.platforms import Platform, create_platform
from kubesweep_dispatcher.settings import DispatcherSettings
from kubesweep_dispatcher.storage import StorageBackend, create_storage
from kubesweep_dispatcher.storage.retry import RetryPolicy


@dataclass
class DispatcherContext:
    settings: DispatcherSettings
    store: Store
    azure_credential: TokenCredential | None = None
    """Credential for Key Vault; None means ``DefaultAzureCredential`` (tests inject one)."""
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
        """The experiment's shared storage, one backend object per distinct configuration.

        A ``local`` experiment without a ``storage`` setting uses the mounted root; every
        other experiment uses its configured storage."""
        config = spec.training_service.storage
        if config is None:
            return self._storage("mounted", root=self.settings.storage_root)
        if isinstance(config, MountedStorage):
            return self._storage("mounted", root=Path(config.path))
        if isinstance(config, NfsStorage):
            return self._storage(
                "nfs",
                server=config.server,
                export=config.path,
                port=self.settings.nfs_port,
                version=self.settings.nfs_version,
                retry=RetryPolicy(
                    attempts=1 + self.settings.storage_retry_count,
                    backoff_s=self.settings.storage_retry_backoff_s,
                ),
            )
        return self._azure(config)

    def _azure(self, config: AzureStorage) -> StorageBackend:
        ca_bundle = self.settings.azure_ca_bundle
        return self._storage(
            "azureStorage",
            account_name=config.account_name,
            share=config.share,
            key_vault_name=config.key_vault_name,
            key_vault_key=config.key_vault_key,
            upload_retry_count=config.upload_retry_count,
            account_url=self.settings.azure_account_url,
            vault_url=self.settings.azure_vault_url,
            ca_bundle=str(ca_bundle) if ca_bundle else None,
            credential=self.azure_credential,
            backoff_s=self.settings.storage_retry_backoff_s,
        )

    def _storage(self, name: str, **options: Any) -> StorageBackend:
        key = name + repr(sorted((k, repr(v)) for k, v in options.items() if k != "credential"))
        if key not in self._storages:
            self._storages[key] = create_storage(name, **options)
        return self._storages[key]

    def platform_for(self, spec: ExperimentSpec) -> Platform:
        return self.platform(spec.platform)

    def platform(self, name: str) -> Platform:
        if name not in self._platforms:
            options: dict[str, object] = {}
            if name == "local":
                options = {
                    "work_root": self.settings.work_root,
                    # Mirrors and work folders of local trials on remote storage.
                    "state_root": self.settings.work_root
                    or self.settings.storage_root.parent / "local-trials",
                }
            elif name == "kubeflow":
                options = {
                    "kubeconfig": self.settings.kubeconfig,
                    "pvc_claim": self.settings.kubeflow_pvc,
                }
            self._platforms[name] = create_platform(name, **options)
        return self._platforms[name]

"""Dispatcher settings (environment variables prefixed ``KUBESWEEP_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from kubesweep.settings import SigningSettings


class DispatcherSettings(SigningSettings):
    """Settings of the dispatcher's three entry points: api, worker and watch."""

    api_host: str = Field(default="127.0.0.1", description="address the API listens on")
    api_port: int = Field(default=8080, description="API and web UI port (NNI's default)")
    api_threads: int = Field(default=8, description="API request threads")
    api_token: SecretStr | None = Field(
        default=None, description="bearer token; required when the API listens beyond loopback"
    )
    storage_root: Path = Field(
        default=Path("~/.kubesweep/storage").expanduser(),
        description="root of the `mounted` storage backend",
    )
    collector_url: str = Field(
        default="http://127.0.0.1:8081", description="collector URL as trials reach it"
    )
    max_code_files: int = Field(default=2000, description="code directory file limit (NNI's)")
    max_code_mb: int = Field(default=300, description="code directory size limit in MB (NNI's)")
    worker_concurrency: int = Field(default=8, description="Celery worker threads")
    tuner_allow_custom_algorithms: bool = Field(
        default=False,
        description="accept codeDir/className tuners and assessors (the tuner runs user code)",
    )
    work_root: Path | None = Field(
        default=None, description="where local trials copy their code; a temp dir when unset"
    )
    watch_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="watcher sweep interval (local keepers' liveness, pending timeouts)",
    )
    watch_resync_s: float = Field(
        default=300.0,
        gt=0,
        description="kubeflow: re-list the watched jobs and pods this often",
    )
    kubeconfig: str | None = Field(
        default=None, description="kubeconfig file; else KUBECONFIG, ~/.kube/config or in-cluster"
    )
    kubeflow_pvc: str | None = Field(
        default=None, description="PVC that trial pods mount when the storage is `mounted`"
    )
    nfs_port: int | None = Field(
        default=None, ge=1, le=65535, description="NFS server port for the `nfs` backend (2049)"
    )
    nfs_version: Literal["4.1", "4.0", "3"] = Field(
        default="4.1", description="NFS protocol version of the `nfs` backend"
    )
    storage_retry_count: int = Field(
        default=3, ge=0, description="retries of an NFS call after a transient failure"
    )
    storage_retry_backoff_s: float = Field(
        default=0.5, gt=0, description="first wait before a storage retry (then doubled)"
    )
    azure_account_url: str | None = Field(
        default=None,
        description="Azure Files endpoint, may contain {account}; "
        "default https://{account}.file.core.windows.net",
    )
    azure_vault_url: str | None = Field(
        default=None,
        description="Key Vault URL, may contain {vault}; default https://{vault}.vault.azure.net",
    )
    azure_ca_bundle: Path | None = Field(
        default=None, description="CA bundle to trust for Key Vault and Azure Files (tests)"
    )

"""Pytest fixtures for the storage fakes; test modules import the ones they use.

``nfs_server`` starts one ganesha per importing module (session-scoped fixtures imported
into two modules are two fixtures); registering this module in the root conftest with
``pytest_plugins`` would share one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubesweep_dispatcher.storage import StorageBackend, create_storage
from kubesweep_dispatcher.storage.retry import RetryPolicy

from .azure_files import DEV_KEY, FilesServer, start_files
from .ganesha import GaneshaServer, start_ganesha, unavailable_reason
from .keyvault import FakeCredential, KeyVaultServer, start_keyvault

VAULT = "kubesweep-vault"
SECRET = "storage-account-key"
SHARE = "experiments"


@pytest.fixture(scope="session")
def nfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GaneshaServer]:
    """A private NFSv4.1 ganesha; the tests that use it skip when it cannot run here."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = start_ganesha(tmp_path_factory.mktemp("ganesha"))
    yield server
    server.stop()


@pytest.fixture
def nfs_export(nfs_server: GaneshaServer) -> GaneshaServer:
    """The session's ganesha with an empty export (wiped on disk: the cache settings
    make out-of-band changes visible at once)."""
    for child in nfs_server.export_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return nfs_server


def nfs_backend(server: GaneshaServer, **options: Any) -> StorageBackend:
    options.setdefault("retry", RetryPolicy(attempts=3, backoff_s=0.01))
    return create_storage(
        "nfs", server=server.host, export=server.pseudo, port=server.port, **options
    )


@dataclass
class AzureEnv:
    """A fake Key Vault holding the key of a fake Files account."""

    vault: KeyVaultServer
    files: FilesServer
    credential: FakeCredential

    @property
    def share_dir(self) -> Path:
        return self.files.root / SHARE

    def backend(self, secret: str = SECRET, **options: Any) -> StorageBackend:
        options.setdefault("backoff_s", 0.01)
        options.setdefault("account_url", self.files.account_url)
        return create_storage(
            "azureStorage",
            account_name=self.files.account,
            share=SHARE,
            key_vault_name=VAULT,
            key_vault_key=secret,
            vault_url=self.vault.url,
            credential=self.credential,
            ca_bundle=str(self.vault.cert),
            **options,
        )


@pytest.fixture
def azure_env(tmp_path: Path) -> Iterator[AzureEnv]:
    """Fresh servers per test: the SDK caches vault challenges per host:port."""
    vault = start_keyvault(tmp_path / "vault", {SECRET: DEV_KEY})
    files = start_files(tmp_path / "files")
    yield AzureEnv(vault, files, FakeCredential())
    files.stop()
    vault.stop()

"""The ``azureStorage`` backend: an Azure File share whose account key lives in Key Vault.

The key is read once (lazily) and held in memory as a `SecretStr`; it is never logged,
never part of an error message, and only leaves the process through
`AzureFileStorage.kubernetes_secret_data` (for the pods' ``azureFile`` volume Secret).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.fileshare import FileProperties, ShareClient, ShareServiceClient
from pydantic import SecretStr

from kubesweep.errors import ConfigError, NotFoundError, PermanentError, TransientError
from kubesweep_dispatcher.storage.base import FileInfo, check_relpath
from kubesweep_dispatcher.storage.keyvault import get_secret
from kubesweep_dispatcher.storage.registry import register_storage
from kubesweep_dispatcher.storage.remote import RemoteTreeStorage, _parent
from kubesweep_dispatcher.storage.retry import RetryPolicy

T = TypeVar("T")
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@register_storage("azureStorage")
class AzureFileStorage(RemoteTreeStorage):
    """Files in ``share`` of storage account ``account_name``.

    ``upload_retry_count`` (NNI's ``uploadRetryCount``) is the number of retries of each
    request after a transient failure (5xx, 408, 429, connection errors); the SDK's own
    retries are off so that count is exact. ``account_url`` and ``vault_url`` may contain
    ``{account}`` / ``{vault}`` and default to the public cloud."""

    name = "azureStorage"

    def __init__(
        self,
        account_name: str,
        share: str,
        key_vault_name: str,
        key_vault_key: str,
        *,
        upload_retry_count: int = 3,
        account_url: str | None = None,
        vault_url: str | None = None,
        credential: TokenCredential | None = None,
        ca_bundle: str | None = None,
        backoff_s: float = 0.5,
        upload_workers: int = 4,
        timeout_s: float = 60.0,
        account_key: SecretStr | None = None,
    ) -> None:
        self.account_name = account_name
        self.share = share
        self.key_vault_name = key_vault_name
        self.key_vault_key = key_vault_key
        self.retry = RetryPolicy(attempts=1 + upload_retry_count, backoff_s=backoff_s)
        template = account_url or "https://{account}.file.core.windows.net"
        self.account_url = template.format(account=account_name)
        self.vault_url = vault_url.format(vault=key_vault_name) if vault_url else None
        self.upload_workers = upload_workers
        self._credential = credential
        self._ca_bundle = ca_bundle
        self._timeout_s = int(timeout_s)
        # Given by a handoff (a trial's supervisor); else read from Key Vault on first use.
        self._key: SecretStr | None = account_key
        self._share: ShareClient | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"AzureFileStorage(account={self.account_name!r}, share={self.share!r})"

    def describe(self) -> str:
        return f"Azure file share {self.share!r} of storage account {self.account_name!r}"

    @property
    def _vault_secret(self) -> str:
        return f"secret {self.key_vault_key!r} in Key Vault {self.key_vault_name!r}"

    # key and client ----------------------------------------------------------------------

    def _account_key(self) -> SecretStr:
        if self._key is None:
            key = self.retry.run(
                lambda: get_secret(
                    self.key_vault_name,
                    self.key_vault_key,
                    vault_url=self.vault_url,
                    credential=self._credential,
                    connection_verify=self._ca_bundle,
                ),
                what=f"reading the {self._vault_secret}",
            )
            try:
                base64.b64decode(key.get_secret_value(), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ConfigError(
                    f"the {self._vault_secret} is not a base64 storage account key; store "
                    f"key1 or key2 of account {self.account_name!r} there",
                    field="keyVault",
                ) from exc
            self._key = key
        return self._key

    def _client(self) -> ShareClient:
        with self._lock:
            if self._share is None:
                options: dict[str, Any] = {"retry_total": 0, "connection_timeout": 10}
                if self._ca_bundle:
                    options["connection_verify"] = self._ca_bundle
                key = self._account_key().get_secret_value()
                service = ShareServiceClient(
                    self.account_url,
                    credential={"account_name": self.account_name, "account_key": key},
                    **options,
                )
                share = service.get_share_client(self.share)
                self._translate("create share", "", lambda: _create_share(share))
                self._share = share
            return self._share

    def _forget_key(self) -> None:
        with self._lock:
            # The key may have been rotated in Key Vault: read it again next time.
            self._key = None
            self._share = None

    def _translate(self, what: str, rel: str, op: Callable[[], T]) -> T:
        where = f"{what} {rel!r} on {self.describe()}" if rel else f"{what} {self.describe()}"
        try:
            return op()
        except ResourceNotFoundError as exc:
            raise NotFoundError(f"no {rel!r} on {self.describe()}") from exc
        except ClientAuthenticationError as exc:
            self._forget_key()
            code = _code(exc) or "AuthenticationFailed"
            raise ConfigError(
                f"Azure rejected the storage key for account {self.account_name!r} "
                f"(HTTP {exc.status_code} {code}); check that the {self._vault_secret} holds "
                f"a current access key of that account",
                field="azureStorage",
            ) from exc
        except HttpResponseError as exc:
            code = _code(exc) or exc.reason or "error"
            if exc.status_code in _TRANSIENT_STATUS:
                raise TransientError(f"{where}: HTTP {exc.status_code} {code}") from exc
            raise PermanentError(f"{where} failed: HTTP {exc.status_code} {code}") from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TransientError(
                f"{where}: cannot reach {self.account_url} ({type(exc).__name__})"
            ) from exc

    def _call(self, what: str, rel: str, op: Callable[[ShareClient], T]) -> T:
        return self.retry.run(
            lambda: self._translate(what, rel, lambda: op(self._client())),
            what=f"{what} {rel!r}",
        )

    # primitives --------------------------------------------------------------------------

    def _scan(self, rel: str) -> list[FileInfo]:
        def op(share: ShareClient) -> list[FileInfo]:
            items = share.get_directory_client(rel).list_directories_and_files()
            return [
                FileInfo(item.name, False, item.size)
                if isinstance(item, FileProperties)
                else FileInfo(item.name, True, 0)
                for item in items
            ]

        return self._call("list", rel, op)

    def _mkdir(self, rel: str) -> None:
        def op(share: ShareClient) -> None:
            with contextlib.suppress(ResourceExistsError):
                share.get_directory_client(rel).create_directory()

        self._call("create folder", rel, op)

    def _put(self, rel: str, data: bytes | Path) -> None:
        def op(share: ShareClient) -> None:
            client = share.get_file_client(rel)
            if isinstance(data, bytes):
                client.upload_file(data, length=len(data), timeout=self._timeout_s)
                return
            with data.open("rb") as handle:
                size = data.stat().st_size
                client.upload_file(handle, length=size, timeout=self._timeout_s)

        self._call("upload", rel, op)

    def _rename(self, src: str, dst: str, *, is_dir: bool) -> None:
        def op(share: ShareClient) -> None:
            if is_dir:
                share.get_directory_client(src).rename_directory(dst)
            else:
                share.get_file_client(src).rename_file(dst, overwrite=True)

        self._call("rename", src, op)

    def _remove(self, rel: str, *, is_dir: bool) -> None:
        def op(share: ShareClient) -> None:
            if is_dir:
                share.get_directory_client(rel).delete_directory()
            else:
                share.get_file_client(rel).delete_file()

        with contextlib.suppress(NotFoundError):
            self._call("delete", rel, op)

    # StorageBackend ----------------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        rel = check_relpath(path)

        def op(share: ShareClient) -> bytes:
            data: bytes = share.get_file_client(rel).download_file().readall()
            return data

        return self._call("download", rel, op)

    def exists(self, path: str) -> bool:
        rel = check_relpath(path)
        name = rel.rsplit("/", 1)[-1]
        try:
            # One listing of the parent answers for files and folders alike.
            siblings = self._call(
                "list",
                _parent(rel),
                lambda share: [
                    item.name
                    for item in share.get_directory_client(_parent(rel)).list_directories_and_files(
                        name_starts_with=name
                    )
                ],
            )
        except NotFoundError:
            return False
        return name in siblings

    def url(self, path: str) -> str:
        rel = check_relpath(path)
        return f"https://{self.account_name}.file.core.windows.net/{self.share}/{rel}"

    def handoff(self) -> dict[str, Any]:
        """Includes the account key (the receiver must not read Key Vault again)."""
        return {
            "kind": self.name,
            "account_name": self.account_name,
            "share": self.share,
            "key_vault_name": self.key_vault_name,
            "key_vault_key": self.key_vault_key,
            "upload_retry_count": self.retry.attempts - 1,
            "account_url": self.account_url,
            "vault_url": self.vault_url,
            "ca_bundle": self._ca_bundle,
            "backoff_s": self.retry.backoff_s,
            "account_key": self._account_key().get_secret_value(),
        }

    @classmethod
    def from_handoff(cls, options: dict[str, Any]) -> AzureFileStorage:
        return cls(
            options["account_name"],
            options["share"],
            options["key_vault_name"],
            options["key_vault_key"],
            upload_retry_count=options["upload_retry_count"],
            account_url=options["account_url"],
            vault_url=options["vault_url"],
            ca_bundle=options["ca_bundle"],
            backoff_s=options["backoff_s"],
            account_key=SecretStr(options["account_key"]),
        )

    def kubernetes_secret_data(self) -> dict[str, str]:
        """The ``azureFile`` volume Secret's data (plain strings; the caller encodes them)."""
        return {
            "azurestorageaccountname": self.account_name,
            "azurestorageaccountkey": self._account_key().get_secret_value(),
        }


def _create_share(share: ShareClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        share.create_share()


def _code(exc: HttpResponseError) -> str | None:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code)) if code else None

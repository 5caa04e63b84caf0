"""Reading one secret from Azure Key Vault (replaces NNI's ``az keyvault secret show``)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.keyvault.secrets import SecretClient
from pydantic import SecretStr

from kubesweep.errors import ConfigError, TransientError


def default_vault_url(vault_name: str) -> str:
    return f"https://{vault_name}.vault.azure.net"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def get_secret(
    vault_name: str,
    secret_name: str,
    *,
    vault_url: str | None = None,
    credential: TokenCredential | None = None,
    connection_verify: str | None = None,
    **client_kwargs: Any,
) -> SecretStr:
    """The current version of ``secret_name``, as a `SecretStr` so it never prints.

    Without ``credential`` this uses ``DefaultAzureCredential`` (environment, workload or
    managed identity, Azure CLI login, ...). ``vault_url`` defaults to the public cloud's
    ``https://<vault>.vault.azure.net``."""
    url = vault_url or default_vault_url(vault_name)
    where = f"secret {secret_name!r} in Key Vault {vault_name!r} ({url})"
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    if connection_verify is not None:
        client_kwargs["connection_verify"] = connection_verify
    if _is_loopback(url):
        # A local vault cannot satisfy the check that the challenge's resource
        # (vault.azure.net) is a suffix of the vault's host name.
        client_kwargs.setdefault("verify_challenge_resource", False)
    client_kwargs.setdefault("retry_total", 2)
    try:
        with SecretClient(url, credential, **client_kwargs) as client:
            value = client.get_secret(secret_name).value
    except ResourceNotFoundError as exc:
        raise ConfigError(
            f"{where} does not exist; create it with the storage account key or fix "
            "keyVault.name / keyVault.vaultName",
            field="keyVault",
        ) from exc
    except ClientAuthenticationError as exc:
        raise ConfigError(
            f"could not authenticate to Key Vault {vault_name!r} to read {where}: "
            f"{type(exc).__name__}; give the dispatcher an Azure identity "
            "(AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, workload or managed "
            "identity, or `az login`)",
            field="keyVault",
        ) from exc
    except HttpResponseError as exc:
        if exc.status_code in (401, 403):
            raise ConfigError(
                f"Key Vault refused to read {where} (HTTP {exc.status_code}); grant the "
                "dispatcher's identity 'get' permission on secrets",
                field="keyVault",
            ) from exc
        if exc.status_code is not None and exc.status_code < 500 and exc.status_code != 429:
            raise ConfigError(
                f"Key Vault could not read {where} (HTTP {exc.status_code})", field="keyVault"
            ) from exc
        raise TransientError(f"Key Vault failed to read {where} (HTTP {exc.status_code})") from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TransientError(
            f"cannot reach Key Vault {vault_name!r} at {url} to read {where}: "
            f"{type(exc).__name__}; check keyVault.vaultName"
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"cannot read {where}: {exc}", field="keyVault") from exc
    if not value:
        raise ConfigError(f"{where} is empty", field="keyVault")
    return SecretStr(value)

"""The Secrets a Kubeflow trial needs, as plain manifests (pure functions, no API calls).

* the attempt's collector token — one immutable Secret per attempt, referenced by the
  keeper's ``secretKeyRef`` and owned by the job, so deleting the job collects it;
* the experiment's Azure File credentials (the keys the ``azureFile`` volume plugin reads);
* a role's registry credentials (NNI's ``privateRegistryAuthPath``) as ``dockerconfigjson``.

All carry kubesweep's labels, so experiment cleanup deletes them by selector.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from kubesweep_dispatcher.platforms.kubeflow import names
from kubesweep_dispatcher.platforms.kubeflow.keeper_command import TOKEN_KEY

__all__ = ["owner_reference", "registry_secret", "storage_secret", "token_secret"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(
    name: str,
    namespace: str,
    labels: dict[str, str],
    data: dict[str, str],
    *,
    secret_type: str = "Opaque",  # noqa: S107 - a Secret type, not a password
    immutable: bool = False,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": secret_type,
        "data": {key: _b64(value) for key, value in data.items()},
    }
    if immutable:
        secret["immutable"] = True
    return secret


def owner_reference(job: Mapping[str, Any]) -> dict[str, Any]:
    """An ownerReference to a created job (it needs the server-assigned ``uid``)."""
    meta = job["metadata"]
    return {
        "apiVersion": job["apiVersion"],
        "kind": job["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        # Not a controller reference: the operator does not manage this Secret.
        "blockOwnerDeletion": False,
    }


def token_secret(
    experiment_id: str,
    trial_id: str,
    attempt: int,
    token: str,
    *,
    namespace: str,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The attempt's token Secret. The token is deterministic (an HMAC of the attempt), so
    a redelivered launch recreates the same Secret and a 409 can simply be adopted."""
    return _secret(
        names.token_secret_name(experiment_id, trial_id, attempt),
        namespace,
        names.labels(experiment_id, trial_id, attempt),
        {TOKEN_KEY: token},
        immutable=True,
        owner=owner,
    )


def storage_secret(
    experiment_id: str, account_name: str, account_key: str, *, namespace: str
) -> dict[str, Any]:
    """The Azure File Secret ``azureFile.secretName`` points at."""
    return _secret(
        names.storage_secret_name(experiment_id),
        namespace,
        names.labels(experiment_id),
        {"azurestorageaccountname": account_name, "azurestorageaccountkey": account_key},
    )


def registry_secret(
    experiment_id: str, role: str, docker_config_json: str, *, namespace: str
) -> dict[str, Any]:
    """A role's image pull Secret, from the docker ``config.json`` at privateRegistryAuthPath."""
    return _secret(
        names.registry_secret_name(experiment_id, role),
        namespace,
        names.labels(experiment_id),
        {".dockerconfigjson": docker_config_json},
        secret_type="kubernetes.io/dockerconfigjson",  # noqa: S106 - a type name
    )

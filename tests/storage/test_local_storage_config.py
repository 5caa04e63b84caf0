"""Configs of local experiments on shared storage: NNI v1 ``localConfig`` takes kubeflowConfig's
storage keys, NNI v2 ``trainingService.storage`` is accepted for ``platform: local``."""

from __future__ import annotations

import pytest

from kubesweep.config import LocalTrainingService
from kubesweep.config.loader import parse_config
from kubesweep.config.spec import AzureStorage, NfsStorage
from kubesweep.errors import ConfigError

SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}}
V1 = """\
authorName: me
experimentName: e
trialConcurrency: 1
trainingServicePlatform: local
useAnnotation: false
tuner:
  builtinTunerName: Random
trial:
  command: python3 trial.py
  codeDir: .
"""
V2 = """\
trialCommand: python3 trial.py
trialConcurrency: 1
tuner: {name: Random}
trainingService:
  platform: local
"""


def _service(text: str) -> LocalTrainingService:
    service = parse_config(text, search_space=SPACE).training_service
    assert isinstance(service, LocalTrainingService)
    return service


def test_without_storage_local_trials_use_the_storage_root() -> None:
    assert _service(V1).storage is None
    assert _service(V2).storage is None


def test_v1_local_config_takes_the_kubeflow_storage_keys() -> None:
    nfs = _service(V1 + "localConfig:\n  storage: nfs\n  nfs: {server: 10.0.0.4, path: /x}\n")
    assert nfs.storage == NfsStorage(server="10.0.0.4", path="/x")
    azure = _service(
        V1 + "localConfig:\n  storage: azureStorage\n  uploadRetryCount: 5\n"
        "  keyVault: {vaultName: v, name: k}\n"
        "  azureStorage: {accountName: acct, azureShare: share}\n"
    )
    assert azure.storage == AzureStorage(
        account_name="acct",
        share="share",
        key_vault_name="v",
        key_vault_key="k",
        upload_retry_count=5,
    )


def test_v2_local_training_service_takes_a_storage_block() -> None:
    service = _service(V2 + "  storage: {storageType: nfs, server: nfs.lan, path: /e}\n")
    assert service.storage == NfsStorage(server="nfs.lan", path="/e")


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (V1 + "localConfig:\n  nfs: {server: s}\n", "localConfig.nfs.path", "is required"),
        (
            V1 + "localConfig:\n  keyVault: {vaultName: v, name: k}\n",
            "localConfig.storage",
            "please set localConfig.storage: azureStorage",
        ),
        (V2 + "  storage: {storageType: s3}\n", "trainingService.storage.storageType", "nfs"),
    ],
)
def test_bad_storage_names_the_field(text: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, search_space=SPACE)
    assert info.value.field == field
    assert words in str(info.value)

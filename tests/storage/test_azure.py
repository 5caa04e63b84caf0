"""The azureStorage backend against the local Key Vault and Azure Files fakes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from kubesweep.codearchive import Limits, pack
from kubesweep.errors import ConfigError, TransientError
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.staging import stage_experiment, write_parameters
from kubesweep_dispatcher.storage.azure import AzureFileStorage
from tests.fakes.azure_files import DEV_KEY
from tests.fakes.fixtures import SECRET, SHARE, VAULT, AzureEnv

OTHER_KEY = "b3RoZXIta2V5LW9mLXRoZS1zYW1lLWxlbmd0aC1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY="


def _code(tmp_path: Path, files: int = 3) -> bytes:
    root = tmp_path / "code"
    root.mkdir()
    for i in range(files):
        (root / f"mod{i}.py").write_text(f"X = {i}\n")
    (root / "trial.py").write_text("import nni\nnni.report_final_result(1)\n")
    archive, _ = pack(root)
    return archive


def test_staging_and_parameters_land_on_the_share(azure_env: AzureEnv, tmp_path: Path) -> None:
    storage = azure_env.backend()
    staged = stage_experiment(storage, "exp1", _code(tmp_path), Limits())
    write_parameters(storage, "exp1", "t1", 0, {"x": 0.5})
    storage.make_dirs(layout.output("exp1", "t1", "worker", 0))
    share = azure_env.share_dir
    assert (share / "kubesweep/exp1/code/trial.py").read_bytes().startswith(b"import nni")
    assert (share / "kubesweep/exp1/runtime").is_dir()
    manifest = json.loads((share / "kubesweep/exp1/code.manifest.json").read_text())
    assert manifest["sha256"] == staged.sha256
    params = json.loads((share / "kubesweep/exp1/trials/t1/parameter.cfg").read_text())
    assert params["parameters"] == {"x": 0.5}
    assert (share / "kubesweep/exp1/trials/t1/output/worker-0").is_dir()
    # No temporary folder or file is left behind.
    assert not [p for p in share.rglob(".*") if p.name != ".nniignore"]


def test_url_is_the_public_share_url(azure_env: AzureEnv) -> None:
    storage = azure_env.backend()
    assert storage.url("kubesweep/e/trials/t") == (
        f"https://{azure_env.files.account}.file.core.windows.net/{SHARE}/kubesweep/e/trials/t"
    )


def test_transient_503_during_upload_is_retried(azure_env: AzureEnv) -> None:
    storage = azure_env.backend(upload_retry_count=2)
    storage.write_bytes("warm/up", b"x")
    azure_env.files.inject("range", nth=1, status=503, times=2)
    storage.write_bytes("exp/params.cfg", b"{}")
    assert storage.read_bytes("exp/params.cfg") == b"{}"
    ranges = [status for op, path, status in azure_env.files.requests if op == "range"]
    assert ranges[-3:] == [503, 503, 201]


def test_retries_exhausted_is_a_transient_error(azure_env: AzureEnv) -> None:
    storage = azure_env.backend(upload_retry_count=1)
    storage.write_bytes("warm/up", b"x")
    azure_env.files.inject("range", nth=1, status=503, times=5)
    with pytest.raises(TransientError, match=r"after 2 attempt\(s\).*HTTP 503"):
        storage.write_bytes("exp/params.cfg", b"{}")
    assert not storage.exists("exp/params.cfg")


def test_wrong_key_is_refused_with_an_actionable_message(azure_env: AzureEnv) -> None:
    azure_env.vault.set_secret(SECRET, OTHER_KEY)
    with pytest.raises(ConfigError) as info:
        azure_env.backend().check()
    message = str(info.value)
    assert f"Azure rejected the storage key for account {azure_env.files.account!r}" in message
    assert "403 AuthenticationFailed" in message
    assert repr(SECRET) in message
    assert repr(VAULT) in message
    assert OTHER_KEY not in message
    assert not azure_env.share_dir.exists()


def test_key_is_read_again_after_it_was_rejected(azure_env: AzureEnv) -> None:
    azure_env.vault.set_secret(SECRET, OTHER_KEY)
    storage = azure_env.backend()
    with pytest.raises(ConfigError):
        storage.check()
    azure_env.vault.set_secret(SECRET, DEV_KEY)  # the operator fixes the vault
    storage.check()


def test_missing_vault_secret_names_vault_and_secret(azure_env: AzureEnv) -> None:
    with pytest.raises(ConfigError) as info:
        azure_env.backend(secret="no-such-secret").check()
    message = str(info.value)
    assert "'no-such-secret'" in message
    assert repr(VAULT) in message
    assert "does not exist" in message


def test_secret_that_is_not_a_key_is_refused(azure_env: AzureEnv) -> None:
    azure_env.vault.set_secret(SECRET, "not base64 at all!")
    with pytest.raises(ConfigError, match="not a base64 storage account key") as info:
        azure_env.backend().check()
    assert "not base64 at all" not in str(info.value)


def test_unreachable_account_endpoint_fails_the_check(azure_env: AzureEnv) -> None:
    storage = azure_env.backend(account_url="http://127.0.0.1:9/{account}", upload_retry_count=1)
    with pytest.raises(ConfigError, match=r"cannot reach http://127\.0\.0\.1:9/"):
        storage.check()


def test_key_is_only_in_the_kubernetes_secret_data(azure_env: AzureEnv) -> None:
    storage = azure_env.backend()
    assert isinstance(storage, AzureFileStorage)
    storage.check()
    assert storage.kubernetes_secret_data() == {
        "azurestorageaccountname": azure_env.files.account,
        "azurestorageaccountkey": DEV_KEY,
    }
    assert DEV_KEY not in repr(storage)
    assert DEV_KEY not in str(vars(storage))
    assert DEV_KEY not in storage.describe()


def test_the_key_never_reaches_the_logs(
    azure_env: AzureEnv, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("azure", "azure.core", "urllib3", "kubesweep_dispatcher"):
        caplog.set_level(logging.DEBUG, logger=name)
    storage = azure_env.backend()
    storage.check()
    stage_experiment(storage, "exp1", _code(tmp_path), Limits())
    azure_env.files.inject("range", nth=1)
    write_parameters(storage, "exp1", "t1", 0, {"x": 1})
    azure_env.vault.set_secret(SECRET, OTHER_KEY)
    with pytest.raises(ConfigError):
        azure_env.backend().check()
    assert "azure" in caplog.text  # the SDK's own loggers were captured
    for key in (DEV_KEY, OTHER_KEY):
        assert key not in caplog.text
        for record in caplog.records:
            assert key not in record.getMessage()
            assert key not in repr(record.args)

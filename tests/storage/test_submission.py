"""Storage preflight through the real dispatcher API: bad storage is refused at submission.

The API runs in-process on a real HTTP server (werkzeug) with the session's Redis; Azure
is the local Key Vault + Files fakes, NFS a port where nothing listens. The
``kubeflow`` platform is replaced by a stub that accepts everything, so no cluster is
needed: what is under test is the storage preflight.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from werkzeug.serving import make_server

from kubesweep.cli.embedded import free_port
from kubesweep.codearchive import pack
from kubesweep.records import TrialRecord
from kubesweep.store import Store
from kubesweep_dispatcher.api.app import create_app
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.platforms import registry as platforms
from kubesweep_dispatcher.platforms.base import LaunchRequest, Platform
from kubesweep_dispatcher.settings import DispatcherSettings
from tests.fakes.azure_files import DEV_KEY
from tests.fakes.fixtures import SECRET, SHARE, VAULT, AzureEnv

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kubeflow" / "config_azure.yml"
OTHER_KEY = "b3RoZXIta2V5LW9mLXRoZS1zYW1lLWxlbmd0aC1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY="
SPACE = '{"x": {"_type": "uniform", "_value": [0, 1]}}'


class _StubKubeflow(Platform):
    name = "kubeflow"

    def __init__(self, **_options: object) -> None:
        pass

    def launch(self, request: LaunchRequest) -> str:
        raise NotImplementedError

    def cancel(self, trial: TrialRecord) -> None:
        raise NotImplementedError

    def is_alive(self, trial: TrialRecord) -> bool | None:
        return None


@dataclass
class Api:
    url: str
    ctx: DispatcherContext
    azure: AzureEnv
    code_dir: Path

    def submit(self, config: str) -> requests.Response:
        archive, _ = pack(self.code_dir)
        return requests.post(
            f"{self.url}/api/v1/experiments",
            data={"config": config, "search_space": SPACE},
            files={"code": ("code.tar.gz", archive)},
            timeout=60,
        )


def _config(azure: AzureEnv, secret: str = SECRET, storage: str | None = None) -> str:
    text = EXAMPLE.read_text()
    text = text.replace("vaultName: kubesweep-vault", f"vaultName: {VAULT}")
    text = text.replace("name: storage-account-key", f"name: {secret}")
    text = text.replace("accountName: kubesweepstore", f"accountName: {azure.files.account}")
    text = text.replace("azureShare: experiments", f"azureShare: {SHARE}")
    if storage is not None:
        text = text[: text.index("  storage: azureStorage")] + storage
    return text


@pytest.fixture
def api(
    azure_env: AzureEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Api]:
    # Storage is under test here, not the cluster: a stub accepts every kubeflow launch.
    platforms.available_platforms()
    monkeypatch.setitem(platforms._REGISTRY, "kubeflow", _StubKubeflow)
    settings = DispatcherSettings(
        signing_key="k" * 32,
        redis_url=redis_url,
        storage_root=tmp_path / "mounted",
        max_code_files=20,
        nfs_port=free_port(),
        storage_retry_count=1,
        storage_retry_backoff_s=0.01,
        azure_account_url=azure_env.files.account_url.replace(azure_env.files.account, "{account}"),
        azure_vault_url=azure_env.vault.url,
        azure_ca_bundle=azure_env.vault.cert,
    )
    ctx = DispatcherContext.from_settings(settings)
    ctx.azure_credential = azure_env.credential
    server = make_server("127.0.0.1", 0, create_app(ctx), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    code = tmp_path / "code"
    code.mkdir()
    (code / "mnist.py").write_text("import nni\nnni.report_final_result(0.9)\n")
    yield Api(f"http://127.0.0.1:{server.server_port}", ctx, azure_env, code)
    server.shutdown()


def _nothing_recorded(api: Api) -> None:
    assert Store.from_url(api.ctx.settings.redis_url).list_experiment_ids() == []
    assert redis.Redis.from_url(api.ctx.settings.redis_url).keys("*") == []
    staged = api.azure.share_dir / "kubesweep"
    assert not staged.exists() or [p.name for p in staged.iterdir()] == []


def _redis_dump(url: str) -> str:
    client = redis.Redis.from_url(url)
    out: list[Any] = []
    for key in client.keys("*"):
        kind = client.type(key).decode()
        reader = {
            "hash": client.hgetall,
            "string": client.get,
            "set": client.smembers,
            "list": lambda k: client.lrange(k, 0, -1),
            "zset": lambda k: client.zrange(k, 0, -1),
            "stream": client.xrange,
        }[kind]
        out.append((key, reader(key)))
    return repr(out)


def test_good_azure_experiment_is_staged_on_the_share(api: Api) -> None:
    response = api.submit(_config(api.azure))
    assert response.status_code == 201, response.text
    exp_id = response.json()["experiment_id"]
    assert (api.azure.share_dir / "kubesweep" / exp_id / "code" / "mnist.py").is_file()
    assert not (api.ctx.settings.storage_root / "kubesweep" / exp_id).exists()


def test_wrong_storage_key_is_refused_at_submission(api: Api) -> None:
    api.azure.vault.set_secret(SECRET, OTHER_KEY)
    response = api.submit(_config(api.azure))
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "Azure rejected the storage key for account" in message
    assert "AuthenticationFailed" in message
    assert repr(SECRET) in message
    assert OTHER_KEY not in response.text
    _nothing_recorded(api)


def test_missing_vault_secret_is_refused_at_submission(api: Api) -> None:
    response = api.submit(_config(api.azure, secret="typo-in-secret"))
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "'typo-in-secret'" in message
    assert repr(VAULT) in message
    _nothing_recorded(api)


def test_unreachable_nfs_is_refused_at_submission(api: Api) -> None:
    nfs = "  storage: nfs\n  nfs:\n    server: 127.0.0.1\n    path: /exports/sweep\n"
    response = api.submit(_config(api.azure, storage=nfs))
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert f"127.0.0.1:{api.ctx.settings.nfs_port}" in message
    assert "/exports/sweep" in message
    _nothing_recorded(api)


def test_code_over_the_limits_is_refused_and_nothing_stays_on_the_share(api: Api) -> None:
    for i in range(25):  # max_code_files is 20
        (api.code_dir / f"extra{i}.py").write_text("x = 1\n")
    response = api.submit(_config(api.azure))
    assert response.status_code == 400, response.text
    assert "20" in response.json()["error"]["message"]
    _nothing_recorded(api)


def test_the_key_never_leaves_the_dispatcher(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("azure", "urllib3", "werkzeug", "kubesweep_dispatcher"):
        caplog.set_level(logging.DEBUG, logger=name)
    good = api.submit(_config(api.azure))
    assert good.status_code == 201
    exp_id = good.json()["experiment_id"]
    answers = [
        requests.get(f"{api.url}/api/v1/experiments", timeout=10).text,
        requests.get(f"{api.url}/api/v1/experiments/{exp_id}", timeout=10).text,
        requests.get(f"{api.url}/api/v1/experiments/{exp_id}/trials", timeout=10).text,
    ]
    api.azure.vault.set_secret(SECRET, OTHER_KEY)
    api.ctx._storages.clear()  # a fresh backend reads the (now wrong) key
    bad = api.submit(_config(api.azure))
    assert bad.status_code == 400
    dump = _redis_dump(api.ctx.settings.redis_url)
    assert exp_id in dump
    for key in (DEV_KEY, OTHER_KEY):
        assert key not in caplog.text
        assert key not in dump
        assert key not in good.text + bad.text + "".join(answers)

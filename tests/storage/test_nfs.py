"""The nfs backend against a loopback nfs-ganesha (skipped where ganesha cannot run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubesweep.cli.embedded import free_port
from kubesweep.codearchive import Limits, pack
from kubesweep.errors import ConfigError
from kubesweep_dispatcher.staging import stage_experiment, write_parameters
from kubesweep_dispatcher.storage import create_storage
from kubesweep_dispatcher.storage.retry import RetryPolicy
from tests.fakes.fixtures import nfs_backend
from tests.fakes.ganesha import GaneshaServer


def test_manager_and_pod_see_the_same_files(nfs_export: GaneshaServer, tmp_path: Path) -> None:
    storage = nfs_backend(nfs_export)
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "train.py").write_text("print('hi')\n")
    (code / "pkg" / "weights.bin").write_bytes(bytes(range(256)) * 10_000)
    archive, _ = pack(code)
    stage_experiment(storage, "exp1", archive, Limits())
    write_parameters(storage, "exp1", "t1", 3, {"lr": 0.1})
    disk = nfs_export.export_dir / "kubesweep" / "exp1"
    # What the manager wrote over NFS is on the export, as a pod mounting it sees it.
    assert (disk / "code" / "pkg" / "weights.bin").read_bytes() == bytes(range(256)) * 10_000
    assert json.loads((disk / "trials/t1/parameter.cfg").read_text())["parameter_id"] == 3
    # What the pod writes on the export, the manager reads back over NFS.
    out = disk / "trials/t1/output/worker-0"
    out.mkdir(parents=True)
    (out / "trial.log").write_bytes(b"epoch 1\n" * 200_000)
    assert storage.read_bytes("kubesweep/exp1/trials/t1/output/worker-0/trial.log") == (
        b"epoch 1\n" * 200_000
    )


def test_url_keeps_the_export_path() -> None:
    storage = create_storage("nfs", server="10.0.0.5", export="/srv/nfs/share/")
    assert (
        storage.url("kubesweep/e/trials/t") == "nfs://10.0.0.5/srv/nfs/share/kubesweep/e/trials/t"
    )


def test_unreachable_server_is_refused_naming_server_and_export() -> None:
    port = free_port()  # nothing listens there
    storage = create_storage(
        "nfs",
        server="127.0.0.1",
        export="/exports/kubesweep",
        port=port,
        retry=RetryPolicy(attempts=2, backoff_s=0.01),
    )
    with pytest.raises(ConfigError) as info:
        storage.check()
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "/exports/kubesweep" in message
    assert "cannot reach" in message


def test_unknown_export_is_a_config_error(nfs_server: GaneshaServer) -> None:
    storage = create_storage(
        "nfs", server="127.0.0.1", export="/no-such-export", port=nfs_server.port
    )
    with pytest.raises(ConfigError, match="does not export /no-such-export"):
        storage.check()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"export": "relative/path"}, "must be absolute"),
        ({"export": "/x", "version": "4.2"}, "not supported"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        create_storage("nfs", server="127.0.0.1", **options)


def test_reconnects_after_the_connection_broke(nfs_export: GaneshaServer) -> None:
    storage = nfs_backend(nfs_export)
    storage.write_bytes("a.txt", b"1")
    client = storage._client  # type: ignore[attr-defined]
    client.close()  # as if the server had dropped us
    storage.write_bytes("b.txt", b"2")
    assert storage.read_bytes("a.txt") == b"1"

"""The local platform's supervisor, without the rest of the stack.

A real `LocalPlatform` launches a trial of an experiment staged on NFS (ganesha); a small
HTTP server stands in for the collector and, the moment the final status arrives, looks at
the export: the trial's outputs must already be there, complete.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kubesweep.codearchive import Limits, pack
from kubesweep.config import load_config_file
from kubesweep.messaging import TrialStatus
from kubesweep.records import TrialRecord
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.platforms.base import LaunchRequest
from kubesweep_dispatcher.platforms.local import LocalPlatform, keeper_alive
from kubesweep_dispatcher.staging import stage_experiment
from tests.fakes.fixtures import nfs_backend
from tests.fakes.ganesha import GaneshaServer

TRIAL = """\
import os, sys, nni
params = nni.get_next_parameter()
print("lr", params["lr"], flush=True)
for i in range(3):
    print("line", i, file=sys.stderr, flush=True)
with open(os.path.join(os.environ["NNI_OUTPUT_DIR"], "model.bin"), "w") as model:
    model.write("weights")
print("boom", file=sys.stderr, flush=True)
sys.exit(3)
"""


@dataclass
class Collector:
    """Records each report with what the trial's output folder on the export held then."""

    httpd: ThreadingHTTPServer
    watch: Path
    reports: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def snapshot(self) -> dict[str, str]:
        if not self.watch.is_dir():
            return {}
        return {p.name: p.read_text() for p in self.watch.iterdir() if p.is_file()}


@pytest.fixture
def collector(nfs_export: GaneshaServer) -> Iterator[Collector]:
    out = nfs_export.export_dir / layout.output("exp1", "trial1")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            found.reports.append((self.path, body, found.snapshot()))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found = Collector(httpd, out)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield found
    httpd.shutdown()
    httpd.server_close()


def test_outputs_are_on_storage_before_the_end_is_reported(
    nfs_export: GaneshaServer, collector: Collector, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "trial.py").write_text(TRIAL)
    config = tmp_path / "config.yml"
    config.write_text(
        "searchSpace: {lr: {_type: choice, _value: [0.1]}}\n"
        "trialCommand: python3 trial.py\ntrialCodeDirectory: code\n"
        "trialConcurrency: 1\ntuner: {name: Random}\n"
        "trainingService:\n  platform: local\n"
        f"  storage: {{storageType: nfs, server: {nfs_export.host}, path: /export}}\n"
    )
    spec = load_config_file(config)
    storage = nfs_backend(nfs_export)
    stage_experiment(storage, "exp1", pack(code, Limits())[0], Limits())
    trial = TrialRecord(
        id="trial1",
        experiment_id="exp1",
        seq=0,
        status=TrialStatus.WAITING,
        parameter_id=0,
        parameters={"lr": 0.1},
        created=time.time(),
    )
    platform = LocalPlatform(state_root=tmp_path / "state")
    handle = platform.launch(LaunchRequest(spec, trial, storage, "token", collector.url))
    deadline = time.monotonic() + 60
    while keeper_alive(handle) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert keeper_alive(handle) is False

    statuses = [(body, seen) for path, body, seen in collector.reports if path.endswith("/status")]
    assert [body["status"] for body, _ in statuses] == ["RUNNING", "FAILED"]
    final, seen = statuses[-1]
    assert final["exit_code"] == 3
    assert final["message"] == "boom"
    # When FAILED was reported, every output was already on the export, complete.
    assert seen["stdout"] == "lr 0.1\n"
    assert seen["stderr"] == "line 0\nline 1\nline 2\nboom\n"
    assert "command exited with code 3" in seen["trial.log"]
    assert "exit code 3;" in seen["trial.log"]
    assert seen["model.bin"] == "weights"  # what the trial wrote to NNI_OUTPUT_DIR
    assert {"keeper.lock", "metrics.jsonl"} <= set(seen)
    # Uploaded, so the local work folder is gone.
    assert not (tmp_path / "state" / "trials" / "exp1").exists()
    platform.cleanup_experiment("exp1", spec)
    assert list((tmp_path / "state" / "cache").iterdir()) == []

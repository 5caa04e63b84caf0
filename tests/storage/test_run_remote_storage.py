"""`kubesweep run` with local trials on remote storage, end to end.

The real CLI runs the embedded stack as processes: examples/storage/nfs.yml against a
private nfs-ganesha, examples/storage/azure.yml against the Azure Files and Key Vault fakes
(the dispatcher's ``DefaultAzureCredential`` gets its token from a local managed-identity
endpoint). Every trial's stdout and trial.log must be readable through the API and
``kubesweep trial log`` after the experiment is DONE, and be the bytes on the export/share.
A worker SIGKILLed mid-trial and a cancelled trial still leave their outputs on storage.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep_dispatcher.platforms.local import keeper_alive
from tests.fakes.azure_files import DEV_KEY, start_files
from tests.fakes.fixtures import SECRET, VAULT
from tests.fakes.ganesha import GaneshaServer
from tests.fakes.keyvault import TOKEN, start_keyvault

from .identity import start_identity

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TRIALS = 2
STDOUT_LINE = re.compile(r"^x=-?\d\.\d{3} y=-?\d\.\d{3} optimizer=(adam|sgd) -> \d\.\d{4}$", re.M)


def _config(name: str, folder: Path, replace: dict[str, str]) -> Path:
    text = (EXAMPLES / "storage" / name).read_text()
    replace = {
        "../quickstart": str(EXAMPLES / "quickstart"),
        "maxTrialNumber: 6": f"maxTrialNumber: {TRIALS}",
        **replace,
    }
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = folder / name
    path.write_text(text)
    return path


def _clean_env(**extra: str) -> dict[str, str]:
    drop = ("KUBESWEEP_", "AZURE_", "IDENTITY_", "MSI_", "IMDS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(COLUMNS="200", **extra)
    return env


@dataclass
class KeptRun:
    """A `kubesweep run --keep` that has finished its experiment and still serves it."""

    process: subprocess.Popen[str]
    env: dict[str, str]
    workdir: Path
    lines: list[str]
    exp_id: str = ""
    client: ApiClient = field(default_factory=lambda: ApiClient(""))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def cli(self, *args: str) -> str:
        """Another `kubesweep` command, finding the run through ``KUBESWEEP_HOME``."""
        done = subprocess.run(
            [sys.executable, "-m", "kubesweep.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def redis_dump(self) -> str:
        """Every key and value of the stack's Redis."""
        redis_proc = next(
            p for p in psutil.Process(self.process.pid).children() if "redis" in p.name()
        )
        port = re.search(r":(\d+)", " ".join(redis_proc.cmdline()))  # "redis-server ip:port"
        assert port, redis_proc.cmdline()
        client = redis.Redis(port=int(port.group(1)))
        out: list[Any] = []
        for key in client.keys("*"):
            kind = client.type(key).decode()
            read: Callable[[bytes], Any] = {
                "hash": client.hgetall,
                "string": client.get,
                "set": client.smembers,
                "list": lambda k: client.lrange(k, 0, -1),
                "zset": lambda k: client.zrange(k, 0, -1),
                "stream": client.xrange,
            }[kind]
            out.append((key, read(key)))
        return repr(out)


@contextmanager
def kept_run(config: Path, tmp_path: Path, env: dict[str, str]) -> Iterator[KeptRun]:
    env = dict(env, KUBESWEEP_HOME=str(tmp_path / "home"))
    workdir = tmp_path / "stack"
    argv = ["run", "--keep", "--workdir", str(workdir), str(config)]
    process = subprocess.Popen(
        [sys.executable, "-m", "kubesweep.cli.main", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run = KeptRun(process, env, workdir, [])
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: run.lines.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 150
        while "still serving" not in run.output:
            assert process.poll() is None, f"kubesweep run exited early:\n{run.output}"
            assert time.monotonic() < deadline, f"no DONE in time:\n{run.output}"
            time.sleep(0.2)
        found = re.search(r"experiment (\S+) submitted", run.output)
        assert found, run.output
        run.exp_id = found.group(1)
        saved = json.loads((tmp_path / "home" / "current.json").read_text())
        run.client = ApiClient(saved["url"], saved["token"])
        yield run
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join(5)
    assert process.returncode == 0, run.output


def _check_every_trial(run: KeptRun, on_storage: Path) -> list[str]:
    """DONE, all SUCCEEDED, and each trial's stdout and trial.log readable through the API
    and the CLI, equal to the files on storage. Returns the API answers."""
    answers: list[str] = []
    exp = run.client.experiment(run.exp_id)
    assert exp["status"] == "DONE", exp
    trials = run.client.trials(run.exp_id)
    assert [t["status"] for t in trials] == ["SUCCEEDED"] * TRIALS, trials
    for trial in trials:
        tid = trial["id"]
        stdout = run.client.read_file(run.exp_id, tid, "output/local-0/stdout")
        trial_log = run.client.read_file(run.exp_id, tid, "output/local-0/trial.log")
        listing = run.client.files(run.exp_id, tid, "output/local-0")
        assert STDOUT_LINE.search(stdout), stdout
        assert "exit code 0;" in trial_log, trial_log
        assert {"stdout", "stderr", "trial.log", "metrics.jsonl"} <= {
            e["name"] for e in listing["entries"]
        }
        stored = on_storage / "kubesweep" / run.exp_id / "trials" / tid / "output" / "local-0"
        assert (stored / "stdout").read_text() == stdout
        assert (stored / "trial.log").read_text() == trial_log
        assert run.cli("trial", "log", run.exp_id, tid) == stdout
        assert run.cli("trial", "log", run.exp_id, tid, "--trial-log") == trial_log
        answers += [json.dumps(trial), stdout, trial_log, json.dumps(listing)]
    # Every supervisor uploaded everything and removed its local work folder.
    leftovers = [p for p in (run.workdir / "local-trials" / "trials").rglob("*") if p.is_file()]
    assert leftovers == []
    return answers


def test_run_on_nfs_reaches_done_with_every_log_readable(
    nfs_export: GaneshaServer, tmp_path: Path
) -> None:
    config = _config(
        "nfs.yml", tmp_path, {"10.0.0.4": nfs_export.host, "/exports/kubesweep": "/export"}
    )
    env = _clean_env(KUBESWEEP_NFS_PORT=str(nfs_export.port))
    with kept_run(config, tmp_path, env) as run:
        _check_every_trial(run, nfs_export.export_dir)
        url = run.client.trials(run.exp_id)[0]["storage_url"]
        assert url.startswith(f"nfs://{nfs_export.host}/export/kubesweep/{run.exp_id}/trials/")


def test_run_on_azure_reaches_done_and_the_key_never_leaves(tmp_path: Path) -> None:
    vault = start_keyvault(tmp_path / "vault", {SECRET: DEV_KEY})
    files = start_files(tmp_path / "files")
    identity = start_identity(TOKEN)
    try:
        config = _config("azure.yml", tmp_path, {"kubesweepstore": files.account})
        assert f"keyVaultName: {VAULT}" in config.read_text()
        env = _clean_env(
            KUBESWEEP_AZURE_ACCOUNT_URL=files.account_url.replace(files.account, "{account}"),
            KUBESWEEP_AZURE_VAULT_URL=vault.url,
            KUBESWEEP_AZURE_CA_BUNDLE=str(vault.cert),
            KUBESWEEP_STORAGE_RETRY_BACKOFF_S="0.05",
            **identity.env,
        )
        # Past staging (~35 uploads), into the trials' uploads: retried, and the run goes on.
        files.inject("range", nth=45, status=503, times=2)
        with kept_run(config, tmp_path, env) as run:
            answers = _check_every_trial(run, files.root / "experiments")
            answers += [
                json.dumps(run.client.experiments()),
                json.dumps(run.client.experiment(run.exp_id)),
            ]
            dump = run.redis_dump()
        failed = [r for r in files.requests if r[2] == 503]
        assert len(failed) == 2, failed
        assert all("/trials/" in r[1] for r in failed), failed
        assert run.exp_id in dump
        assert DEV_KEY not in dump
        assert DEV_KEY not in "".join(answers) + run.output
        # Every log, every file kubesweep wrote (stack, trial work folders, the share).
        for root in (run.workdir, tmp_path / "home", files.root):
            for path in root.rglob("*"):
                if path.is_file():
                    assert DEV_KEY.encode() not in path.read_bytes(), path
        assert (run.workdir / "logs" / "dispatcher-worker.log").stat().st_size > 0
    finally:
        identity.stop()
        files.stop()
        vault.stop()


TRIAL = """\
import os, sys, time, nni
nni.get_next_parameter()
print("started", flush=True)
print("a line on stderr", file=sys.stderr, flush=True)
time.sleep(4 if os.environ["NNI_TRIAL_SEQ_ID"] == "0" else 120)
print("finished", flush=True)
nni.report_final_result(1.0)
"""


def _wait(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = probe()
        except Exception:  # e.g. a file not written yet
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_worker_killed_and_trial_cancelled_still_upload(
    nfs_export: GaneshaServer, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "trial.py").write_text(TRIAL)
    config = tmp_path / "config.yml"
    config.write_text(
        "searchSpace: {x: {_type: uniform, _value: [0, 1]}}\n"
        "trialCommand: python3 trial.py\ntrialCodeDirectory: code\n"
        "trialConcurrency: 1\nmaxTrialNumber: 2\ntuner: {name: Random}\n"
        "trainingService:\n  platform: local\n"
        f"  storage: {{storageType: nfs, server: {nfs_export.host}, path: /export}}\n"
    )
    extra = {"KUBESWEEP_NFS_PORT": str(nfs_export.port)}
    with EmbeddedStack(tmp_path / "stack", extra_env=extra) as stack:
        client = ApiClient(stack.api_url, stack.api_token)
        exp_id = client.submit(config)
        stored = nfs_export.export_dir / "kubesweep" / exp_id / "trials"

        def live_stdout(tid: str) -> str:
            return client.read_file(exp_id, tid, "output/local-0/stdout")

        first = _wait("a running trial", lambda: client.trials(exp_id, status="RUNNING"))[0]
        # Read while it runs: the platform serves the local work folder.
        _wait("live stdout", lambda: live_stdout(first["id"]) == "started\n")
        stack.kill("dispatcher-worker")
        _wait(
            "the first trial to succeed without its worker",
            lambda: client.trials(exp_id)[0]["status"] == "SUCCEEDED",
        )
        out = stored / first["id"] / "output" / "local-0"
        assert (out / "stdout").read_text() == "started\nfinished\n"
        assert (out / "stderr").read_text() == "a line on stderr\n"
        assert "exit code 0;" in (out / "trial.log").read_text()

        stack.respawn("dispatcher-worker")
        second = _wait("the second trial", lambda: client.trials(exp_id, status="RUNNING"))[0]
        _wait("its live stdout", lambda: live_stdout(second["id"]) == "started\n")
        client.cancel_trial(exp_id, second["id"])
        handle = client.trials(exp_id)[1]["job"]
        _wait("the supervisor to finish", lambda: keeper_alive(handle) is False, timeout=30)
        out = stored / second["id"] / "output" / "local-0"
        assert (out / "stdout").read_text() == "started\n"
        assert "command exited with code" in (out / "trial.log").read_text()
        assert client.read_file(exp_id, second["id"], "output/local-0/stdout") == "started\n"
        exp = _wait("DONE", lambda: client.experiment(exp_id)["status"] == "DONE" or None)
        assert exp
        statuses = [t["status"] for t in client.trials(exp_id)]
        assert statuses == ["SUCCEEDED", "USER_CANCELED"]

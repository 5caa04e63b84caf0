"""The trial keeper as a real process, run from a staged runtime folder, and a real HTTP server."""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kubesweep.trial import protocol, runtime_files
from kubesweep.trial.sender import Sender, _retry_after

TOKEN = "tok-s3cret-value"
PARAMS = {"lr": 0.01, "batch_size": 32}


@dataclass
class Post:
    path: str
    auth: str
    body: dict[str, Any]
    answer: int
    received: float = field(default_factory=time.monotonic)


@dataclass
class Collector:
    """Records every POST; answers from ``plan`` (per path kind) first, then 201."""

    url: str = ""
    posts: list[Post] = field(default_factory=list)
    plan: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> list[Post]:
        return [p for p in self.posts if p.answer < 300]

    def metrics(self) -> list[dict[str, Any]]:
        """Delivered metric bodies in order, whether sent one per request or batched."""
        out: list[dict[str, Any]] = []
        for post in self.delivered():
            if post.path.endswith("/metrics"):
                out.append(post.body)
            elif post.path.endswith("/metrics/batch"):
                out += [{"attempt": post.body["attempt"], **m} for m in post.body["metrics"]]
        return out

    def kinds(self) -> list[str]:
        out = []
        for post in self.delivered():
            if post.path.endswith("/status"):
                out.append(post.body["status"])
            else:
                for metric in post.body.get("metrics", [post.body]):  # a batch, or one
                    out.append(f"{metric['type']}#{metric['sequence']}")
        return out


@pytest.fixture
def collector() -> Iterator[Collector]:
    state = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            kind = self.path.removesuffix("/batch").rsplit("/", 1)[-1]
            with state.lock:
                planned = state.plan.get(kind)
                code, text = planned.pop(0) if planned else (201, '{"ok": true}')
                state.posts.append(
                    Post(self.path, self.headers.get("Authorization", ""), body, code)
                )
            payload = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if code == 503:
                self.send_header("Retry-After", "0")
            if code == 429:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Trial:
    root: Path
    code: Path
    sys_dir: Path
    out: Path
    runtime: Path

    def write_script(self, source: str, name: str = "train.py") -> str:
        (self.code / name).write_text(textwrap.dedent(source))
        return f"{shlex.quote(sys.executable)} {name}"

    def env(self, collector: Collector | None, command: str, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KUBESWEEP_", "NNI_", "PYTHONPATH"))
        }
        env.update(
            {
                "PYTHONPATH": str(self.runtime),
                protocol.ENV_EXPERIMENT_ID: "exp1",
                protocol.ENV_TRIAL_ID: "trialA",
                protocol.ENV_TRIAL_SEQ: "3",
                protocol.ENV_TRIAL_ATTEMPT: "2",
                protocol.ENV_TRIAL_TOKEN: TOKEN,
                protocol.ENV_TRIAL_COMMAND: command,
                protocol.ENV_CODE_DIR: str(self.code),
                protocol.ENV_SYS_DIR: str(self.sys_dir),
                protocol.ENV_OUTPUT_DIR: str(self.out),
                protocol.ENV_PLATFORM: "kubeflow",
                protocol.ENV_REPORT_TIMEOUT: "10",
            }
        )
        if collector is not None:
            env[protocol.ENV_COLLECTOR_URL] = collector.url
        env.update(extra)
        return env

    def start(
        self, collector: Collector | None, command: str, **extra: str
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "kubesweep_trial.keeper"],
            env=self.env(collector, command, **extra),
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, collector: Collector | None, command: str, **extra: str) -> tuple[int, str, str]:
        proc = self.start(collector, command, **extra)
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out, err

    def read(self, name: str) -> str:
        return (self.out / name).read_text()

    def metrics_file(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.read("metrics.jsonl").splitlines()]


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def trial(tmp_path: Path) -> Trial:
    runtime = tmp_path / "runtime"
    for relative, content in runtime_files().items():
        path = runtime / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    code, sys_dir = tmp_path / "code", tmp_path / "trials" / "trialA"
    code.mkdir()
    sys_dir.mkdir(parents=True)
    record = {"parameter_id": 5, "parameter_source": "algorithm", "parameters": PARAMS}
    (sys_dir / "parameter.cfg").write_text(json.dumps({**record, "parameter_index": 0}))
    return Trial(tmp_path, code, sys_dir, sys_dir / "output" / "worker-0", runtime)


NNI_SCRIPT = """
    import json, os, sys
    import nni
    from nni.utils import merge_parameter

    params = merge_parameter({"lr": 0.1, "batch_size": 64}, nni.get_next_parameter())
    with open(os.path.join(os.environ["NNI_OUTPUT_DIR"], "seen.json"), "w") as f:
        json.dump({
            "params": params,
            "nni_file": nni.__file__,
            "ids": [nni.get_experiment_id(), nni.get_trial_id(), nni.get_sequence_id()],
            "env": {k: v for k, v in os.environ.items() if k.startswith(("NNI_", "KUBESWEEP_"))},
            "multi_phase": os.environ.get("MULTI_PHASE"),
            "cwd": os.getcwd(),
        }, f)
    print("training with", params)
    for epoch in range(3):
        nni.report_intermediate_result({"default": 0.5 + epoch / 10, "epoch": epoch})
    sys.stderr.write("a warning on stderr\\n")
    nni.report_final_result(0.9)
"""


def test_nni_trial_runs_and_reports_in_order(trial: Trial, collector: Collector) -> None:
    collector.plan["metrics"] = [(503, "busy"), (503, "busy")]
    code, out, err = trial.run(collector, trial.write_script(NNI_SCRIPT))

    assert code == 0, err
    assert collector.kinds() == [
        "RUNNING",
        "PERIODICAL#0",
        "PERIODICAL#1",
        "PERIODICAL#2",
        "FINAL#0",
        "SUCCEEDED",
    ]
    assert [p.answer for p in collector.posts[:4]] == [201, 503, 503, 201]  # retried
    # Sent one per request or, those that queued up during the retries, as one batch.
    metrics = collector.metrics()
    assert metrics[0] == {
        "attempt": 2,
        "type": "PERIODICAL",
        "sequence": 0,
        "value": {"default": 0.5, "epoch": 0},
    }
    assert metrics[-1] == {"attempt": 2, "type": "FINAL", "sequence": 0, "value": 0.9}
    assert all(p.auth == f"Bearer {TOKEN}" for p in collector.posts)
    assert collector.delivered()[-1].body == {"attempt": 2, "status": "SUCCEEDED", "exit_code": 0}

    seen = json.loads(trial.read("seen.json"))
    assert seen["params"] == PARAMS
    assert seen["nni_file"].startswith(str(trial.runtime))
    assert seen["ids"] == ["exp1", "trialA", 3]
    assert seen["multi_phase"] == "false"
    env = seen["env"]
    assert protocol.ENV_TRIAL_TOKEN not in env
    assert env["NNI_PLATFORM"] == "kubeflow"
    assert env["NNI_SYS_DIR"] == str(trial.sys_dir)
    assert env["NNI_OUTPUT_DIR"] == str(trial.out)
    assert env["NNI_CODE_DIR"] == str(trial.code)
    assert seen["cwd"] != str(trial.code)
    assert not Path(seen["cwd"]).exists()  # the temporary work dir is removed

    assert "training with" in trial.read("stdout")
    assert "training with" in out
    assert "a warning on stderr" in trial.read("stderr")
    assert "a warning on stderr" in err
    assert [m["sequence"] for m in trial.metrics_file()] == [0, 1, 2, 0]
    log = trial.read("trial.log")
    assert "exit code 0" in log
    for text in (log, out, err, trial.read("stdout"), trial.read("metrics.jsonl")):
        assert TOKEN not in text


def test_nni_stdout_lines_are_parsed(trial: Trial, collector: Collector) -> None:
    script = """
        import json
        def line(kind, seq, value):
            msg = {"parameter_id": 5, "trial_job_id": "trialA", "type": kind,
                   "sequence": seq, "value": json.dumps(value)}
            print("NNISDK_MEb'%s'" % json.dumps(msg), flush=True)
        print("epoch 0")
        line("PERIODICAL", 0, {"default": 0.4, "note": "it's quoted"})
        line("PERIODICAL", 1, 0.5)
        line("FINAL", 0, {"default": 0.6, "name": "o'brien"})
    """
    code, _, err = trial.run(collector, trial.write_script(script, "real_nni.py"))
    assert code == 0, err
    metrics = collector.metrics()
    assert [(m["type"], m["sequence"], m["value"]) for m in metrics] == [
        ("PERIODICAL", 0, {"default": 0.4, "note": "it's quoted"}),
        ("PERIODICAL", 1, 0.5),
        ("FINAL", 0, {"default": 0.6, "name": "o'brien"}),
    ]
    assert "NNISDK_MEb" in trial.read("stdout")


def test_failing_command_reports_failed(trial: Trial, collector: Collector) -> None:
    script = """
        import sys, nni
        nni.report_final_result(0.1)
        print("Traceback (most recent call last):", file=sys.stderr)
        print("ValueError: " + "x" * 600, file=sys.stderr)
        print("", file=sys.stderr)
        sys.exit(3)
    """
    code, _, _ = trial.run(collector, trial.write_script(script))
    assert code == 3
    assert collector.kinds() == ["RUNNING", "FINAL#0", "FAILED"]
    status = collector.delivered()[-1].body
    assert status["exit_code"] == 3
    assert status["status"] == "FAILED"
    assert status["message"].startswith("ValueError: xxx")
    assert len(status["message"]) == protocol.MAX_MESSAGE_CHARS


def test_refused_report_is_logged_and_dropped(trial: Trial, collector: Collector) -> None:
    # Every metric report is refused (whether the two metrics go one by one or as a batch).
    collector.plan["metrics"] = [(403, '{"error": "token does not match trial"}')] * 2
    script = "import nni\nnni.report_intermediate_result(1)\nnni.report_final_result(2)\n"
    code, _, err = trial.run(collector, trial.write_script(script))
    assert code == 0
    assert collector.kinds() == ["RUNNING", "SUCCEEDED"]
    assert "token does not match trial" in trial.read("trial.log")
    assert "HTTP 403" in err
    assert [m["type"] for m in trial.metrics_file()] == ["PERIODICAL", "FINAL"]


def test_status_and_metrics_switches(trial: Trial, collector: Collector) -> None:
    script = "import nni\nnni.report_final_result(2)\n"
    code, _, _ = trial.run(
        collector,
        trial.write_script(script),
        **{protocol.ENV_REPORT_STATUS: "0", protocol.ENV_PRIMARY: "0"},
    )
    assert code == 0
    assert collector.posts == []
    assert "ignored 1 metrics" in trial.read("trial.log")


def test_works_without_a_collector_in_a_given_work_dir(trial: Trial) -> None:
    work = trial.root / "work"
    script = "import os, nni\nprint(os.getcwd())\nnni.report_final_result(2)\n"
    command = trial.write_script(script)
    code, out, err = trial.run(None, command, **{protocol.ENV_WORK_DIR: str(work)})
    assert code == 0, err
    assert out.splitlines()[0] == str(work)
    assert (work / "train.py").exists()  # a given work dir is kept
    assert trial.metrics_file()[0]["value"] == 2


def test_keeper_runs_from_the_installed_package(trial: Trial, collector: Collector) -> None:
    env = trial.env(
        collector,
        trial.write_script("import nni\nnni.report_final_result(nni.get_next_parameter()['lr'])\n"),
    )
    del env["PYTHONPATH"]
    proc = subprocess.run(
        [sys.executable, "-m", "kubesweep.trial.keeper"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert collector.kinds() == ["RUNNING", "FINAL#0", "SUCCEEDED"]
    assert collector.delivered()[1].body["value"] == PARAMS["lr"]


def test_sender_honours_retry_after_and_gives_up(collector: Collector) -> None:
    log = logging.getLogger("test-sender")
    collector.plan["metrics"] = [(429, "slow down")] + [(503, "down")] * 100
    sender = Sender(collector.url, TOKEN, timeout=2.0, log=log)
    sender.start()
    started = time.monotonic()
    sender.post("/api/v1/trials/e/t/metrics", {"n": 1})
    sender.post("/api/v1/trials/e/t/status", {"n": 2})
    assert sender.close(drain_seconds=10)
    assert (sender.delivered, sender.dropped) == (1, 1)
    assert [p.answer for p in collector.posts][:2] == [429, 503]
    assert collector.posts[-1].body == {"n": 2}
    gap = collector.posts[1].received - collector.posts[0].received
    assert gap >= 0.9  # Retry-After: 1 beats the 0.2 s first backoff
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [(None, 0, 0), ("3", 3, 3), ("junk", 0, 0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0, 0)],
)
def test_retry_after_parsing(header: str | None, low: float, high: float) -> None:
    assert low <= _retry_after(header) <= high


def test_second_keeper_for_the_attempt_does_not_run(trial: Trial, collector: Collector) -> None:
    script = """
        import os
        open(os.environ["NNI_OUTPUT_DIR"] + "/ran", "a").write("x")
        raise SystemExit(4)
    """
    command = trial.write_script(script)
    assert trial.run(collector, command)[0] == 4
    posts = len(collector.posts)
    code, _, err = trial.run(collector, command)
    assert code == 4  # the finished attempt's exit code, replayed
    assert trial.read("ran") == "x"
    assert len(collector.posts) == posts
    assert err == ""


def test_duplicate_launch_while_running_exits_quietly(trial: Trial, collector: Collector) -> None:
    trial.out.mkdir(parents=True)
    (trial.out / "ran").write_text("")
    first = trial.start(collector, trial.write_script("import time\ntime.sleep(30)\n"))
    try:
        lock = trial.out / protocol.LOCK_FILE
        wait_for(lambda: lock.exists() and bool(lock.read_text()))
        code, out, err = trial.run(collector, "echo ran >> ran")
        assert (code, out, err) == (0, "", "")
        assert json.loads(lock.read_text())["pid"] == first.pid
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)


def test_stale_lock_is_refused(trial: Trial, collector: Collector) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    trial.out.mkdir(parents=True)
    lock = {"pid": dead.pid, "host": os.uname().nodename, "started": None, "exit_code": None}
    (trial.out / protocol.LOCK_FILE).write_text(json.dumps(lock))
    code, _, err = trial.run(collector, "touch ran")
    assert code == protocol.EXIT_STALE_LOCK
    assert "died mid-run" in err
    assert collector.posts == []


def test_sigterm_is_forwarded_to_the_command(trial: Trial, collector: Collector) -> None:
    script = """
        import signal, sys, time
        def bye(signum, frame):
            print("got SIGTERM", flush=True)
            sys.exit(143)
        signal.signal(signal.SIGTERM, bye)
        print("ready", flush=True)
        time.sleep(60)
    """
    proc = trial.start(collector, trial.write_script(script))
    stdout = trial.out / "stdout"
    wait_for(lambda: stdout.exists() and "ready" in stdout.read_text())
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert "got SIGTERM" in out
    assert collector.kinds() == ["RUNNING", "FAILED"]
    status = collector.delivered()[-1].body
    assert (status["exit_code"], status["message"]) == (143, "stopped by SIGTERM")


def test_configuration_error_exit_code(trial: Trial) -> None:
    env = trial.env(None, "true")
    del env[protocol.ENV_TRIAL_ID]
    proc = subprocess.run(
        [sys.executable, "-m", "kubesweep_trial.keeper"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == protocol.EXIT_CONFIG
    assert "KUBESWEEP_TRIAL_ID is required" in proc.stderr

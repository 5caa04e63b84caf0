"""The trial keeper: ``python3 -m kubesweep_trial.keeper``, configured by ``KUBESWEEP_*``.

It takes the attempt's lock, copies the code snapshot to a working directory, runs the
trial command with NNI's environment, tees its output to the trial's output folder,
forwards its metrics (SDK reports on a pipe and NNI ``NNISDK_MEb`` stdout lines) to the
collector, reports RUNNING and then SUCCEEDED/FAILED after the last metric, and exits
with the command's exit code. See ``protocol`` for the names and wire formats.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import IO

from . import lockfile, protocol
from .child import Child, child_env, prepare_workdir, runtime_dir
from .config import KeeperConfig, KeeperConfigError
from .forward import MetricForwarder
from .sender import Sender
from .streams import parse_nni_line, read_metric_pipe, tee

# After the command exits, how long its readers may take to reach EOF before processes it
# left behind (which hold the pipes open) are killed.
_READER_GRACE_SECONDS = 5.0
# Drain budget when the keeper itself is being stopped: Kubernetes' default grace period
# is 30 s, of which the command may take KILL_GRACE_SECONDS.
_SIGNALLED_DRAIN_SECONDS = 10.0


def main(argv: list[str] | None = None) -> int:
    """Run one trial attempt; returns the exit code (the command's, or 75/78 from the keeper)."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        # Only --help is accepted; argparse costs start-up time every trial pays.
        import argparse

        parser = argparse.ArgumentParser(
            prog="python3 -m kubesweep_trial.keeper",
            description="Run a kubesweep trial command; configured by KUBESWEEP_* variables.",
        )
        parser.parse_args(args)
    try:
        config = KeeperConfig.from_env(os.environ)
    except KeeperConfigError as exc:
        print(f"kubesweep-keeper: configuration error: {exc}", file=sys.stderr)
        return protocol.EXIT_CONFIG
    os.makedirs(config.output_dir, exist_ok=True)
    log = _logger(config.output_dir)
    try:
        return _guarded(config, log)
    finally:
        for handler in list(log.handlers):
            handler.close()
            log.removeHandler(handler)


def _guarded(config: KeeperConfig, log: logging.Logger) -> int:
    outcome, holder = lockfile.acquire(config.output_dir)
    if outcome == lockfile.RUNNING:
        log.info("another keeper (pid %s) is running this attempt; not starting", holder["pid"])
        return 0
    if outcome == lockfile.FINISHED:
        log.info("this attempt already ran (exit code %s); not starting", holder["exit_code"])
        return int(holder["exit_code"])
    if outcome == lockfile.STALE:
        log.error(
            "%s exists but its keeper (%s) is gone: an earlier keeper for this attempt died "
            "mid-run, so its outcome is unknown; refusing to run the command again",
            os.path.join(config.output_dir, protocol.LOCK_FILE),
            holder or "unreadable",
        )
        return protocol.EXIT_STALE_LOCK
    code = _run(config, log)
    lockfile.mark_finished(config.output_dir, code)
    return code


def _run(config: KeeperConfig, log: logging.Logger) -> int:
    log.info(
        "trial %s/%s attempt %d (seq %d) on %s: primary=%s report_status=%s collector=%s",
        config.experiment_id,
        config.trial_id,
        config.attempt,
        config.sequence,
        config.platform,
        config.primary,
        config.report_status,
        config.collector_url or "none (metrics only in metrics.jsonl)",
    )
    scratch = tempfile.mkdtemp(prefix="kubesweep-keeper-")
    sender = Sender(config.collector_url, config.token, config.report_timeout, log)
    sender.start()
    child = Child()
    child.install_signal_handlers()
    try:
        with open(
            os.path.join(config.output_dir, protocol.METRICS_FILE), "a", encoding="utf-8"
        ) as record:
            forward = MetricForwarder(config, sender, record, log)
            code, message = _supervise(
                config, log=log, child=child, forward=forward, sender=sender, scratch=scratch
            )
            if not config.primary and forward.ignored:
                log.info("ignored %d metrics: not the primary replica", forward.ignored)
            if config.report_status:
                _post_status(config, sender, code, message)
            drain = config.report_timeout
            if child.signalled is not None:
                drain = min(drain, _SIGNALLED_DRAIN_SECONDS)
            if not sender.close(drain):
                log.error("gave up delivering reports after %.0f s; metrics.jsonl has them", drain)
            log.info(
                "exit code %d; %d metrics forwarded, %d reports delivered, %d dropped",
                code,
                forward.forwarded,
                sender.delivered,
                sender.dropped,
            )
            return code
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        shutil.rmtree(scratch, ignore_errors=True)


def _supervise(
    config: KeeperConfig,
    *,
    log: logging.Logger,
    child: Child,
    forward: MetricForwarder,
    sender: Sender,
    scratch: str,
) -> tuple[int, str]:
    """Run the command to its end; returns its exit code and, on failure, a message."""
    try:
        workdir = prepare_workdir(config, scratch)
        runtime = runtime_dir(scratch)
    except OSError as exc:
        log.error("cannot prepare the working directory: %s", exc)
        return protocol.EXIT_NOT_STARTED, f"cannot prepare the working directory: {exc}"
    if child.signalled is not None:
        return 128 + child.signalled, f"stopped by {_signal_name(child.signalled)} before start"
    if config.report_status:
        sender.post(
            _status_path(config), {"attempt": config.attempt, "status": protocol.STATUS_RUNNING}
        )
    last_error = [""]

    def on_stdout(line: str) -> None:
        parsed = parse_nni_line(line, log)
        if parsed is not None:
            forward(*parsed)

    def on_stderr(line: str) -> None:
        if line.strip():
            last_error[0] = line.strip()

    with contextlib.ExitStack() as files:
        out_file = files.enter_context(_open_output(config, protocol.STDOUT_FILE))
        err_file = files.enter_context(_open_output(config, protocol.STDERR_FILE))
        read_fd, write_fd = os.pipe()
        env = child_env(config, os.environ, write_fd, runtime)
        log.info("running in %s: %s", workdir, config.command)
        try:
            child.start(config.command, workdir, env, write_fd)
        except OSError as exc:
            os.close(read_fd)
            log.error("cannot start the command: %s", exc)
            return protocol.EXIT_NOT_STARTED, f"cannot start the command: {exc}"
        finally:
            os.close(write_fd)
        proc = child.proc
        assert proc is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        readers = [
            _thread(tee, proc.stdout, out_file, _binary(sys.stdout), on_stdout),
            _thread(tee, proc.stderr, err_file, _binary(sys.stderr), on_stderr),
            _thread(read_metric_pipe, os.fdopen(read_fd, "rb"), forward, log),
        ]
        code = child.wait()
        _finish_readers(readers, child, log)
    log.info("command exited with code %d", code)
    if code == 0:
        return 0, ""
    message = last_error[0]
    if not message and code > 128 and child.signalled is not None:
        message = f"stopped by {_signal_name(code - 128)}"
    return code, message[: protocol.MAX_MESSAGE_CHARS]


def _finish_readers(readers: list[threading.Thread], child: Child, log: logging.Logger) -> None:
    for reader in readers:
        reader.join(_READER_GRACE_SECONDS)
    if any(reader.is_alive() for reader in readers):
        # Background processes the command left behind still hold its pipes open.
        log.warning("the command left processes running; killing its process group")
        child.kill_group(signal.SIGKILL)
        for reader in readers:
            reader.join(_READER_GRACE_SECONDS)


def _open_output(config: KeeperConfig, name: str) -> IO[bytes]:
    return open(os.path.join(config.output_dir, name), "ab")


def _post_status(config: KeeperConfig, sender: Sender, code: int, message: str) -> None:
    body: dict[str, object] = {
        "attempt": config.attempt,
        "status": protocol.STATUS_SUCCEEDED if code == 0 else protocol.STATUS_FAILED,
        "exit_code": code,
    }
    if code != 0:
        body["message"] = message
    sender.post(_status_path(config), body)


def _status_path(config: KeeperConfig) -> str:
    return protocol.STATUS_PATH.format(experiment=config.experiment_id, trial=config.trial_id)


def _thread(target: Callable[..., object], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _binary(stream: IO[str]) -> IO[bytes] | None:
    buffer: IO[bytes] | None = getattr(stream, "buffer", None)
    return buffer


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _logger(output_dir: str) -> logging.Logger:
    """``trial.log`` gets everything; the keeper's stderr gets warnings and errors."""
    log = logging.getLogger("kubesweep.trial.keeper")
    log.setLevel(logging.INFO)
    log.propagate = False
    to_file = logging.FileHandler(os.path.join(output_dir, protocol.LOG_FILE), encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s keeper: %(message)s"))
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.WARNING)
    to_stderr.setFormatter(logging.Formatter("kubesweep-keeper: %(levelname)s %(message)s"))
    log.addHandler(to_file)
    log.addHandler(to_stderr)
    return log


if __name__ == "__main__":
    sys.exit(main())

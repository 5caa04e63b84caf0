"""The trial-side API: hyperparameters in, metrics out (what ``import nni`` maps to).

The transport is chosen from the environment at each call, never at import time:

* **keeper** — ``KUBESWEEP_METRIC_FD`` is set: parameters come from ``$NNI_SYS_DIR/parameter.cfg``
  and each report is one JSON line on that pipe; the keeper numbers and forwards them.
* **nni-stdout** — no pipe but ``NNI_PLATFORM`` is set (an NNI-style launcher): reports are
  printed as NNI's ``NNISDK_MEb'…'`` lines, which NNI's trial keeper and ours both parse.
* **standalone** — neither: as NNI 3.0's standalone channel, ``get_next_parameter()`` warns and
  returns ``{}`` and reports are only logged, so a script can be debugged with plain ``python``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import warnings
from typing import Any

from . import protocol
from .metrics import encode_metric, normalize_metric
from .params import read_parameter_record

__all__ = [
    "get_current_parameter",
    "get_experiment_id",
    "get_next_parameter",
    "get_next_parameters",
    "get_sequence_id",
    "get_trial_id",
    "report_final_result",
    "report_intermediate_result",
]


class _State:
    """What one trial process has fetched and reported so far."""

    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None
        self.intermediate_seq = 0


_lock = threading.Lock()
_state = _State()
_logger = logging.getLogger("nni")


def _mode() -> str:
    if os.environ.get(protocol.ENV_METRIC_FD):
        return "keeper"
    platform = os.environ.get(protocol.NNI_PLATFORM)
    if platform and platform != "unittest":
        return "nni-stdout"
    return "standalone"


def get_next_parameter() -> dict[str, Any]:
    """The hyperparameters chosen for this trial (``parameters`` of ``parameter.cfg``).

    NNI supports one call per trial; later calls here return the same parameters.
    """
    with _lock:
        if _state.record is None:
            _state.record = _load_record()
        parameters: dict[str, Any] = _state.record["parameters"]
        return parameters


def get_next_parameters() -> dict[str, Any]:
    """Alias of :func:`get_next_parameter`, as in NNI."""
    return get_next_parameter()


def get_current_parameter(tag: str | None = None) -> Any:
    """The parameters fetched by :func:`get_next_parameter` (or one of them), else None."""
    record = _state.record
    if record is None:
        return None
    if tag is None:
        return record["parameters"]
    return record["parameters"][tag]


def report_intermediate_result(metric: Any) -> None:
    """Report a per-epoch metric: a finite number or a dict with a numeric ``default``."""
    _report(protocol.PERIODICAL, metric)


def report_final_result(metric: Any) -> None:
    """Report the trial's result: a finite number or a dict with a numeric ``default``."""
    _report(protocol.FINAL, metric)


def get_experiment_id() -> str:
    return _env_first(protocol.NNI_EXP_ID, protocol.ENV_EXPERIMENT_ID) or protocol.STANDALONE_ID


def get_trial_id() -> str:
    return _env_first(protocol.NNI_TRIAL_JOB_ID, protocol.ENV_TRIAL_ID) or protocol.STANDALONE_ID


def get_sequence_id() -> int:
    """The trial's sequence number ("Trial No." in the UI); 0 when standalone."""
    value = _env_first(protocol.NNI_TRIAL_SEQ_ID, protocol.ENV_TRIAL_SEQ)
    return int(value) if value else 0


def _env_first(*names: str) -> str:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return ""


def _load_record() -> dict[str, Any]:
    if _mode() == "standalone":
        warnings.warn(
            "Running trial code without a kubesweep keeper or NNI runtime: "
            "get_next_parameter() returns {} and results are only logged.",
            RuntimeWarning,
            stacklevel=3,
        )
        return {"parameter_id": None, "parameters": {}}
    sys_dir = _env_first(protocol.NNI_SYS_DIR, protocol.ENV_SYS_DIR)
    if not sys_dir:
        raise RuntimeError(
            f"cannot find hyperparameters: neither {protocol.NNI_SYS_DIR} nor "
            f"{protocol.ENV_SYS_DIR} is set"
        )
    timeout = float(
        os.environ.get(protocol.ENV_PARAMETER_TIMEOUT, protocol.DEFAULT_PARAMETER_TIMEOUT)
    )
    return read_parameter_record(sys_dir, timeout)


def _report(kind: str, metric: Any) -> None:
    value = normalize_metric(metric)
    encoded = encode_metric(value)
    mode = _mode()
    with _lock:
        sequence = 0
        if kind == protocol.PERIODICAL:
            sequence = _state.intermediate_seq
            _state.intermediate_seq += 1
        if mode == "keeper":
            line = json.dumps({"type": kind, "value": value}, allow_nan=False) + "\n"
            _write_fd(int(os.environ[protocol.ENV_METRIC_FD]), line.encode("utf-8"))
        elif mode == "nni-stdout":
            _print_nni_line(kind, sequence, encoded)
        else:
            _log_standalone(kind, sequence, value)


def _write_fd(fd: int, data: bytes) -> None:
    # One os.write per chunk under the lock, so concurrent reports never interleave.
    try:
        while data:
            written = os.write(fd, data)
            data = data[written:]
    except OSError as exc:
        # The keeper is gone; the trial is being torn down, so its training should not crash.
        print(f"kubesweep: cannot deliver a metric to the keeper: {exc}", file=sys.stderr)


def _print_nni_line(kind: str, sequence: int, encoded: str) -> None:
    record = _state.record or {}
    message = json.dumps(
        {
            "parameter_id": record.get("parameter_id"),
            "trial_job_id": get_trial_id(),
            "type": kind,
            "sequence": sequence,
            "value": encoded,
        }
    )
    print(f"{protocol.NNI_METRIC_PREFIX}{message}'", flush=True)


def _log_standalone(kind: str, sequence: int, value: Any) -> None:
    if not _logger.hasHandlers():
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s (nni) %(message)s"))
        _logger.addHandler(handler)
        _logger.setLevel(logging.INFO)
    if kind == protocol.FINAL:
        _logger.info("Final result: %s", value)
    else:
        _logger.info("Intermediate result: %s  (Index %s)", value, sequence)


def _reset_for_tests() -> None:
    """Forget fetched parameters and counters (tests run many "trials" in one process)."""
    with _lock:
        _state.record = None
        _state.intermediate_seq = 0

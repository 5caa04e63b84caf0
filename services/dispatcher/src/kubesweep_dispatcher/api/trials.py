"""Trial routes: list (filter, sort, paginate), show, cancel, metrics, output files."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from kubesweep.config import ExperimentSpec
from kubesweep.errors import ConfigError, ConflictError
from kubesweep.messaging import ACTIVE_TRIAL_STATUSES, CANCEL_TRIAL_TASK, TrialStatus
from kubesweep.records import TrialRecord
from kubesweep.results import optimize_mode
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.api.common import ctx, known_id, send
from kubesweep_dispatcher.storage import check_relpath

bp = Blueprint("trials", __name__, url_prefix="/api/v1/experiments/<exp_id>/trials")
MAX_PAGE = 1000
MAX_FILE_BYTES = 8 * 1024 * 1024


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"must be a whole number, got {raw[:32]!r}", field=name) from None
    if not low <= value <= high:
        raise ConfigError(f"must be between {low} and {high}, got {value}", field=name)
    return value


def _select(trials: list[TrialRecord], spec: dict[str, Any]) -> list[TrialRecord]:
    status = request.args.get("status")
    if status:
        wanted = {s.strip().upper() for s in status.split(",")}
        unknown = wanted - {s.value for s in TrialStatus}
        if unknown:
            raise ConfigError(
                f"unknown status {sorted(unknown)}; use {', '.join(s.value for s in TrialStatus)}",
                field="status",
            )
        trials = [t for t in trials if t.status.value in wanted]
    sort = request.args.get("sort", "seq")
    if sort not in ("seq", "metric"):
        raise ConfigError("must be seq or metric", field="sort")
    if sort == "metric":
        mode = request.args.get("order") or optimize_mode(spec)
        if mode not in ("maximize", "minimize"):
            raise ConfigError("must be maximize or minimize", field="order")
        scored = [t for t in trials if t.default_metric is not None]
        rest = [t for t in trials if t.default_metric is None]
        scored.sort(key=lambda t: t.default_metric or 0.0, reverse=mode == "maximize")
        trials = scored + rest
    return trials


@bp.get("")
def list_trials(exp_id: str) -> Response:
    store = ctx().store
    record = store.get_experiment(known_id(exp_id, "experiment"))
    trials = _select(store.list_trials(exp_id), record.spec)
    offset = _int_arg("offset", 0, 0, 10**9)
    limit = _int_arg("limit", MAX_PAGE, 1, MAX_PAGE)
    page = trials[offset : offset + limit]
    return jsonify(
        {
            "trials": [t.model_dump(mode="json") for t in page],
            "total": len(trials),
            "offset": offset,
            "limit": limit,
        }
    )


@bp.get("/<trial_id>")
def show_trial(exp_id: str, trial_id: str) -> Response:
    trial = ctx().store.get_trial(known_id(exp_id, "experiment"), known_id(trial_id, "trial"))
    return jsonify(trial.model_dump(mode="json"))


@bp.post("/<trial_id>/cancel")
def cancel_trial(exp_id: str, trial_id: str) -> Response:
    store = ctx().store
    trial = store.get_trial(known_id(exp_id, "experiment"), known_id(trial_id, "trial"))
    if not store.transition_trial(
        exp_id,
        trial_id,
        TrialStatus.USER_CANCELED,
        allowed_from=ACTIVE_TRIAL_STATUSES,
        fields={"message": "cancelled by the user"},
    ):
        raise ConflictError(f"trial {trial_id!r} has already ended ({trial.status.value})")
    send(CANCEL_TRIAL_TASK, exp_id, trial_id)
    return jsonify({"trial_id": trial_id, "status": TrialStatus.USER_CANCELED.value})


@bp.get("/<trial_id>/metrics")
def trial_metrics(exp_id: str, trial_id: str) -> Response:
    """Intermediate and final results in report order (NNI's metric-data, decoded once)."""
    store = ctx().store
    store.get_trial(known_id(exp_id, "experiment"), known_id(trial_id, "trial"))
    metrics = []
    after = "0-0"
    while entries := store.read_events(exp_id, after, count=1000):
        after = entries[-1].id
        for entry in entries:
            event = entry.event
            if event.trial_id == trial_id and event.type.startswith("metric."):
                metrics.append(
                    {
                        "type": "FINAL" if event.type == "metric.final" else "PERIODICAL",
                        "sequence": event.payload.get("sequence"),
                        "value": event.payload.get("value"),
                        "timestamp": event.ts,
                    }
                )
    return jsonify({"trial_id": trial_id, "metrics": metrics})


def _trial_storage(exp_id: str, trial_id: str) -> tuple[Any, str, int]:
    """The storage, the trial's folder on it and the trial's current attempt."""
    context = ctx()
    record = context.store.get_experiment(known_id(exp_id, "experiment"))
    trial = context.store.get_trial(exp_id, known_id(trial_id, "trial"))
    storage = context.storage_for(ExperimentSpec.model_validate(record.spec))
    return storage, layout.trial(exp_id, trial_id), trial.attempt


def _live_file(exp_id: str, trial_id: str, relpath: str) -> bytes | None:
    """The running job's own view of a file, when its platform has one."""
    context = ctx()
    trial = context.store.get_trial(exp_id, trial_id)
    if trial.status not in ACTIVE_TRIAL_STATUSES or not trial.job:
        return None
    spec = ExperimentSpec.model_validate(context.store.get_experiment(exp_id).spec)
    return context.platform_for(spec).read_live_file(trial, relpath)


@bp.get("/<trial_id>/files")
def list_files(exp_id: str, trial_id: str) -> Response:
    """The trial's folder on shared storage (parameter.cfg, output/<role>-<index>/...)."""
    storage, root, attempt = _trial_storage(exp_id, trial_id)
    sub = request.args.get("path", "")
    # `output` is the current attempt's (layout.stored_path).
    folder = f"{root}/{layout.stored_path(check_relpath(sub), attempt)}" if sub else root
    entries = storage.list_dir(folder)
    return jsonify(
        {
            "path": sub,
            "url": storage.url(folder),
            "entries": [{"name": e.name, "is_dir": e.is_dir, "size": e.size} for e in entries],
        }
    )


@bp.get("/<trial_id>/files/<path:name>")
def read_file(exp_id: str, trial_id: str, name: str) -> Response:
    storage, root, attempt = _trial_storage(exp_id, trial_id)
    relpath = check_relpath(name)
    live = _live_file(exp_id, trial_id, relpath)
    stored = f"{root}/{layout.stored_path(relpath, attempt)}"
    data: bytes = live if live is not None else storage.read_bytes(stored)
    if len(data) > MAX_FILE_BYTES:
        data = data[-MAX_FILE_BYTES:]
    return Response(data, mimetype="text/plain; charset=utf-8")

"""Changing experiments after submission: update, resume, delete, import and export results
(nnictl's update/resume/experiment delete/import/export)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kubesweep.config import ExperimentSpec
from kubesweep.config.values import duration_seconds
from kubesweep.errors import ConfigError, ConflictError
from kubesweep.importdata import clean_rows
from kubesweep.messaging import Event, ExperimentStatus
from kubesweep.records import default_metric
from kubesweep.searchspace import validate_search_space
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.api.common import ctx, known_id

bp = Blueprint("manage", __name__, url_prefix="/api/v1/experiments")


class ExperimentUpdate(BaseModel):
    """What `nnictl update` can change: concurrency, trial number, duration, search space."""

    model_config = ConfigDict(extra="forbid")

    trial_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    max_trial_number: int | None = Field(default=None, ge=1)
    max_experiment_duration: float | None = None
    search_space: dict[str, Any] | None = None

    @field_validator("max_experiment_duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if value is None:
            return None
        seconds = duration_seconds(value)
        if seconds is None:
            raise ValueError("must be seconds or a string like 30s, 10m, 1.5h or 2d")
        return seconds


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise ConfigError("the body must be JSON", field="body")
    return body


@bp.patch("/<exp_id>")
def update_experiment(exp_id: str) -> Response:
    store = ctx().store
    record = store.get_experiment(known_id(exp_id, "experiment"))
    try:
        update = ExperimentUpdate.model_validate(_json_body())
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ConfigError(first["msg"], field=field) from exc
    changes = update.model_dump(exclude_none=True)
    if not changes:
        raise ConfigError("nothing to update", field="body")
    if "search_space" in changes:
        changes["search_space"] = validate_search_space(changes["search_space"])
    done = store.count_trials(exp_id)
    if changes.get("max_trial_number", done) < done:
        raise ConfigError(
            f"the experiment already has {done} trials; choose at least {done}",
            field="max_trial_number",
        )
    try:
        spec = ExperimentSpec.model_validate({**record.spec, **changes})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(first["msg"], field=".".join(str(p) for p in first["loc"])) from exc
    store.update_experiment_spec(exp_id, spec.model_dump(mode="json"), changes)
    return jsonify({"experiment_id": exp_id, "changes": changes})


@bp.post("/<exp_id>/resume")
def resume_experiment(exp_id: str) -> Response:
    """Continue a stopped or finished experiment; a tuner takes it over by replaying its log."""
    store = ctx().store
    record = store.get_experiment(known_id(exp_id, "experiment"))
    if not record.status.is_terminal:
        return jsonify({"experiment_id": exp_id, "status": record.status.value})
    store.transition_experiment(
        exp_id,
        ExperimentStatus.RUNNING,
        event_type="experiment.resumed",
        allowed_from=[ExperimentStatus.STOPPED, ExperimentStatus.DONE, ExperimentStatus.ERROR],
        fields={"ended": ""},
        message="resumed",
    )
    store.announce(exp_id)
    return jsonify({"experiment_id": exp_id, "status": ExperimentStatus.RUNNING.value})


@bp.delete("/<exp_id>")
def delete_experiment(exp_id: str) -> Response:
    context = ctx()
    record = context.store.get_experiment(known_id(exp_id, "experiment"))
    if not record.status.is_terminal:
        raise ConflictError(f"experiment {exp_id} is {record.status.value}; stop it first")
    purge = request.args.get("purge", "false").lower() in ("1", "true", "yes")
    if purge:
        context.storage_for(ExperimentSpec.model_validate(record.spec)).delete_tree(
            layout.experiment(exp_id)
        )
    context.store.delete_experiment(exp_id)
    return jsonify({"experiment_id": exp_id, "deleted": True, "purged": purge})


def _export_rows(exp_id: str) -> list[dict[str, Any]]:
    trials = ctx().store.list_trials(exp_id)
    return [
        {"parameter": t.parameters, "value": t.final, "trialJobId": t.id}
        for t in trials
        if t.final is not None
    ]


@bp.get("/<exp_id>/export")
def export_results(exp_id: str) -> Response:
    """NNI's export: ``[{parameter, value, trialJobId}]`` as JSON, or CSV with one column
    per parameter plus ``reward`` (NNI's CSV layout)."""
    ctx().store.get_experiment(known_id(exp_id, "experiment"))
    rows = _export_rows(exp_id)
    fmt = request.args.get("format", "json")
    if fmt == "json":
        return jsonify(rows)
    if fmt != "csv":
        raise ConfigError("must be json or csv", field="format")
    names = sorted({name for row in rows for name in row["parameter"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trialJobId", *names, "reward"])
    for row in rows:
        params = row["parameter"]
        writer.writerow(
            [
                row["trialJobId"],
                *(
                    json.dumps(params[n]) if isinstance(params.get(n), dict) else params.get(n, "")
                    for n in names
                ),
                default_metric(row["value"]),
            ]
        )
    return Response(buffer.getvalue(), mimetype="text/csv")


@bp.post("/<exp_id>/import")
def import_results(exp_id: str) -> tuple[Response, int]:
    """Feed earlier results (NNI's export format) to the experiment's tuner."""
    store = ctx().store
    record = store.get_experiment(known_id(exp_id, "experiment"))
    cleaned = clean_rows(_json_body())
    if record.status.is_terminal:
        raise ConflictError(f"experiment {exp_id} has ended; resume it before importing")
    store.append_event(
        Event(type="experiment.imported", experiment_id=exp_id, payload={"data": cleaned})
    )
    return jsonify({"experiment_id": exp_id, "imported": len(cleaned)}), 201

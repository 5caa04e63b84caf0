"""Experiment and trial routes."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from kubesweep.config import ExperimentSpec, parse_config
from kubesweep.config.custom import attach_algorithm_code, public_spec
from kubesweep.config.extension import objectives_of
from kubesweep.errors import ConfigError, NotFoundError
from kubesweep.importdata import clean_rows
from kubesweep.messaging import (
    ACTIVE_TRIAL_STATUSES,
    CANCEL_TRIAL_TASK,
    CLEANUP_EXPERIMENT_TASK,
    Event,
    ExperimentStatus,
    TrialStatus,
)
from kubesweep.records import ExperimentRecord
from kubesweep.results import best, optimize_mode, pareto_front
from kubesweep.searchspace import validate_search_space
from kubesweep.store import new_id
from kubesweep_dispatcher.api.common import known_id, send
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.platforms.registry import available_platforms
from kubesweep_dispatcher.staging import stage_experiment

log = logging.getLogger(__name__)
bp = Blueprint("experiments", __name__, url_prefix="/api/v1")


def _ctx() -> DispatcherContext:
    ctx: DispatcherContext = current_app.extensions["kubesweep.ctx"]
    return ctx


def _form_text(name: str) -> str | None:
    upload = request.files.get(name)
    if upload is not None:
        data: bytes = upload.read()
        return data.decode("utf-8", errors="replace")
    value: str | None = request.form.get(name)
    return value


def _read_imports() -> list[dict[str, Any]]:
    """Warm-start results sent with the submission (form field 'import', JSON rows)."""
    raw = _form_text("import")
    if not raw:
        return []
    try:
        return clean_rows(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg}", field="import") from exc


def _read_submission() -> tuple[ExperimentSpec, bytes]:
    config_text = _form_text("config")
    if not config_text:
        raise ConfigError(
            "the request needs the experiment config (form field 'config')", field="config"
        )
    search_space = None
    raw_space = _form_text("search_space")
    if raw_space:
        try:
            search_space = validate_search_space(json.loads(raw_space))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                field="search_space",
            ) from exc
    spec = parse_config(
        config_text,
        source=request.form.get("config_name", "<config>"),
        search_space=search_space,
    )
    if spec.platform not in available_platforms():
        raise ConfigError(
            f"platform {spec.platform!r} is not available in this deployment "
            f"(available: {', '.join(available_platforms())})",
            field="trainingServicePlatform",
        )
    code = request.files.get("code")
    if code is None:
        raise ConfigError("the request needs the code archive (file field 'code')", field="code")
    # Custom tuner/assessor code travels in the spec: the tuner cannot read the user's disk.
    algorithm_code = {
        role: upload.read()
        for role in ("tuner", "assessor")
        if (upload := request.files.get(f"{role}_code")) is not None
    }
    spec = attach_algorithm_code(
        spec, algorithm_code, allowed=_ctx().settings.tuner_allow_custom_algorithms
    )
    return spec, code.read()


def _summary(record: ExperimentRecord) -> dict[str, Any]:
    ctx = _ctx()
    mode = optimize_mode(record.spec)
    trials = ctx.store.list_trials(record.id)
    top = best(trials, mode)
    return {
        "id": record.id,
        "name": record.spec.get("name", ""),
        "status": record.status.value,
        "platform": record.spec.get("platform"),
        "created": record.created,
        "ended": record.ended,
        "message": record.message,
        "optimize_mode": mode,
        "max_trial_number": record.spec.get("max_trial_number"),
        "trial_concurrency": record.spec.get("trial_concurrency"),
        "max_experiment_duration": record.spec.get("max_experiment_duration"),
        "trial_counts": dict(Counter(t.status.value for t in trials)),
        "best": None if top is None else {"trial_id": top.id, "value": top.default_metric},
    }


@bp.post("/experiments")
def create_experiment() -> tuple[Response, int]:
    ctx = _ctx()
    spec, archive = _read_submission()
    exp_id = new_id()
    # The platform refuses what it cannot run (a missing operator CRD, no RBAC to create
    # jobs) before anything is staged or recorded.
    ctx.platform_for(spec).preflight(spec)
    storage = ctx.storage_for(spec)
    # Refuse bad storage settings (wrong key, missing secret, unreachable server) now,
    # before anything is staged or recorded, rather than in every trial later.
    storage.check()
    imported = _read_imports()
    staged = stage_experiment(storage, exp_id, archive, ctx.limits)
    now = time.time()
    record = ExperimentRecord(
        id=exp_id,
        spec=spec.model_dump(mode="json"),
        status=ExperimentStatus.RUNNING,
        created=now,
        updated=now,
        code_sha256=staged.sha256,
    )
    if imported:
        # Logged before the experiment exists for tuners, so the results reach the
        # tuner before its first suggestion (and again on every replay).
        ctx.store.append_event(
            Event(type="experiment.imported", experiment_id=exp_id, payload={"data": imported})
        )
    ctx.store.create_experiment(record)
    log.info("experiment created (%s)", spec.name, extra={"experiment_id": exp_id})
    return jsonify({"experiment_id": exp_id, "status": record.status.value}), 201


@bp.get("/experiments")
def list_experiments() -> Response:
    store = _ctx().store
    records = []
    for exp_id in store.list_experiment_ids():
        # An experiment deleted between the two reads is simply not listed.
        with contextlib.suppress(NotFoundError):
            records.append(store.get_experiment(exp_id))
    return jsonify({"experiments": [_summary(r) for r in reversed(records)]})


@bp.get("/experiments/<exp_id>")
def show_experiment(exp_id: str) -> Response:
    record = _ctx().store.get_experiment(known_id(exp_id, "experiment"))
    extra: dict[str, Any] = {}
    objectives = objectives_of(record.spec.get("extension"))
    if len(objectives) > 1:  # multi-objective: the trials no other trial beats everywhere
        extra["objectives"] = [o.model_dump() for o in objectives]
        extra["pareto_front"] = pareto_front(_ctx().store.list_trials(exp_id), objectives)
    return jsonify(
        {
            **_summary(record),
            **extra,
            "spec": public_spec(record.spec),
            "code_sha256": record.code_sha256,
        }
    )


@bp.post("/experiments/<exp_id>/stop")
def stop_experiment(exp_id: str) -> Response:
    ctx = _ctx()
    record = ctx.store.get_experiment(known_id(exp_id, "experiment"))
    if record.status.is_terminal:
        return jsonify({"experiment_id": exp_id, "status": record.status.value})
    ctx.store.transition_experiment(
        exp_id,
        ExperimentStatus.STOPPING,
        event_type="experiment.stopping",
        allowed_from=[s for s in ExperimentStatus if not s.is_terminal],
    )
    for trial in ctx.store.list_trials(exp_id):
        if trial.status in ACTIVE_TRIAL_STATUSES and ctx.store.transition_trial(
            exp_id,
            trial.id,
            TrialStatus.SYS_CANCELED,
            allowed_from=ACTIVE_TRIAL_STATUSES,
            fields={"message": "experiment stopped"},
        ):
            send(CANCEL_TRIAL_TASK, exp_id, trial.id)
    ctx.store.transition_experiment(
        exp_id,
        ExperimentStatus.STOPPED,
        event_type="experiment.stopped",
        allowed_from=[ExperimentStatus.STOPPING],
    )
    send(CLEANUP_EXPERIMENT_TASK, exp_id)
    return jsonify({"experiment_id": exp_id, "status": ExperimentStatus.STOPPED.value})

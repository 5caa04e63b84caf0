"""HTTP routes: metric and status reports from trial keepers."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel, ValidationError

from kubesweep.errors import ConflictError, KubesweepError, NotFoundError
from kubesweep.httperrors import error_body, error_response
from kubesweep.ids import is_valid_id
from kubesweep.store import Store
from kubesweep_collector.auth import is_authorised
from kubesweep_collector.publish import publish_metric, publish_status
from kubesweep_collector.reports import MetricReport, StatusReport

log = logging.getLogger(__name__)
bp = Blueprint("reports", __name__)

M = TypeVar("M", bound=BaseModel)

Reply = tuple[Response, int] | tuple[Response, int, dict[str, str]]


def _store() -> Store:
    store: Store = current_app.extensions["kubesweep.store"]
    return store


def _signing_key() -> str:
    key: str = current_app.extensions["kubesweep.signing_key"]
    return key


def _fail(status: int, code: str, message: str, field: str | None = None) -> Reply:
    if status == 401:
        return jsonify(error_body(code, message, field)), 401, {"WWW-Authenticate": "Bearer"}
    return jsonify(error_body(code, message, field)), status


def _parse(model: type[M]) -> M | Reply:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _fail(400, "invalid_input", "the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        return _fail(400, "invalid_input", first["msg"], field)


def _authorise(exp_id: str, trial_id: str, attempt: int) -> Reply | None:
    if not (is_valid_id(exp_id) and is_valid_id(trial_id)):
        return _fail(404, "not_found", "no such trial")
    if not is_authorised(request, _signing_key(), exp_id, trial_id, attempt):
        return _fail(401, "unauthorised", "a valid per-trial bearer token is required")
    return None


@bp.post("/api/v1/trials/<exp_id>/<trial_id>/metrics")
def post_metric(exp_id: str, trial_id: str) -> Reply:
    report = _parse(MetricReport)
    if not isinstance(report, MetricReport):
        return report
    denied = _authorise(exp_id, trial_id, report.attempt)
    if denied:
        return denied
    try:
        accepted = publish_metric(_store(), exp_id, trial_id, report)
    except KubesweepError as exc:
        body, status = error_response(exc)
        return jsonify(body), status
    if not accepted:
        return jsonify({"accepted": False, "duplicate": True}), 200
    return jsonify({"accepted": True}), 201


@bp.post("/api/v1/trials/<exp_id>/<trial_id>/status")
def post_status(exp_id: str, trial_id: str) -> Reply:
    report = _parse(StatusReport)
    if not isinstance(report, StatusReport):
        return report
    denied = _authorise(exp_id, trial_id, report.attempt)
    if denied:
        return denied
    store = _store()
    try:
        trial = store.get_trial(exp_id, trial_id)
        if trial.attempt != report.attempt:
            raise ConflictError(f"trial {trial_id!r} is on another attempt; this report is stale")
        applied = publish_status(store, exp_id, trial_id, report)
    except (NotFoundError, ConflictError) as exc:
        body, status = error_response(exc)
        return jsonify(body), status
    if not applied:
        current = store.get_trial(exp_id, trial_id).status
        return jsonify({"accepted": False, "status": current.value}), 200
    return jsonify({"accepted": True}), 201


@bp.get("/healthz")
def healthz() -> Reply:
    _store().redis.ping()
    payload: dict[str, Any] = {"status": "ok"}
    return jsonify(payload), 200

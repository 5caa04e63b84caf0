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
from kubesweep_collector.pressure import InflightGate, SaturatedError
from kubesweep_collector.publish import publish_status
from kubesweep_collector.reports import MetricBatch, MetricReport, StatusReport
from kubesweep_collector.writer import Metric, MetricWriter, StoreUnavailableError

log = logging.getLogger(__name__)
bp = Blueprint("reports", __name__)

M = TypeVar("M", bound=BaseModel)

Reply = Response | tuple[Response, int] | tuple[Response, int, dict[str, str]]

# The two answers nearly every report gets, built without a JSON encoder.
_ACCEPTED = b'{"accepted":true}\n'
_DUPLICATE = b'{"accepted":false,"duplicate":true}\n'


def _store() -> Store:
    store: Store = current_app.extensions["kubesweep.store"]
    return store


def _writer() -> MetricWriter:
    writer: MetricWriter = current_app.extensions["kubesweep.writer"]
    return writer


def _gate() -> InflightGate:
    gate: InflightGate = current_app.extensions["kubesweep.gate"]
    return gate


def _signing_key() -> str:
    key: str = current_app.extensions["kubesweep.signing_key"]
    return key


def _json(body: bytes, status: int) -> Response:
    return Response(body, status, mimetype="application/json")


def _fail(status: int, code: str, message: str, field: str | None = None) -> Reply:
    if status == 401:
        return jsonify(error_body(code, message, field)), 401, {"WWW-Authenticate": "Bearer"}
    return jsonify(error_body(code, message, field)), status


def _busy(status: int, code: str, message: str, retry_after: int) -> Reply:
    """429 (saturated) or 503 (Redis away): the keeper retries after ``Retry-After``."""
    return jsonify(error_body(code, message)), status, {"Retry-After": str(retry_after)}


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


def _record(exp_id: str, trial_id: str, attempt: int, metrics: list[Metric]) -> list[bool] | Reply:
    gate = _gate()
    try:
        with gate.admit():
            return _writer().record(exp_id, trial_id, attempt, metrics)
    except SaturatedError as exc:
        return _busy(429, "saturated", str(exc), exc.retry_after)
    except StoreUnavailableError as exc:
        log.warning("metric report for %s/%s not recorded: %s", exp_id, trial_id, exc)
        return _busy(503, "unavailable", str(exc), gate.retry_after)
    except KubesweepError as exc:
        body, status = error_response(exc)
        return jsonify(body), status


@bp.post("/api/v1/trials/<exp_id>/<trial_id>/metrics")
def post_metric(exp_id: str, trial_id: str) -> Reply:
    report = _parse(MetricReport)
    if not isinstance(report, MetricReport):
        return report
    denied = _authorise(exp_id, trial_id, report.attempt)
    if denied:
        return denied
    metric = Metric(report.type, report.sequence, report.value)
    recorded = _record(exp_id, trial_id, report.attempt, [metric])
    if not isinstance(recorded, list):
        return recorded
    return _json(_ACCEPTED, 201) if recorded[0] else _json(_DUPLICATE, 200)


@bp.post("/api/v1/trials/<exp_id>/<trial_id>/metrics/batch")
def post_metric_batch(exp_id: str, trial_id: str) -> Reply:
    """Several metrics of one attempt in one request and one Redis call; the keeper sends
    what queued up while it waited (e.g. after a 429)."""
    batch = _parse(MetricBatch)
    if not isinstance(batch, MetricBatch):
        return batch
    limit: int = current_app.config["KUBESWEEP_MAX_BATCH"]
    if len(batch.metrics) > limit:
        return _fail(
            400,
            "invalid_input",
            f"at most {limit} metrics per batch, got {len(batch.metrics)}; split the batch",
            "metrics",
        )
    denied = _authorise(exp_id, trial_id, batch.attempt)
    if denied:
        return denied
    metrics = [Metric(entry.type, entry.sequence, entry.value) for entry in batch.metrics]
    recorded = _record(exp_id, trial_id, batch.attempt, metrics)
    if not isinstance(recorded, list):
        return recorded
    accepted = sum(recorded)
    payload = {"accepted": accepted, "duplicates": len(recorded) - accepted}
    return jsonify(payload), 201 if accepted else 200


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
        with _gate().admit():
            trial = store.get_trial(exp_id, trial_id)
            if trial.attempt != report.attempt:
                raise ConflictError(
                    f"trial {trial_id!r} is on another attempt; this report is stale"
                )
            applied = publish_status(store, exp_id, trial_id, report)
            current = None if applied else store.get_trial(exp_id, trial_id).status
    except SaturatedError as exc:
        return _busy(429, "saturated", str(exc), exc.retry_after)
    except (NotFoundError, ConflictError) as exc:
        body, status = error_response(exc)
        return jsonify(body), status
    if current is not None:
        return jsonify({"accepted": False, "status": current.value}), 200
    return jsonify({"accepted": True}), 201


@bp.get("/healthz")
def healthz() -> Reply:
    _store().redis.ping()
    payload: dict[str, Any] = {"status": "ok"}
    return jsonify(payload), 200

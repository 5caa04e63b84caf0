"""The collector's Flask application factory."""

from __future__ import annotations

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from kubesweep.httperrors import error_body
from kubesweep.store import Store
from kubesweep_collector.pressure import InflightGate
from kubesweep_collector.routes import bp
from kubesweep_collector.settings import CollectorSettings
from kubesweep_collector.writer import MetricWriter


def create_app(settings: CollectorSettings, store: Store | None = None) -> Flask:
    app = Flask("kubesweep_collector")
    app.config["MAX_CONTENT_LENGTH"] = settings.collector_max_body_bytes
    app.config["KUBESWEEP_MAX_BATCH"] = settings.collector_max_batch
    store = store or Store.from_url(settings.redis_url)
    app.extensions["kubesweep.store"] = store
    app.extensions["kubesweep.writer"] = MetricWriter(store.redis, settings.collector_redis_timeout)
    app.extensions["kubesweep.gate"] = InflightGate(
        settings.inflight_limit,
        settings.collector_saturation_seconds,
        settings.collector_retry_after_seconds,
    )
    app.extensions["kubesweep.signing_key"] = settings.signing_key.get_secret_value()
    app.register_blueprint(bp)
    retry_after = str(settings.collector_retry_after_seconds)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(code, exc.description or exc.name)), exc.code or 500

    @app.errorhandler(RecursionError)
    def _too_deep(_: RecursionError) -> tuple[Response, int]:
        # JSON nested past the parser's recursion limit: bad input, not a server fault.
        message = "the request body is nested too deeply; send at most a few levels of JSON"
        return jsonify(error_body("invalid_input", message, "body")), 400

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def _redis_away(exc: Exception) -> tuple[Response, int, dict[str, str]]:
        # A status report or health check that found Redis away: retry, do not give up.
        body = error_body("unavailable", f"Redis did not answer: {type(exc).__name__}")
        return jsonify(body), 503, {"Retry-After": retry_after}

    return app

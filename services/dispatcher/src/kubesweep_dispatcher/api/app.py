"""The dispatcher API's Flask application factory."""

from __future__ import annotations

import logging

import redis
from celery import Celery
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from kubesweep.celeryapp import make_celery
from kubesweep.errors import ConfigError, KubesweepError
from kubesweep.httperrors import error_body, error_response
from kubesweep_dispatcher.api.auth import token_matches
from kubesweep_dispatcher.api.events import bp as events_bp
from kubesweep_dispatcher.api.events import follower_slots
from kubesweep_dispatcher.api.experiments import bp as experiments_bp
from kubesweep_dispatcher.api.manage import bp as manage_bp
from kubesweep_dispatcher.api.openapi import OPENAPI_PATH
from kubesweep_dispatcher.api.openapi import bp as openapi_bp
from kubesweep_dispatcher.api.trials import bp as trials_bp
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.webui import bp as webui_bp

log = logging.getLogger(__name__)


def create_app(ctx: DispatcherContext, celery: Celery | None = None) -> Flask:
    # The web UI blueprint serves its own assets; no app-wide /static route.
    app = Flask("kubesweep_dispatcher", static_folder=None)
    # The code archive is the largest part of a submission: NNI's limit plus headroom.
    app.config["MAX_CONTENT_LENGTH"] = ctx.settings.max_code_mb * 1024 * 1024 + 1024 * 1024
    app.extensions["kubesweep.ctx"] = ctx
    app.extensions["kubesweep.celery"] = celery or make_celery(ctx.settings.redis_url)
    app.extensions["kubesweep.event_followers"] = follower_slots(ctx.settings.api_threads)
    # `is not None`: an empty SecretStr is falsy, and must not read as "no token".
    secret = ctx.settings.api_token
    token = secret.get_secret_value() if secret is not None else None
    if token is not None and not token.strip():
        raise ConfigError(
            "is set but empty; set a real token, or unset it to listen on loopback only",
            field="KUBESWEEP_API_TOKEN",
        )

    @app.before_request
    def _authenticate() -> tuple[Response, int, dict[str, str]] | None:
        public = request.path == OPENAPI_PATH
        if request.path.startswith("/api/") and not public and not token_matches(request, token):
            body = error_body("unauthorised", "a valid bearer token is required")
            return jsonify(body), 401, {"WWW-Authenticate": "Bearer"}
        return None

    @app.get("/healthz")
    def _healthz() -> Response | tuple[Response, int]:
        try:
            ctx.store.redis.ping()
        except redis.RedisError:
            return jsonify(error_body("unavailable", "Redis does not answer")), 503
        return jsonify({"status": "ok"})

    @app.errorhandler(KubesweepError)
    def _kubesweep_error(exc: KubesweepError) -> tuple[Response, int]:
        body, status = error_response(exc)
        if status >= 500:
            log.error("request failed: %s", exc)
        return jsonify(body), status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(code, exc.description or exc.name)), exc.code or 500

    @app.errorhandler(RecursionError)
    def _too_deep(_: RecursionError) -> tuple[Response, int]:
        # JSON nested past the parser's recursion limit: bad input, not a server fault.
        message = "the request body is nested too deeply; send at most a few levels of JSON"
        return jsonify(error_body("invalid_input", message, "body")), 400

    for blueprint in (experiments_bp, trials_bp, manage_bp, events_bp, openapi_bp, webui_bp):
        app.register_blueprint(blueprint)
    return app

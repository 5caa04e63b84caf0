"""The collector's Flask application factory."""

from __future__ import annotations

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from kubesweep.httperrors import error_body
from kubesweep.store import Store
from kubesweep_collector.routes import bp
from kubesweep_collector.settings import CollectorSettings


def create_app(settings: CollectorSettings, store: Store | None = None) -> Flask:
    app = Flask("kubesweep_collector")
    app.config["MAX_CONTENT_LENGTH"] = settings.collector_max_body_bytes
    app.extensions["kubesweep.store"] = store or Store.from_url(settings.redis_url)
    app.extensions["kubesweep.signing_key"] = settings.signing_key.get_secret_value()
    app.register_blueprint(bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(code, exc.description or exc.name)), exc.code or 500

    return app

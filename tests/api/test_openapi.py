"""The OpenAPI document and the Flask routes describe the same API, both ways."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from pydantic import SecretStr

from kubesweep_dispatcher.api import create_app
from kubesweep_dispatcher.api.openapi import OPENAPI_PATH, build_spec
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.settings import DispatcherSettings
from kubesweep_dispatcher.webui import PAGES

TOKEN = "openapi-test-token"
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def app(redis_url: str) -> Flask:
    settings = DispatcherSettings(
        redis_url=redis_url, signing_key=SecretStr("k" * 32), api_token=SecretStr(TOKEN)
    )
    return create_app(DispatcherContext.from_settings(settings))


def _flask_operations(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("webui."):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method.lower() in METHODS:
                found.add((method.lower(), path))
    return found


def _spec_operations() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in build_spec()["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_documented_and_every_documented_route_exists(app: Flask) -> None:
    routes = _flask_operations(app)
    documented = _spec_operations()
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented operations without a route"
    assert len(routes) == 18


def test_every_operation_documents_its_answers() -> None:
    spec = build_spec()
    public = {"/healthz", OPENAPI_PATH}
    ids = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            ids.append(operation["operationId"])
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success, (method, path)
            assert all("content" in responses[code] for code in success), (method, path)
            if path not in public:
                assert "401" in responses, (method, path)
            # Every {param} in the path is declared.
            names = {
                p["name"] for p in item.get("parameters", []) + operation.get("parameters", [])
            }
            assert set(re.findall(r"{(\w+)}", path)) <= names, (method, path)
    assert len(ids) == len(set(ids)), "operationIds are unique"


def test_refs_resolve() -> None:
    spec = build_spec()
    text = str(spec)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in spec["components"]["schemas"], name


def test_document_is_served_without_a_token_and_the_api_is_not(app: Flask) -> None:
    client = app.test_client()
    served = client.get(OPENAPI_PATH)
    assert served.status_code == 200
    assert served.get_json() == build_spec()
    assert client.get("/api/v1/experiments").status_code == 401
    for page in PAGES:
        answer = client.get(page)
        assert answer.status_code == 200
        assert b'<script src="/ui/app.js"' in answer.data
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert client.get("/ui/app.js").status_code == 200
    assert client.get("/ui/../api/auth.py").status_code == 404


def test_schemathesis_accepts_the_document() -> None:
    import schemathesis

    schema = schemathesis.openapi.from_dict(build_spec())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 18

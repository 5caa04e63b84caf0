"""docker-compose.yml against the Compose Specification's JSON schema (vendored, see
schemas/NOTICE.md), plus the promises the file makes."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import yaml

from tests.helm.conftest import REPO

SCHEMA = REPO / "tests" / "helm" / "schemas" / "compose-spec.json"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose()), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_is_not_a_rubber_stamp() -> None:
    broken = compose()
    broken["services"]["api"]["enviroment"] = {"X": "1"}
    assert list(jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).iter_errors(broken))


def test_every_service_has_a_healthcheck_and_the_stack_is_complete() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "tuner", "api", "worker", "watch", "collector", "flower"}
    for name, service in services.items():
        assert "test" in service["healthcheck"], name


def test_redis_persists_with_aof_and_storage_is_shared_by_api_and_worker() -> None:
    data = compose()
    redis = data["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"]
    for name in ("api", "worker"):
        env = data["services"][name]["environment"]
        assert f"storage:{env['KUBESWEEP_STORAGE_ROOT']}" in data["services"][name]["volumes"]
    assert {"storage", "redis-data"} <= set(data["volumes"])


def test_flower_uses_the_broker_and_basic_auth_from_the_env_file() -> None:
    flower = compose()["services"]["flower"]
    assert flower["command"][:2] == ["celery", "--broker=redis://redis:6379/0"]
    assert "flower" in flower["command"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")


def test_secrets_go_only_where_they_are_needed() -> None:
    env = {name: s.get("environment", {}) for name, s in compose()["services"].items()}
    assert {n for n, e in env.items() if "KUBESWEEP_API_TOKEN" in e} == {"api"}
    with_key = {n for n, e in env.items() if "KUBESWEEP_SIGNING_KEY" in e}
    assert with_key == {"api", "worker", "watch", "collector"}

"""Property tests: schemathesis drives every operation of the served OpenAPI document against
a real dispatcher API (real Redis, worker and tuner on loopback), with experiments and trials
that exist. No answer may be a 5xx, break its schema, use an undocumented status or content
type, or ignore the bearer token."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from tests.integration.helpers import wait_for, write_experiment

pytestmark = pytest.mark.integration
MAX_EXAMPLES = int(os.environ.get("KUBESWEEP_FUZZ_EXAMPLES", "10"))
MISSING = "nosuchthing"
# Operations confined to their own experiment. Fuzzed updates (concurrency 100000, a
# billion trials) go only to an experiment that has ended and is never resumed, and only
# the small "to stop" experiment is resumed, so the fuzzing never starts a swarm of trials.
PINNED = {
    ("post", "/stop"): "stop",
    ("post", "/resume"): "stop",
    ("delete", "/{exp_id}"): "delete",
    ("patch", "/{exp_id}"): "patch",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def world(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A running experiment, a finished one, one to stop and one to delete."""
    client = ApiClient(stack.api_url, stack.api_token)
    root = tmp_path_factory.mktemp("experiments")
    done = client.submit(write_experiment(root / "done", trials=2, concurrency=2, steps=2))
    doomed = client.submit(write_experiment(root / "doomed", trials=1, concurrency=1))
    running = client.submit(write_experiment(root / "run", trials=4, concurrency=2, sleep=20))
    to_stop = client.submit(write_experiment(root / "stop", trials=5, concurrency=1, sleep=20))
    wait_for(client, done, {"DONE"}, timeout=60)
    wait_for(client, doomed, {"DONE"}, timeout=60)
    trials = [t["id"] for e in (done, running) for t in client.trials(e)]
    return {
        "experiments": [done, running, MISSING],
        "stop": [to_stop, MISSING],
        "delete": [doomed, MISSING],
        "patch": [done, MISSING],
        "trials": [*trials, MISSING],
    }


def _pin(schema: dict[str, Any], world: dict[str, Any]) -> dict[str, Any]:
    """Path parameters drawn from resources that exist (plus one that does not), so the
    generated requests reach real experiments and trials instead of only 404s."""
    spec = copy.deepcopy(schema)
    choices = {
        "exp_id": world["experiments"],
        "trial_id": world["trials"],
        "name": ["parameter.cfg", "output/local-0/trial.log", "output/local-0/stdout", "a/../b"],
    }
    for path, item in spec["paths"].items():
        for param in item.get("parameters", []):
            if param["name"] in choices:
                param["schema"] = {"type": "string", "enum": choices[param["name"]]}
        for (method, suffix), key in PINNED.items():
            if path.endswith(suffix) and method in item:
                item[method]["parameters"] = [
                    *item[method].get("parameters", []),
                    {
                        "name": "exp_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": world[key]},
                    },
                ]
    # A followed stream never ends by itself; the property tests read replays only.
    for param in spec["paths"]["/api/v1/experiments/{exp_id}/events"]["get"]["parameters"]:
        if param["name"] == "follow":
            param["required"] = True
            param["schema"] = {"type": "boolean", "enum": [False]}
    return spec


@pytest.fixture(scope="module")
def api_schema(stack: EmbeddedStack, world: dict[str, Any]) -> Any:
    served = requests.get(f"{stack.api_url}/api/v1/openapi.json", timeout=10).json()
    return schemathesis.openapi.from_dict(_pin(served, world))


def _fuzz(operation: Any, stack: EmbeddedStack) -> None:
    # schemathesis.pytest.from_fixture does not run under pytest 9 (it reads a private
    # pytest attribute), so each operation gets its own Hypothesis test here.
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=stack.api_url,
            headers={"Authorization": f"Bearer {stack.api_token}"},
            timeout=30,
            # The document describes syntax; a config or search space can be well-formed
            # and still wrong, and then the right answer is a 400 naming the field.
            excluded_checks=[positive_data_acceptance],
        )

    run()


def test_api_conforms_to_its_openapi_document(
    api_schema: Any, stack: EmbeddedStack, world: dict[str, Any]
) -> None:
    assert len(world["trials"]) >= 3, "the pinned ids are real trials"
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 18  # every route of the API
    for operation in operations:
        try:
            _fuzz(operation, stack)
        except Exception as exc:  # one report for every operation that fails
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())

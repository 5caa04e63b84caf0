"""Property tests of the NNI v1/v2 config loader: arbitrary text and mutated real configs
either load or raise a ConfigError that names a field; nothing else escapes. Equivalent v1
and v2 configs load to the same experiment, and loading is stable under a YAML round trip."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesweep.config import ExperimentSpec, parse_config
from kubesweep.errors import ConfigError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}}

V2: dict[str, Any] = {
    "experimentName": "fuzz",
    "searchSpace": SPACE,
    "trialCommand": "python3 trial.py",
    "trialCodeDirectory": ".",
    "trialConcurrency": 2,
    "maxTrialNumber": 10,
    "maxExperimentDuration": "1h",
    "tuner": {"name": "TPE", "classArgs": {"optimize_mode": "maximize"}},
    "assessor": {"name": "Medianstop", "classArgs": {"optimize_mode": "maximize"}},
    "trainingService": {"platform": "local"},
}
V2_KUBEFLOW: dict[str, Any] = {
    **{k: v for k, v in V2.items() if k not in ("trialCommand", "trainingService")},
    "trainingService": {
        "platform": "kubeflow",
        "operator": "tf-operator",
        "apiVersion": "v1",
        "storage": {"storageType": "nfs", "server": "10.0.0.1", "path": "/exports"},
        "worker": {
            "replicas": 2,
            "command": "python3 trial.py",
            "gpuNumber": 0,
            "cpuNumber": 1,
            "memorySize": "2g",
            "dockerImage": "python:3.11",
            "codeDirectory": ".",
        },
    },
}
V1: dict[str, Any] = {
    "authorName": "fuzz",
    "experimentName": "fuzz",
    "trialConcurrency": 2,
    "maxExecDuration": "1h",
    "maxTrialNum": 10,
    "trainingServicePlatform": "local",
    "useAnnotation": False,
    "tuner": {"builtinTunerName": "TPE", "classArgs": {"optimize_mode": "maximize"}},
    "trial": {"command": "python3 trial.py", "codeDir": ".", "gpuNum": 0},
}
BASES = {"v2": V2, "v2-kubeflow": V2_KUBEFLOW, "v1": V1}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def _load(text: str) -> ExperimentSpec | ConfigError:
    """Whatever the loader does with ``text``: a spec, or the ConfigError it raised.
    Any other exception fails the test."""
    try:
        return parse_config(text, search_space=None)
    except ConfigError as exc:
        error = exc
    assert error.field, f"no field named: {error}"
    assert error.reason.strip(), "an empty message"
    return error


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out += _paths(value, (*prefix, index))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any, *, delete: bool = False) -> None:
    for key in path[:-1]:
        doc = doc[key]
    if delete:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text_loads_or_names_a_field(text: str) -> None:
    _load(text)


@FUZZ
@given(
    st.sampled_from(sorted(BASES)),
    st.data(),
)
def test_mutated_configs_load_or_name_a_field(base: str, data: st.DataObject) -> None:
    doc = copy.deepcopy(BASES[base])
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            _set(doc, path, data.draw(json_values))
        elif action == "delete":
            _set(doc, path, None, delete=True)
        else:
            parent: Any = doc
            for key in path[:-1]:
                parent = parent[key]
            if isinstance(parent, dict):
                parent[data.draw(st.text(min_size=1, max_size=10))] = data.draw(json_values)
    style = data.draw(st.sampled_from(["block", "flow", "json"]))
    text = (
        json.dumps(doc)
        if style == "json"
        else yaml.safe_dump(doc, default_flow_style=style == "flow")
    )
    _load(text)


@FUZZ
@given(st.sampled_from(sorted(BASES)), st.data())
def test_garbled_yaml_text_loads_or_names_a_field(base: str, data: st.DataObject) -> None:
    text = yaml.safe_dump(BASES[base], sort_keys=False)
    cut = data.draw(st.integers(0, len(text)))
    insert = data.draw(
        st.sampled_from(
            ["\t", ":", "- ", "{", "[", "'", '"', "&a ", "*a", "\n  ", "!!python/object "]
        )
    )
    _load(text[:cut] + insert + text[cut:])


@st.composite
def valid_v2(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(V2)
    doc["trialConcurrency"] = draw(st.integers(1, 1000))
    doc["maxTrialNumber"] = draw(st.integers(1, 10**6))
    doc["experimentName"] = draw(
        st.text(st.characters(codec="ascii", min_codepoint=32), min_size=1, max_size=20)
    )
    doc["trialCommand"] = draw(
        st.text(st.characters(codec="ascii", min_codepoint=33), min_size=1, max_size=30)
    )
    doc["maxExperimentDuration"] = f"{draw(st.integers(1, 999))}{draw(st.sampled_from('smhd'))}"
    doc["tuner"] = {
        "name": draw(st.sampled_from(["TPE", "Random", "Anneal", "Evolution"])),
        "classArgs": {"optimize_mode": draw(st.sampled_from(["maximize", "minimize"]))},
    }
    return doc


@FUZZ
@given(valid_v2())
def test_valid_v2_configs_load_and_survive_a_yaml_round_trip(doc: dict[str, Any]) -> None:
    spec = parse_config(yaml.safe_dump(doc))
    assert spec.trial_concurrency == doc["trialConcurrency"]
    assert spec.max_trial_number == doc["maxTrialNumber"]
    assert spec.trial_command == doc["trialCommand"]
    assert spec.search_space == SPACE
    assert spec.tuner.name == doc["tuner"]["name"]
    # The same document as JSON and as flow-style YAML gives the same experiment.
    assert parse_config(json.dumps(doc)) == spec
    assert parse_config(yaml.safe_dump(doc, default_flow_style=True)) == spec


@FUZZ
# NNI v1 caps maxTrialNum at 99999.
@given(st.integers(1, 1000), st.integers(1, 99_999), st.sampled_from(["maximize", "minimize"]))
def test_equivalent_v1_and_v2_configs_give_the_same_experiment(
    concurrency: int, trials: int, mode: str
) -> None:
    v1 = {**copy.deepcopy(V1), "trialConcurrency": concurrency, "maxTrialNum": trials}
    v1["tuner"]["classArgs"]["optimize_mode"] = mode
    v2 = {**copy.deepcopy(V2), "trialConcurrency": concurrency, "maxTrialNumber": trials}
    del v2["assessor"]
    v2["tuner"]["classArgs"]["optimize_mode"] = mode
    one = parse_config(yaml.safe_dump(v1), search_space=SPACE)
    two = parse_config(yaml.safe_dump(v2), search_space=SPACE)
    ignore = {"source_format", "author", "name", "description", "extension"}
    assert one.model_dump(exclude=ignore) == two.model_dump(exclude=ignore)


@pytest.mark.parametrize(
    ("style", "depth"),
    [(s, d) for s in ("yaml-flow", "json") for d in (100, 1000, 100_000)]
    + [("yaml-block", 100), ("yaml-block", 1000)],
)
def test_deep_nesting_is_a_config_error(style: str, depth: int) -> None:
    if style == "json":
        text = '{"experimentName": ' + "[" * depth + "1" + "]" * depth + "}"
    elif style == "yaml-flow":
        text = "experimentName: " + "[" * depth + "1" + "]" * depth + "\n"
    else:
        text = "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + "  " * depth + "v: 1\n"
    result = _load(text)
    assert isinstance(result, ConfigError)

"""Every KUBESWEEP_* variable the chart or docker-compose.yml sets is a field of the receiving
service's settings model. The models ignore unknown variables (``extra="ignore"``), so a typo
(KUBESWEEP_WORKER_CONCURENCY) or a renamed field would otherwise be dropped without a word.
Rendered values must also parse: each container's plain values build its settings model."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from kubesweep_collector.settings import CollectorSettings
from kubesweep_dispatcher.settings import DispatcherSettings
from kubesweep_tuner.settings import TunerSettings
from tests.helm.conftest import REPO, VARIANTS, Render, containers

PREFIX = "KUBESWEEP_"
# The module a container runs decides which settings model reads its environment.
MODELS: dict[str, type[BaseSettings]] = {
    "kubesweep_dispatcher": DispatcherSettings,
    "kubesweep_tuner": TunerSettings,
    "kubesweep_collector": CollectorSettings,
}


def cli_variables() -> set[str]:
    """What the kubesweep CLI reads from the environment (the helm test Pod uses the CLI)."""
    source = "\n".join(p.read_text() for p in (REPO / "shared/src/kubesweep/cli").glob("*.py"))
    return set(re.findall(r"""environ(?:\.get\(|\[)["'](KUBESWEEP_[A-Z_]+)""", source))


def env_names(model: type[BaseSettings]) -> set[str]:
    return {PREFIX + name.upper() for name in model.model_fields}


def required_names(model: type[BaseSettings]) -> set[str]:
    return {PREFIX + n.upper() for n, f in model.model_fields.items() if f.is_required()}


def model_for(command: list[str]) -> type[BaseSettings] | None:
    if command[:2] == ["python", "-m"]:
        return MODELS[command[2]]
    return None


def check_container(
    where: str, command: list[str], env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``env``: name -> plain value, or None for a value from a Secret."""
    ours = {name for name in env if name.startswith(PREFIX)}
    model = model_for(command)
    if model is None:
        # Not a kubesweep service: Flower, or the helm test Pod running the CLI client.
        allowed = cli_variables() if "kubesweep.cli" in " ".join(command) else set()
        assert ours <= allowed, f"{where}: {sorted(ours - allowed)} are read by nobody"
        return
    unknown = ours - env_names(model)
    assert not unknown, f"{where}: {sorted(unknown)} are not fields of {model.__name__}"
    missing = required_names(model) - ours
    assert not missing, f"{where}: required {sorted(missing)} not set"
    # The values must parse as the model's types (e.g. "4.0" for the nfs_version Literal).
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith(PREFIX):
            monkeypatch.setenv(name, "from-a-secret" if value is None else value)
    model()


@pytest.mark.helm
@pytest.mark.parametrize("variant", VARIANTS)
def test_chart_sets_only_settings_fields(
    render: Render, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = 0
    for obj in render(variant):
        for container in containers(obj):
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            where = f"{variant}: {obj['kind']} {obj['metadata']['name']}/{container['name']}"
            check_container(where, container["command"], env, monkeypatch)
            checked += 1
    assert checked >= 5


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    return services


def interpolate(value: Any) -> str:
    """Compose's ${VAR:-default} / ${VAR:?error} with an empty environment (secrets: dummy)."""
    text = str(value)
    text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)
    return re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "from-the-env-file", text)


def test_compose_sets_only_settings_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = 0
    for name, service in compose_services().items():
        if "command" not in service:
            continue
        env = {k: interpolate(v) for k, v in (service.get("environment") or {}).items()}
        check_container(f"compose {name}", service["command"], env, monkeypatch)
        checked += 1
    assert checked == 7


def test_env_example_documents_every_required_compose_variable() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    optional = set(re.findall(r"\$\{([A-Z_]+):-", text))
    example = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z_]+)=", example, flags=re.MULTILINE))
    assert required <= documented
    assert optional <= documented

"""The Dockerfile without a Docker engine: one file parametrised by SERVICE builds each image,
every command the chart and docker-compose.yml run exists in the image that runs it, and (marked
image_build) the build stage's COPY + `uv sync` steps replayed into a temporary venv for each
SERVICE produce a working service."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.conftest import REPO, VARIANTS, Render, containers

SERVICES = ("tuner", "dispatcher", "collector")
DOCKERFILE = REPO / "Dockerfile"


def instructions(path: Path) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def stages(lines: list[str]) -> list[list[str]]:
    found: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM"):
            found.append([])
        if found:
            found[-1].append(line)
    return found


def test_every_stage_that_uses_service_declares_it() -> None:
    # A global ARG is visible only to FROM lines; a stage must re-declare it to use it.
    lines = instructions(DOCKERFILE)
    assert "ARG SERVICE=dispatcher" in lines[: lines.index(next(x for x in lines if "FROM" in x))]
    for stage in stages(lines):
        if any("${SERVICE}" in line for line in stage[1:]):
            assert "ARG SERVICE" in stage, stage[0]


def test_compose_builds_each_image_from_its_service() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    built = {name: spec for name, spec in services.items() if "build" in spec}
    assert built
    for spec in built.values():
        service = spec["build"]["args"]["SERVICE"]
        assert service in SERVICES
        assert spec["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
        assert spec["image"].startswith(f"kubesweep-{service}:")


def test_dockerfile_shape() -> None:
    lines = instructions(DOCKERFILE)
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in lines
    assert sum(line.startswith("FROM") for line in lines) == 3  # uv, build, runtime
    runtime = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM")) :]
    assert "USER 10001:10001" in runtime
    assert "COPY --from=build /app/.venv /app/.venv" in runtime
    assert not any(line.startswith("COPY") and "--from" not in line for line in runtime)
    syncs = [line for line in lines if "uv sync" in line]
    for line in syncs:
        assert "--locked --no-dev" in line
        assert "--package kubesweep-${SERVICE}" in line
    assert "--no-editable" in syncs[-1]


# ---------------------------------------------------------------- commands exist in the image


def package_modules(service: str) -> set[str]:
    return {p.name for p in (REPO / "services" / service / "src").iterdir() if p.is_dir()}


def dispatcher_roles() -> set[str]:
    source = (REPO / "services/dispatcher/src/kubesweep_dispatcher/__main__.py").read_text()
    match = re.search(r'add_argument\("role",[^)]*choices=\[([^\]]*)\]', source)
    assert match, "the dispatcher's role argument moved; update this test"
    return set(re.findall(r'"(\w+)"', match.group(1)))


def check_command(image: str, command: list[str]) -> None:
    service = next((s for s in SERVICES if f"kubesweep-{s}:" in image), None)
    if service is None:
        assert image.startswith(("mher/flower:", "redis:")), image
        return
    if command[:2] == ["python", "-c"]:  # probes and the helm test script: must compile
        compile(command[2], image, "exec")
        return
    assert command[:2] == ["python", "-m"], command
    module = command[2]
    assert module in package_modules(service), f"{module} is not in the {service} image"
    assert (REPO / "services" / service / "src" / module / "__main__.py").is_file()
    if module == "kubesweep_dispatcher":
        assert len(command) == 4
        assert command[3] in dispatcher_roles()
    else:
        assert len(command) == 3


def commands_of(container: dict[str, Any]) -> list[list[str]]:
    found = [container["command"]]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        exec_probe = container.get(probe, {}).get("exec")
        if exec_probe:
            found.append(exec_probe["command"])
    return found


@pytest.mark.helm
@pytest.mark.parametrize("variant", VARIANTS)
def test_chart_commands_exist_in_their_images(render: Render, variant: str) -> None:
    for obj in render(variant):
        for container in containers(obj):
            for command in commands_of(container):
                check_command(container["image"], command)


def test_compose_and_dockerfile_commands_exist_in_their_images() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for service in services.values():
        check_command(service["image"], service["command"])
        test = service["healthcheck"]["test"]
        if test[:2] == ["CMD", "python"]:
            check_command(service["image"], test[1:])
    lines = instructions(DOCKERFILE)
    cmd = next(line for line in lines if line.startswith("CMD"))
    assert yaml.safe_load(cmd.removeprefix("CMD ")) == ["kubesweep-service"]
    assert 'RUN ln -s "kubesweep-${SERVICE}" /app/.venv/bin/kubesweep-service' in lines
    for service in SERVICES:  # the console script the link names exists in each image
        meta = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())
        assert f"kubesweep-{service}" in meta["project"]["scripts"]


def test_helm_test_script_uses_only_what_the_dispatcher_image_has() -> None:
    deps = tomllib.loads((REPO / "services/dispatcher/pyproject.toml").read_text())
    assert "kubesweep" in deps["project"]["dependencies"]  # kubesweep.cli.client is in there
    from kubesweep.cli.client import ApiClient

    for method in ("discover", "submit", "experiment", "stop", "delete"):
        assert hasattr(ApiClient, method)


def test_dispatcher_cli_accepts_every_role_and_refuses_others() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBESWEEP_")}
    for role in dispatcher_roles():
        done = subprocess.run(
            [sys.executable, "-m", "kubesweep_dispatcher", role, "--help"],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "kubesweep_dispatcher", "nonsense"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2


# ---------------------------------------------------------------- the build, replayed


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def in_context(relpath: str, patterns: list[str]) -> bool:
    """Docker's rule, approximately: the last matching pattern wins; `!` re-includes; a pattern
    matching a parent directory matches everything below it."""
    parts = relpath.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        pat_parts = pat.split("/")
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(p, pat[3:]) for p in parts)
        else:
            hit = any(
                len(pre.split("/")) == len(pat_parts) and fnmatch.fnmatchcase(pre, pat)
                for pre in prefixes
            )
        if hit:
            included = negate
    return included


def copy_into(source: Path, dest: Path, into_dir: bool, patterns: list[str]) -> None:
    """Docker's COPY of a file or a folder's content, limited to the build context."""
    if source.is_file():
        pairs = [(source, dest / source.name if into_dir else dest)]
    else:
        pairs = [(p, dest / p.relative_to(source)) for p in source.rglob("*") if p.is_file()]
    for path, target in pairs:
        if in_context(path.relative_to(REPO).as_posix(), patterns):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def replay_build_stage(dockerfile: Path, service: str, context: Path, venv: Path) -> None:
    """COPY (from the build context, honouring .dockerignore) and RUN the build stage's steps,
    with the build argument SERVICE set as `docker build --build-arg SERVICE=...` would."""
    lines = [line.replace("${SERVICE}", service) for line in instructions(dockerfile)]
    start = next(i for i, line in enumerate(lines) if re.match(r"FROM \S+ AS build$", line))
    stage = []
    for line in lines[start + 1 :]:
        if line.startswith("FROM"):
            break
        stage.append(line)
    patterns = dockerignore()
    env: dict[str, str] = {}
    workdir = context
    for line in stage:
        op, _, rest = line.partition(" ")
        if op == "ARG":
            continue
        if op == "ENV":
            env.update(dict(part.split("=", 1) for part in shlex.split(rest)))
        elif op == "WORKDIR":
            workdir = context / "workdir"
            workdir.mkdir(parents=True, exist_ok=True)
        elif op == "COPY" and "--from=" not in rest:
            *sources, dest = shlex.split(rest)
            for source in sources:
                copy_into(REPO / source, workdir / dest, dest.endswith("/"), patterns)
        elif op == "RUN":
            command = re.sub(r"--mount=\S+\s*", "", rest)
            run_env = {
                **os.environ,
                **env,
                # Not the image's paths: a temp venv and this machine's Python 3.11; offline,
                # from the uv cache `uv run pytest` filled (nothing is fetched at test time).
                "UV_PROJECT_ENVIRONMENT": str(venv),
                "UV_PYTHON": "3.11",
                "UV_OFFLINE": "1",
            }
            run_env.pop("VIRTUAL_ENV", None)
            done = subprocess.run(
                command, shell=True, cwd=workdir, env=run_env, capture_output=True, text=True,
                timeout=600, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"{command}\n{done.stderr}"


@pytest.mark.image_build
@pytest.mark.parametrize("service", SERVICES)
def test_build_stage_replayed_yields_a_working_service(service: str, tmp_path: Path) -> None:
    if shutil.which("uv") is None:
        pytest.skip("uv not on PATH")
    venv = tmp_path / "venv"
    replay_build_stage(DOCKERFILE, service, tmp_path / "context", venv)
    python = venv / "bin" / "python"
    module = f"kubesweep_{service}"
    others = [f"kubesweep_{s}" for s in SERVICES if s != service]
    probe = (
        "import importlib.util, sys\n"
        f"import {module}.__main__ as main, {module}.settings\n"
        "assert callable(main.main)\n"
        "assert main.__file__.startswith(sys.prefix), 'installed editable: ' + main.__file__\n"
        f"assert not any(importlib.util.find_spec(m) for m in {others!r}), 'foreign service'\n"
        "import kubesweep.cli.client, kubesweep.heartbeat, redis\n"
    )
    done = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    if service == "dispatcher":
        done = subprocess.run(
            [str(python), "-m", module, "worker", "--help"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    if service == "collector":  # the collector, reachable by trial code, carries no cloud clients
        done = subprocess.run(
            [str(python), "-c", "import kubernetes"], capture_output=True, timeout=60, check=False
        )
        assert done.returncode != 0

"""A small HTTP client for the dispatcher API, used by every CLI command."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from kubesweep.codearchive import Limits, pack
from kubesweep.config import load_config_file
from kubesweep.config.custom import pack_algorithm_code
from kubesweep.errors import ConfigError, KubesweepError, NotFoundError, TransientError
from kubesweep.importdata import load_results_file

DEFAULT_URL = "http://127.0.0.1:8080"


def state_dir() -> Path:
    return Path(os.environ.get("KUBESWEEP_HOME", "~/.kubesweep")).expanduser()


def connection_file() -> Path:
    """Where a running ``kubesweep run`` tells other commands how to reach it."""
    return state_dir() / "current.json"


def write_connection(url: str, token: str) -> Path:
    path = connection_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "token": token}, handle)
    return path


class ApiError(KubesweepError):
    """The API answered with an error; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


@dataclass
class ApiClient:
    url: str
    token: str | None = None
    timeout: float = 60.0

    @classmethod
    def discover(cls, url: str | None = None, token: str | None = None) -> ApiClient:
        """Flags, then environment, then the running embedded stack, then the default."""
        url = url or os.environ.get("KUBESWEEP_API_URL")
        token = token or os.environ.get("KUBESWEEP_API_TOKEN")
        if not url and connection_file().is_file():
            saved = json.loads(connection_file().read_text())
            url, token = saved["url"], token or saved.get("token")
        return cls(url or DEFAULT_URL, token)

    def _request(self, method: str, path: str, *, raw: bool = False, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = requests.request(
                method,
                f"{self.url.rstrip('/')}{path}",
                headers=headers,
                timeout=self.timeout,
                **kwargs,
            )
        except requests.ConnectionError as exc:
            raise TransientError(
                f"cannot reach the kubesweep API at {self.url}; is it running? "
                "(start one with `kubesweep run`, or set KUBESWEEP_API_URL)"
            ) from exc
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message, field = error["message"], error.get("field")
            except (ValueError, KeyError, TypeError):
                message, field = response.text[:500] or response.reason, None
            if response.status_code == 404:
                raise NotFoundError(message)
            raise ApiError(response.status_code, message, field)
        return response.text if raw else response.json()

    def submit(
        self,
        config_path: Path,
        limits: Limits | None = None,
        *,
        import_file: Path | None = None,
    ) -> str:
        """Validate the config locally, pack its code directory and post the experiment.

        ``import_file`` (NNI/kubesweep export, JSON or CSV) warm-starts the tuner: the
        results reach it before its first suggestion."""
        spec = load_config_file(config_path)
        imported = None
        if import_file is not None:
            imported = load_results_file(import_file, list(spec.search_space))
        code_dir = Path(spec.trial_code_directory)
        if not code_dir.is_dir():
            raise ConfigError(
                f"{code_dir} does not exist or is not a folder", field="trialCodeDirectory"
            )
        archive, _ = pack(code_dir, limits or Limits())
        files = {"code": ("code.tar.gz", archive, "application/gzip")}
        for role, algorithm_code in pack_algorithm_code(spec).items():
            files[f"{role}_code"] = (f"{role}.tar.gz", algorithm_code, "application/gzip")
        reply = self._request(
            "POST",
            "/api/v1/experiments",
            data={
                "config": config_path.read_text(encoding="utf-8"),
                "config_name": config_path.name,
                "search_space": json.dumps(spec.search_space),
                **({"import": json.dumps(imported)} if imported is not None else {}),
            },
            files=files,
        )
        return str(reply["experiment_id"])

    def experiments(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/api/v1/experiments")["experiments"])

    def experiment(self, exp_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/api/v1/experiments/{exp_id}"))

    def stop(self, exp_id: str) -> dict[str, Any]:
        return dict(self._request("POST", f"/api/v1/experiments/{exp_id}/stop"))

    def trials(
        self, exp_id: str, *, status: str | None = None, sort: str = "seq"
    ) -> list[dict[str, Any]]:
        params = {"sort": sort, **({"status": status} if status else {})}
        reply = self._request("GET", f"/api/v1/experiments/{exp_id}/trials", params=params)
        return list(reply["trials"])

    def update(self, exp_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return dict(self._request("PATCH", f"/api/v1/experiments/{exp_id}", json=changes))

    def resume(self, exp_id: str) -> dict[str, Any]:
        return dict(self._request("POST", f"/api/v1/experiments/{exp_id}/resume"))

    def delete(self, exp_id: str, *, purge: bool = False) -> dict[str, Any]:
        params = {"purge": "true" if purge else "false"}
        return dict(self._request("DELETE", f"/api/v1/experiments/{exp_id}", params=params))

    def export(self, exp_id: str, fmt: str = "json") -> Any:
        return self._request(
            "GET", f"/api/v1/experiments/{exp_id}/export", params={"format": fmt}, raw=fmt != "json"
        )

    def import_results(self, exp_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self._request("POST", f"/api/v1/experiments/{exp_id}/import", json=rows))

    def metrics(self, exp_id: str, trial_id: str) -> list[dict[str, Any]]:
        path = f"/api/v1/experiments/{exp_id}/trials/{trial_id}/metrics"
        return list(self._request("GET", path)["metrics"])

    def files(self, exp_id: str, trial_id: str, path: str = "") -> dict[str, Any]:
        url = f"/api/v1/experiments/{exp_id}/trials/{trial_id}/files"
        return dict(self._request("GET", url, params={"path": path} if path else None))

    def read_file(self, exp_id: str, trial_id: str, path: str) -> str:
        url = f"/api/v1/experiments/{exp_id}/trials/{trial_id}/files/{path}"
        return str(self._request("GET", url, raw=True))

    def cancel_trial(self, exp_id: str, trial_id: str) -> dict[str, Any]:
        return dict(self._request("POST", f"/api/v1/experiments/{exp_id}/trials/{trial_id}/cancel"))

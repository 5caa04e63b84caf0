"""Where an experiment's files live under the storage root (ARCHITECTURE §4)."""

from __future__ import annotations

from kubesweep.ids import check_id

ROOT = "kubesweep"


def experiment(exp_id: str) -> str:
    return f"{ROOT}/{check_id(exp_id, 'experiment_id')}"


def code(exp_id: str) -> str:
    return f"{experiment(exp_id)}/code"


def manifest(exp_id: str) -> str:
    return f"{experiment(exp_id)}/code.manifest.json"


def runtime(exp_id: str) -> str:
    return f"{experiment(exp_id)}/runtime"


def trial(exp_id: str, trial_id: str) -> str:
    return f"{experiment(exp_id)}/trials/{check_id(trial_id, 'trial_id')}"


def parameter_file(exp_id: str, trial_id: str) -> str:
    return f"{trial(exp_id, trial_id)}/parameter.cfg"


def output(exp_id: str, trial_id: str, role: str = "local", index: int = 0) -> str:
    return f"{trial(exp_id, trial_id)}/output/{role}-{index}"

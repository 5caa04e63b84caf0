"""Where an experiment's files live under the storage root (ARCHITECTURE §4)."""

from __future__ import annotations

from kubesweep.ids import check_id

ROOT = "kubesweep"
ATTEMPTS = "attempts"


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


def attempt_folder(exp_id: str, trial_id: str, attempt: int = 1) -> str:
    """The folder holding one attempt's ``output/``: the trial folder itself for attempt 1
    (NNI's layout), ``attempts/<n>`` inside it for a retry, so a new attempt never finds
    the previous one's ``keeper.lock`` (which would replay its exit code instead of running)."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    base = trial(exp_id, trial_id)
    return base if attempt == 1 else f"{base}/{ATTEMPTS}/{attempt}"


def output(
    exp_id: str, trial_id: str, role: str = "local", index: int = 0, *, attempt: int = 1
) -> str:
    return f"{attempt_folder(exp_id, trial_id, attempt)}/output/{role}-{index}"


def stored_path(relpath: str, current_attempt: int) -> str:
    """Where a path as the files API shows it (relative to the trial folder) is stored.

    ``output[/...]`` is the *current* attempt's output, so ``kubesweep trial log`` shows the
    attempt that runs now; ``attempts/<n>/output[/...]`` is attempt n's (``attempts/1`` too,
    although attempt 1 lives in ``output`` itself); anything else is taken as it is."""
    head, _, rest = relpath.partition("/")
    if head == "output" and current_attempt > 1:
        return f"{ATTEMPTS}/{current_attempt}/{relpath}"
    if head == ATTEMPTS:
        number, _, inner = rest.partition("/")
        if number == "1" and (inner == "output" or inner.startswith("output/")):
            return inner
    return relpath

"""Runs inside bench/.nni-venv (NNI 3.0): one local-mode experiment of N trials of a
fixed-length command at concurrency C, the same workload as local_throughput.py. Prints one
JSON line of figures. Not imported by kubesweep: started by local_throughput.py --nni."""

import json
import sys
import tempfile
import time
from pathlib import Path

import nni.experiment.launcher as launcher
from nni.experiment import Experiment

# NNI gives its Node.js manager 3 one-second retries to come up, too few on a busy 2-core
# machine (it then aborts); waiting longer changes nothing else, and the wait is timed.
_check = launcher._check_rest_server
launcher._check_rest_server = lambda port, retry=3, url_prefix=None: _check(port, 60, url_prefix)

TRIAL = """\
import random, time, nni
nni.get_next_parameter()
time.sleep({sleep})
nni.report_final_result(random.random())
"""


def main() -> None:
    trials, concurrency, sleep, port = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        float(sys.argv[3]),
        int(sys.argv[4]),
    )
    with tempfile.TemporaryDirectory(prefix="nni-bench-") as temp:
        code = Path(temp) / "code"
        code.mkdir()
        (code / "trial.py").write_text(TRIAL.format(sleep=sleep))
        exp = Experiment("local")
        exp.config.experiment_working_directory = str(Path(temp) / "work")
        exp.config.trial_command = f"{sys.executable} trial.py"
        exp.config.trial_code_directory = str(code)
        exp.config.search_space = {"x": {"_type": "uniform", "_value": [0, 1]}}
        exp.config.tuner.name = "Random"
        exp.config.max_trial_number = trials
        exp.config.trial_concurrency = concurrency
        started = time.time()
        exp.start(port)
        try:
            while exp.get_status() not in ("DONE", "STOPPED", "ERROR"):
                if time.time() - started > 1800:
                    raise RuntimeError("NNI experiment did not finish in 30 min")
                time.sleep(0.2)
            wall = time.time() - started
            status = exp.get_status()
            jobs = exp.list_trial_jobs()
        finally:
            exp.stop()
    starts = [j.startTime / 1000 for j in jobs if getattr(j, "startTime", None)]
    ideal = trials * sleep / concurrency
    print(
        json.dumps(
            {
                "status": status,
                "trials": trials,
                "succeeded": sum(j.status == "SUCCEEDED" for j in jobs),
                "wall_s": round(wall, 2),
                "trials_per_min": round(trials / wall * 60, 1),
                "first_trial_s": round(min(starts) - started, 2) if starts else None,
                "slot_efficiency": round(ideal / wall, 3) if ideal else 0.0,
            }
        )
    )


if __name__ == "__main__":
    main()

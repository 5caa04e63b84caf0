# The `helm test` hook's script (runs in the dispatcher image, read by
# templates/tests/test-experiment.yaml). Posts a one-trial experiment with the release's token.
import os
import sys
import tempfile
import time
from pathlib import Path

from kubesweep.cli.client import ApiClient

# A private temp dir (the Pod mounts an emptyDir at /tmp; the root filesystem is read-only).
work = Path(tempfile.mkdtemp(prefix="helm-test-"))
(work / "trial.py").write_text(
    "import nni\nparams = nni.get_next_parameter()\nnni.report_final_result(params['x'])\n"
)
(work / "search_space.json").write_text('{"x": {"_type": "choice", "_value": [1, 2, 3]}}')
(work / "config.yml").write_text(
    "experimentName: helm-test\n"
    "searchSpaceFile: search_space.json\n"
    "trialCommand: python3 trial.py\n"
    "trialCodeDirectory: .\n"
    "trialConcurrency: 1\n"
    "maxTrialNumber: 1\n"
    "maxExperimentDuration: 5m\n"
    "tuner:\n"
    "  name: Random\n"
    "trainingService:\n"
    "  platform: local\n"
)
client = ApiClient.discover()
exp_id = client.submit(work / "config.yml")
print(f"experiment {exp_id} created at {client.url}")
try:
    shown = client.experiment(exp_id)
    assert shown["id"] == exp_id, shown
    print(f"status {shown['status']}")
    if os.environ.get("HELM_TEST_WAIT_FOR_TRIAL") == "true":
        deadline = time.monotonic() + float(os.environ.get("HELM_TEST_TIMEOUT_S", "300"))
        while True:
            shown = client.experiment(exp_id)
            if shown["trial_counts"].get("SUCCEEDED"):
                print(f"trial succeeded: best {shown['best']}")
                break
            if shown["status"] in ("DONE", "FAILED", "STOPPED") or time.monotonic() > deadline:
                sys.exit(f"no successful trial: {shown}")
            time.sleep(2)
finally:
    client.stop(exp_id)
    client.delete(exp_id, purge=True)
    print(f"experiment {exp_id} stopped and deleted")

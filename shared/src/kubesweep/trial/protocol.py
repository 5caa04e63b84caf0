"""Names and wire formats shared by the keeper, the SDK, the dispatcher and the collector.

Everything a trial pod, the dispatcher that launches it and the collector that hears from it
must spell the same way lives here, as plain constants (stdlib only, no imports).

Keeper → collector (JSON bodies, header ``Authorization: Bearer <token>``)::

    POST {collector}/api/v1/trials/{exp}/{trial}/metrics
        {"attempt": 1, "type": "PERIODICAL" | "FINAL", "sequence": 0, "value": <metric>}
    POST {collector}/api/v1/trials/{exp}/{trial}/status
        {"attempt": 1, "status": "RUNNING"}
        {"attempt": 1, "status": "SUCCEEDED" | "FAILED", "exit_code": 0, "message": "..."}

SDK → keeper: one JSON line per report on the pipe whose write end is ``$KUBESWEEP_METRIC_FD``::

    {"type": "PERIODICAL" | "FINAL", "value": <metric>}\\n

NNI-style stdout (images that carry the real NNI, or the SDK without a keeper but with
``NNI_PLATFORM`` set)::

    NNISDK_MEb'{"parameter_id": 4, "trial_job_id": "abc", "type": "FINAL", "sequence": 0,
                "value": "<metric as a JSON string>"}'
"""

from __future__ import annotations

# --- keeper configuration (set by the dispatcher) -------------------------------------------
ENV_EXPERIMENT_ID = "KUBESWEEP_EXPERIMENT_ID"
ENV_TRIAL_ID = "KUBESWEEP_TRIAL_ID"
ENV_TRIAL_SEQ = "KUBESWEEP_TRIAL_SEQ"
ENV_TRIAL_ATTEMPT = "KUBESWEEP_TRIAL_ATTEMPT"
ENV_COLLECTOR_URL = "KUBESWEEP_COLLECTOR_URL"
ENV_TRIAL_TOKEN = "KUBESWEEP_TRIAL_TOKEN"  # noqa: S105 - the variable's name, not a secret
ENV_TRIAL_COMMAND = "KUBESWEEP_TRIAL_COMMAND"
ENV_CODE_DIR = "KUBESWEEP_CODE_DIR"
ENV_SYS_DIR = "KUBESWEEP_SYS_DIR"
ENV_OUTPUT_DIR = "KUBESWEEP_OUTPUT_DIR"
ENV_WORK_DIR = "KUBESWEEP_WORK_DIR"
ENV_REPORT_STATUS = "KUBESWEEP_REPORT_STATUS"
ENV_PRIMARY = "KUBESWEEP_PRIMARY"
ENV_PLATFORM = "KUBESWEEP_PLATFORM"
ENV_REPORT_TIMEOUT = "KUBESWEEP_REPORT_TIMEOUT"
ENV_NNI_SHIM = "KUBESWEEP_NNI_SHIM"
# The staged runtime folder, for a keeper started from an installed kubesweep.
ENV_RUNTIME_DIR = "KUBESWEEP_RUNTIME_DIR"

# --- set by the keeper for the trial command ------------------------------------------------
ENV_METRIC_FD = "KUBESWEEP_METRIC_FD"
ENV_PARAMETER_TIMEOUT = "KUBESWEEP_PARAMETER_TIMEOUT"

# NNI's own variables, with NNI's meanings (nni/runtime/env_vars.py).
NNI_PLATFORM = "NNI_PLATFORM"
NNI_EXP_ID = "NNI_EXP_ID"
NNI_TRIAL_JOB_ID = "NNI_TRIAL_JOB_ID"
NNI_TRIAL_SEQ_ID = "NNI_TRIAL_SEQ_ID"
NNI_SYS_DIR = "NNI_SYS_DIR"
NNI_OUTPUT_DIR = "NNI_OUTPUT_DIR"
NNI_CODE_DIR = "NNI_CODE_DIR"
NNI_MULTI_PHASE = "MULTI_PHASE"

PLATFORMS = ("local", "kubeflow")
DEFAULT_PLATFORM = "local"
DEFAULT_REPORT_TIMEOUT = 120.0
DEFAULT_PARAMETER_TIMEOUT = 60.0
STANDALONE_ID = "STANDALONE"

# --- metrics ----------------------------------------------------------------------------------
PERIODICAL = "PERIODICAL"
FINAL = "FINAL"
METRIC_TYPES = (PERIODICAL, FINAL)
DEFAULT_METRIC_KEY = "default"
# NNI refuses metric messages of 1,000,000 characters or more; so do we.
MAX_METRIC_CHARS = 1_000_000

NNI_METRIC_PREFIX = "NNISDK_MEb'"
# Greedy and anchored at the end of the line: NNI's non-greedy `(.*?)'` stops at the first
# quote inside a dict metric and truncates its JSON.
NNI_METRIC_PATTERN = r"NNISDK_MEb'(.*)'\s*$"

# --- collector API ----------------------------------------------------------------------------
METRICS_PATH = "/api/v1/trials/{experiment}/{trial}/metrics"
STATUS_PATH = "/api/v1/trials/{experiment}/{trial}/status"
# Several metrics of one attempt in one request: {"attempt": n, "metrics": [{type, sequence,
# value}, ...]}. The keeper sends what queued up while the previous report was in flight.
METRICS_BATCH_SUFFIX = "/batch"
MAX_BATCH_METRICS = 100
MAX_BATCH_CHARS = 32 * 1024
STATUS_RUNNING = "RUNNING"
STATUS_SUCCEEDED = "SUCCEEDED"
STATUS_FAILED = "FAILED"
MAX_MESSAGE_CHARS = 500

# --- files ------------------------------------------------------------------------------------
PARAMETER_FILE = "parameter.cfg"
LOCK_FILE = "keeper.lock"
STDOUT_FILE = "stdout"
STDERR_FILE = "stderr"
LOG_FILE = "trial.log"
METRICS_FILE = "metrics.jsonl"
RUNTIME_PACKAGE = "kubesweep_trial"
SHIM_PACKAGE = "nni"

# --- keeper exit codes (otherwise it exits with the command's code) ------------------------
# An earlier keeper for this attempt died mid-run (EX_TEMPFAIL): the dispatcher decides
# whether to start a new attempt.
EXIT_STALE_LOCK = 75
# The keeper's own configuration is invalid (EX_CONFIG): a dispatcher bug, not the trial's.
EXIT_CONFIG = 78
# The command could not be started at all (as a shell reports "command not found").
EXIT_NOT_STARTED = 127

"""TFJob/PyTorchJob manifests against the real Kubeflow v1.9.4 CRDs (strict), the ported
operator webhook, the Kubernetes client's serialiser, and NNI's compatibility points.

The CRDs are read in place from the handbook folder (``KUBESWEEP_KUBEFLOW_CRDS``, default
``/work/shared/kubeflow-crds``); without them the schema tests skip, the rest still run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes.client import ApiClient

from kubesweep.config.spec import (
    AlgorithmSpec,
    AzureStorage,
    ExperimentSpec,
    KubeflowTrainingService,
    MountedStorage,
    NfsStorage,
    RoleSpec,
)
from kubesweep.errors import ConfigError
from kubesweep.records import TrialRecord
from kubesweep.trial import protocol, runtime_files
from kubesweep_dispatcher import layout
from kubesweep_dispatcher.platforms.kubeflow import keeper_command, names, secrets
from kubesweep_dispatcher.platforms.kubeflow.manifests import (
    build_job,
    job_namespace,
    storage_volume,
)
from kubesweep_dispatcher.platforms.kubeflow.overrides import parse_overrides
from kubesweep_dispatcher.platforms.kubeflow.webhook import validate_job

CRD_DIR = Path(os.environ.get("KUBESWEEP_KUBEFLOW_CRDS", "/work/shared/kubeflow-crds"))
CRD_FILES = {
    "TFJob": (
        "kubeflow.org_tfjobs.yaml",
        "6028ab677922ee558d279c9cc2028500372875eec327ed6819fc4dc2796cda9e",
    ),
    "PyTorchJob": (
        "kubeflow.org_pytorchjobs.yaml",
        "8b8a8a719cc94173169290251e817f7ac2bb425c20b6c2fa813397bcf4e932ed",
    ),
}
TOKEN = "tok-3f9a-never-in-a-manifest"
COLLECTOR = "http://kubesweep-collector.kubesweep.svc:8081"
EXP, TRIAL = "lnjmikx3", "xxnec"

# --- CRD schemas, strict -----------------------------------------------------------------


def crd_schema(kind: str, directory: Path | None = None) -> dict[str, Any]:
    """The v1 openAPIV3Schema of ``kind``'s CRD, or skip when the CRD folder is absent."""
    folder = CRD_DIR if directory is None else directory
    file_name, sha256 = CRD_FILES[kind]
    path = folder / file_name
    if not path.is_file():
        pytest.skip(f"Kubeflow CRD {path} not found; set KUBESWEEP_KUBEFLOW_CRDS to the folder")
    raw = path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == sha256, f"{path} is not the v1.9.4 CRD"
    crd = yaml.load(raw, Loader=yaml.CSafeLoader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def strict(node: Any) -> Any:
    """Forbid unknown fields wherever the schema lists properties and does not say otherwise
    (kubernetes-test-env.md §8.2): the apiserver would silently prune them."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: value if key == "enum" else strict(value) for key, value in node.items()}
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


SchemaCheck = Callable[[dict[str, Any], bool], list[str]]


@pytest.fixture(scope="module")
def schema_errors() -> SchemaCheck:
    validators: dict[tuple[str, bool], jsonschema.protocols.Validator] = {}

    def check(manifest: dict[str, Any], strict_mode: bool = True) -> list[str]:
        key = (manifest["kind"], strict_mode)
        if key not in validators:
            schema = crd_schema(manifest["kind"])
            schema = strict(schema) if strict_mode else schema
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
            cls.check_schema(schema)
            validators[key] = cls(schema, format_checker=jsonschema.FormatChecker())
        found = validators[key].iter_errors(manifest)
        return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found)

    return check


# --- the configuration table ----------------------------------------------------------------


def role(replicas: int = 1, gpus: int = 0, cpus: float = 1, **extra: Any) -> RoleSpec:
    return RoleSpec(
        replicas=replicas,
        command="python3 mnist.py --lr $(cat lr.txt) 'quoted'",
        gpu_number=gpus,
        cpu_number=cpus,
        memory_mb=8196,
        image="tensorflow/tensorflow:2.15.0",
        **extra,
    )


NFS = NfsStorage(server="10.10.10.10", path="/var/nfs/general")
AZURE = AzureStorage(account_name="acct", share="nni", key_vault_name="kv", key_vault_key="k")
PVC = MountedStorage(path="/mnt/share")
FULL_OVERRIDES: dict[str, Any] = {
    "pod": {
        "nodeSelector": {"pool": "gpu", "example.com/zone": "a"},
        "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {
                "key": "spot",
                "operator": "Equal",
                "value": "true",
                "effect": "NoExecute",
                "tolerationSeconds": 60,
            },
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}
                    ]
                }
            }
        },
        "env": [
            {"name": "HF_HOME", "value": "/cache"},
            {"name": "CUDA_VISIBLE_DEVICES", "value": "0"},
        ],
        "serviceAccountName": "trainer",
        "imagePullSecrets": ["regcred", {"name": "other"}],
        "shmSize": "2Gi",
        "priorityClassName": "batch-low",
    },
    "roles": {"ps": {"nodeSelector": {"pool": "cpu"}, "env": [{"name": "PS_ONLY", "value": 1}]}},
    "job": {
        "namespace": "team-a",
        "cleanPodPolicy": "All",
        "ttlSecondsAfterFinished": 3600,
        "pendingTimeout": 600,
    },
}


@dataclass
class Case:
    id: str
    operator: str
    roles: dict[str, RoleSpec]
    storage: Any = NFS
    extension: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    trial_id: str = TRIAL
    extra_pull: str | None = None


CASES = [
    Case("tf-worker", "tf-operator", {"worker": role()}),
    Case("tf-worker-ps", "tf-operator", {"worker": role(gpus=2), "ps": role(cpus=0.5)}),
    Case("tf-chief-worker", "tf-operator", {"chief": role(), "worker": role(replicas=3, gpus=1)}),
    Case("tf-worker-evaluator", "tf-operator", {"worker": role(replicas=2), "evaluator": role()}),
    Case(
        "tf-all-roles-azure-overrides",
        "tf-operator",
        {
            "chief": role(),
            "worker": role(replicas=4, gpus=8),
            "ps": role(replicas=2),
            "evaluator": role(),
        },
        storage=AZURE,
        extension=FULL_OVERRIDES,
    ),
    Case("tf-multi-worker-pvc", "tf-operator", {"worker": role(replicas=8, gpus=1)}, storage=PVC),
    Case("pytorch-master", "pytorch-operator", {"master": role()}),
    Case(
        "pytorch-master-worker",
        "pytorch-operator",
        {"master": role(gpus=1), "worker": role(replicas=3, gpus=1)},
    ),
    Case(
        "pytorch-overrides-registry-retry",
        "pytorch-operator",
        {
            "master": role(private_registry_auth_path="/home/u/.docker/config.json"),
            "worker": role(replicas=2),
        },
        storage=AZURE,
        extension={"pod": {"shmSize": "512Mi"}, "job": {"cleanPodPolicy": "None"}, "other": "kept"},
        attempt=3,
        extra_pull="dispatcher-default",
    ),
    Case("adversarial-trial-id", "tf-operator", {"worker": role(replicas=2)}, trial_id="t" * 32),
]


def make_spec(case: Case) -> ExperimentSpec:
    service = KubeflowTrainingService(operator=case.operator, storage=case.storage, **case.roles)
    return ExperimentSpec(
        source_format="v1",
        name="example_mnist",
        search_space={},
        trial_command="python3 mnist.py",
        trial_code_directory="/code",
        trial_concurrency=2,
        tuner=AlgorithmSpec(name="TPE"),
        platform="kubeflow",
        training_service=service,
        extension=case.extension,
    )


def make_trial(case: Case) -> TrialRecord:
    return TrialRecord(
        id=case.trial_id,
        experiment_id=EXP,
        seq=7,
        status="WAITING",
        parameter_id=6,
        parameters={"lr": 0.1},
        created=0.0,
        attempt=case.attempt,
    )


def build(case: Case) -> dict[str, Any]:
    spec = make_spec(case)
    return build_job(
        spec,
        make_trial(case),
        attempt=case.attempt,
        namespace=job_namespace(spec),
        storage_volume=storage_volume(case.storage, EXP, claim_name="kubesweep-share"),
        collector_url=COLLECTOR,
        keeper_env={"KUBESWEEP_REPORT_TIMEOUT": "60"},
        image_pull_secret=case.extra_pull,
    )


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    # Kubernetes reads an entry with neither value nor valueFrom as "" (keeper_command.env_var).
    return {var["name"]: var.get("value", var.get("valueFrom", "")) for var in container["env"]}


def replicas(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    key = "tfReplicaSpecs" if manifest["kind"] == "TFJob" else "pytorchReplicaSpecs"
    found: dict[str, dict[str, Any]] = manifest["spec"][key]
    return found


# --- the table's checks -----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_manifest_validates_strictly_against_the_crd(
    case: Case, schema_errors: SchemaCheck
) -> None:
    assert schema_errors(build(case), True) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_manifest_passes_the_operator_webhook(case: Case) -> None:
    assert validate_job(build(case)) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_manifest_round_trips_through_the_kubernetes_serialiser(case: Case) -> None:
    manifest = build(case)
    assert ApiClient().sanitize_for_serialization(copy.deepcopy(manifest)) == manifest
    assert json.loads(json.dumps(manifest)) == manifest
    assert "null" not in json.dumps(manifest)  # jsonschema ignores `nullable`; emit no nulls


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_nni_compatibility_points(case: Case) -> None:
    manifest = build(case)
    spec = make_spec(case)
    service = spec.training_service
    assert isinstance(service, KubeflowTrainingService)
    assert manifest["apiVersion"] == "kubeflow.org/v1"
    assert manifest["kind"] == ("TFJob" if case.operator == "tf-operator" else "PyTorchJob")
    assert TOKEN not in json.dumps(manifest)
    for rtype, rspec in replicas(manifest).items():
        role_spec = service.roles[rtype.lower()]
        assert rspec["replicas"] == role_spec.replicas
        (container,) = rspec["template"]["spec"]["containers"]
        assert container["name"] == ("tensorflow" if case.operator == "tf-operator" else "pytorch")
        resources = container["resources"]
        assert resources["requests"] == resources["limits"]
        assert resources["requests"]["memory"] == "8196Mi"
        assert ("nvidia.com/gpu" in resources["limits"]) == (role_spec.gpu_number > 0)
        if role_spec.gpu_number:
            assert resources["limits"]["nvidia.com/gpu"] == str(role_spec.gpu_number)
        env = env_of(container)
        overridden = "CUDA_VISIBLE_DEVICES" in json.dumps(case.extension)
        if role_spec.gpu_number == 0 and not overridden:
            assert env["CUDA_VISIBLE_DEVICES"] == ""
        if role_spec.gpu_number > 0 and not overridden:
            assert "CUDA_VISIBLE_DEVICES" not in env


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_keeper_contract(case: Case) -> None:
    manifest = build(case)
    service = make_spec(case).training_service
    assert isinstance(service, KubeflowTrainingService)
    mount = keeper_command.MOUNT_PATH
    primaries = 0
    for rtype, rspec in replicas(manifest).items():
        role_name = rtype.lower()
        assert rspec["restartPolicy"] == "Never"
        pod = rspec["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert rspec["template"]["metadata"]["labels"] == manifest["metadata"]["labels"]
        (container,) = pod["containers"]
        env = env_of(container)
        names_in_order = [var["name"] for var in container["env"]]
        assert len(names_in_order) == len(set(names_in_order))
        # $(KUBESWEEP_REPLICA_INDEX) only expands if defined earlier in the list.
        assert names_in_order[0] == keeper_command.ENV_REPLICA_INDEX
        assert env[keeper_command.ENV_REPLICA_INDEX] == {
            "fieldRef": {"fieldPath": "metadata.labels['training.kubeflow.org/replica-index']"}
        }
        output = env[protocol.ENV_OUTPUT_DIR].replace("$(KUBESWEEP_REPLICA_INDEX)", "1")
        assert (
            output
            == f"{mount}/{layout.output(EXP, case.trial_id, role_name, 1, attempt=case.attempt)}"
        )
        assert env["PYTHONPATH"] == f"{mount}/{layout.runtime(EXP)}"
        assert env[protocol.ENV_CODE_DIR] == f"{mount}/{layout.code(EXP)}"
        assert env[protocol.ENV_SYS_DIR] == f"{mount}/{layout.trial(EXP, case.trial_id)}"
        assert env[protocol.ENV_TRIAL_ATTEMPT] == str(case.attempt)
        assert env[protocol.ENV_TRIAL_SEQ] == "7"
        assert env[protocol.ENV_PLATFORM] == "kubeflow"
        assert env[protocol.ENV_REPORT_STATUS] == "0"
        assert env[protocol.ENV_COLLECTOR_URL] == COLLECTOR
        assert env["KUBESWEEP_REPORT_TIMEOUT"] == "60"
        # Kubernetes reduces $$ to $: the keeper sees the role's command unchanged.
        assert (
            env[protocol.ENV_TRIAL_COMMAND].replace("$$", "$") == service.roles[role_name].command
        )
        assert env[protocol.ENV_TRIAL_TOKEN] == {
            "secretKeyRef": {
                "name": names.token_secret_name(EXP, case.trial_id, case.attempt),
                "key": keeper_command.TOKEN_KEY,
            }
        }
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes[mounts[mount]] == {
            "name": mounts[mount],
            **storage_volume(case.storage, EXP, claim_name="kubesweep-share"),
        }
        primary = env.get(protocol.ENV_PRIMARY)
        if primary is None:  # decided per index by the bootstrap: only Worker 0
            assert (rtype, container["command"][:2]) == ("Worker", ["python3", "-c"])
            assert not {"Chief", "Master"} & set(replicas(manifest))
            primaries += 1
        else:
            assert container["command"] == ["python3", "-m", "kubesweep_trial.keeper"]
            primaries += rspec["replicas"] * int(primary == "1")
    assert primaries == 1, "exactly one replica reports metrics"


def test_job_metadata_and_run_policy() -> None:
    (case,) = [c for c in CASES if c.id == "tf-worker"]
    manifest = build(case)
    assert manifest["metadata"]["name"] == "ks-lnjmikx3-xxnec"
    assert manifest["metadata"]["namespace"] == "default"
    assert manifest["metadata"]["labels"] == names.labels(EXP, TRIAL, 1)
    assert manifest["metadata"]["annotations"] == {
        "kubesweep.io/experiment-id": EXP,
        "kubesweep.io/trial-id": TRIAL,
    }
    assert manifest["spec"]["runPolicy"] == {"cleanPodPolicy": "Running", "backoffLimit": 0}


def test_overrides_reach_every_pod_template() -> None:
    (case,) = [c for c in CASES if c.id == "tf-all-roles-azure-overrides"]
    manifest = build(case)
    assert manifest["metadata"]["namespace"] == "team-a"
    assert manifest["spec"]["runPolicy"] == {
        "cleanPodPolicy": "All",
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 3600,
    }
    for rtype, rspec in replicas(manifest).items():
        pod = rspec["template"]["spec"]
        expected_pool = "cpu" if rtype == "PS" else "gpu"
        assert pod["nodeSelector"] == {"pool": expected_pool, "example.com/zone": "a"}
        assert pod["tolerations"][1] == {
            "key": "spot",
            "operator": "Equal",
            "value": "true",
            "effect": "NoExecute",
            "tolerationSeconds": 60,
        }
        assert pod["affinity"] == FULL_OVERRIDES["pod"]["affinity"]
        assert pod["serviceAccountName"] == "trainer"
        assert pod["priorityClassName"] == "batch-low"
        assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
        assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in pod[
            "volumes"
        ]
        (container,) = pod["containers"]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
        env = env_of(container)
        assert env["HF_HOME"] == "/cache"
        assert env["CUDA_VISIBLE_DEVICES"] == "0"  # the user's value replaces NNI's ""
        assert ("PS_ONLY" in env) == (rtype == "PS")
        assert pod["volumes"][0]["azureFile"] == {
            "secretName": "ks-lnjmikx3-storage",
            "shareName": "nni",
            "readOnly": False,
        }


def test_registry_secret_and_attempt_naming() -> None:
    (case,) = [c for c in CASES if c.id == "pytorch-overrides-registry-retry"]
    manifest = build(case)
    assert manifest["metadata"]["name"] == "ks-lnjmikx3-xxnec-3"
    assert manifest["metadata"]["labels"]["kubesweep.io/attempt"] == "3"
    specs = replicas(manifest)
    assert specs["Master"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "ks-lnjmikx3-registry-master"},
        {"name": "dispatcher-default"},
    ]
    assert specs["Worker"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "dispatcher-default"}
    ]
    assert manifest["spec"]["runPolicy"]["cleanPodPolicy"] == "None"


def test_fractional_cpu_and_api_version() -> None:
    case = Case("x", "tf-operator", {"worker": role(cpus=0.25)})
    spec = make_spec(case)
    manifest = build_job(
        spec,
        make_trial(case),
        attempt=1,
        namespace="ns",
        storage_volume={"nfs": {"server": "s", "path": "/"}},
        collector_url=COLLECTOR,
        api_version="v2beta1",
    )
    assert manifest["apiVersion"] == "kubeflow.org/v2beta1"
    container = replicas(manifest)["Worker"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["cpu"] == "250m"


# --- what must be refused ------------------------------------------------------------------


def test_token_and_malformed_volumes_are_refused() -> None:
    (case,) = [c for c in CASES if c.id == "tf-worker"]
    spec, trial = make_spec(case), make_trial(case)
    common: dict[str, Any] = {"attempt": 1, "namespace": "ns", "collector_url": COLLECTOR}
    with pytest.raises(ValueError, match="token Secret"):
        build_job(
            spec,
            trial,
            storage_volume={"nfs": {}},
            keeper_env={protocol.ENV_TRIAL_TOKEN: TOKEN},
            **common,
        )
    with pytest.raises(ValueError, match="one volume source"):
        build_job(spec, trial, storage_volume={"name": "x", "nfs": {}}, **common)
    with pytest.raises(ConfigError, match="PersistentVolumeClaim"):
        storage_volume(PVC, EXP)


def test_roles_the_operator_would_refuse_are_config_errors() -> None:
    case = Case("x", "pytorch-operator", {"master": role(), "ps": role()})
    with pytest.raises(ConfigError, match="pytorch-operator has no ps role"):
        build(case)
    with pytest.raises(ConfigError, match="master: is required"):
        build(Case("x", "pytorch-operator", {"worker": role()}))
    with pytest.raises(ConfigError, match=r"chief\.replicas"):
        build(Case("x", "tf-operator", {"worker": role(), "chief": role(replicas=2)}))


@pytest.mark.parametrize(
    ("extension", "field", "text"),
    [
        (
            {"pod": {"tolerations": [{"key": "k", "effect": "Sometimes"}]}},
            "kubesweep.pod.tolerations[0].effect",
            "NoSchedule",
        ),
        (
            {"pod": {"tolerations": [{"operator": "Equal"}]}},
            "kubesweep.pod.tolerations[0].operator",
            "must be Exists",
        ),
        (
            {"pod": {"tolerations": [{"key": "k", "tolerationSeconds": 5}]}},
            "kubesweep.pod.tolerations[0].tolerationSeconds",
            "NoExecute",
        ),
        ({"pod": {"nodeSelectr": {}}}, "kubesweep.pod.nodeSelectr", "did you mean 'nodeSelector'"),
        ({"pod": {"nodeSelector": {"pool": "a b"}}}, "kubesweep.pod.nodeSelector", "label value"),
        (
            {"pod": {"env": [{"name": "KUBESWEEP_TRIAL_TOKEN", "value": "x"}]}},
            "kubesweep.pod.env[0].name",
            "set by kubesweep",
        ),
        (
            {"pod": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}},
            "kubesweep.pod.env",
            "more than once",
        ),
        (
            {"pod": {"env": [{"name": "1A", "value": "x"}]}},
            "kubesweep.pod.env[0].name",
            "not a valid",
        ),
        ({"pod": {"shmSize": 64}}, "kubesweep.pod.shmSize", "with a unit"),
        ({"pod": {"shmSize": "lots"}}, "kubesweep.pod.shmSize", "quantity"),
        (
            {"pod": {"serviceAccountName": "Trainer"}},
            "kubesweep.pod.serviceAccountName",
            "object name",
        ),
        (
            {"pod": {"imagePullSecrets": ["ok", "Not_OK"]}},
            "kubesweep.pod.imagePullSecrets",
            "Not_OK",
        ),
        (
            {"pod": {"affinity": {"nodeAfinity": {}}}},
            "kubesweep.pod.affinity.nodeAfinity",
            "nodeAffinity",
        ),
        ({"roles": {"wroker": {}}}, "kubesweep.roles", "did you mean 'worker'"),
        (
            {"roles": {"ps": {"tolerations": [{"key": "k", "effect": "x"}]}}},
            "kubesweep.roles.ps.tolerations[0].effect",
            "NoExecute",
        ),
        ({"job": {"cleanPodPolicy": "Always"}}, "kubesweep.job.cleanPodPolicy", "Running"),
        ({"job": {"pendingTimeout": 0}}, "kubesweep.job.pendingTimeout", "greater than 0"),
        ({"job": {"ttlSecondsAfterFinished": -1}}, "kubesweep.job.ttlSecondsAfterFinished", "0"),
        ({"job": {"namespace": "Team_A"}}, "kubesweep.job.namespace", "namespace"),
    ],
)
def test_bad_overrides_name_the_field(extension: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_overrides(extension)
    assert caught.value.field == field
    assert text in str(caught.value)


def test_overrides_defaults_and_foreign_keys() -> None:
    found = parse_overrides({"priority": "high", "pod": None})
    assert found.job.clean_pod_policy == "Running"
    assert found.job.pending_timeout is None
    assert found.for_role("worker").to_k8s() == {}
    assert parse_overrides({"job": {"pending_timeout": 30}}).job.pending_timeout == 30


# --- the strict schema and the webhook catch what they should ---------------------------


def test_strict_mode_catches_a_typo_the_apiserver_would_prune(
    schema_errors: SchemaCheck,
) -> None:
    manifest = build(CASES[0])
    container = replicas(manifest)["Worker"]["template"]["spec"]["containers"][0]
    container["imagePullPolicyy"] = "Always"
    manifest["spec"]["runPolicy"]["backoffLimit"] = "0"
    assert schema_errors(manifest, False) == [
        "spec/runPolicy/backoffLimit: '0' is not of type 'integer'"
    ]
    errors = schema_errors(manifest, True)
    assert any("imagePullPolicyy" in e for e in errors), errors


def _webhook_case(kind: str) -> dict[str, Any]:
    operator = "tf-operator" if kind == "TFJob" else "pytorch-operator"
    roles = {"worker": role()} if kind == "TFJob" else {"master": role(), "worker": role()}
    return build(Case("x", operator, roles))


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"),
    [
        ("TFJob", lambda m: m["metadata"].update(name="Bad_Name"), "metadata.name: Invalid value"),
        ("TFJob", lambda m: m["metadata"].update(name="a" * 64), "metadata.name: Invalid value"),
        (
            "TFJob",
            lambda m: m["spec"]["runPolicy"].update(managedBy="me"),
            'spec.runPolicy.managedBy: Unsupported value: "me"',
        ),
        ("TFJob", lambda m: m["spec"].pop("tfReplicaSpecs"), "spec.tfReplicaSpecs: Required value"),
        (
            "TFJob",
            lambda m: m["spec"]["tfReplicaSpecs"].update(
                Chief=copy.deepcopy(m["spec"]["tfReplicaSpecs"]["Worker"]),
                Master=copy.deepcopy(m["spec"]["tfReplicaSpecs"]["Worker"]),
            ),
            "must not have more than 1 Chief or Master role",
        ),
        (
            "TFJob",
            lambda m: m["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][
                0
            ].update(name="tf"),
            "must have at least one container with name tensorflow",
        ),
        (
            "TFJob",
            lambda m: m["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][
                0
            ].update(image=""),
            "containers[0].image: Required value",
        ),
        (
            "TFJob",
            lambda m: m["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"].update(
                containers=[]
            ),
            "containers: Required value: must be specified",
        ),
        (
            "PyTorchJob",
            lambda m: m["spec"]["pytorchReplicaSpecs"]["Master"].update(replicas=2),
            "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1",
        ),
        (
            "PyTorchJob",
            lambda m: m["spec"]["pytorchReplicaSpecs"]["Worker"].update(replicas=0),
            "spec.pytorchReplicaSpecs[Worker].replicas: Forbidden: must be at least 1",
        ),
        (
            "PyTorchJob",
            lambda m: m["spec"]["pytorchReplicaSpecs"].update(
                Launcher=copy.deepcopy(m["spec"]["pytorchReplicaSpecs"]["Worker"])
            ),
            'spec.pytorchReplicaSpecs[Launcher]: Unsupported value: "Launcher"',
        ),
        (
            "PyTorchJob",
            lambda m: (
                m["spec"].update(elasticPolicy={"nProcPerNode": 2}, nprocPerNode="2"),
                m["spec"]["pytorchReplicaSpecs"].pop("Worker"),
            ),
            "spec.pytorchReplicaSpecs[Worker]: Required value: must be configured if elastic",
        ),
        (
            "PyTorchJob",
            lambda m: m["spec"].update(elasticPolicy={"nProcPerNode": 2}, nprocPerNode="2"),
            "spec.elasticPolicy.nProcPerNode: Forbidden",
        ),
    ],
)
def test_webhook_rules(kind: str, mutate: Callable[[dict[str, Any]], Any], expected: str) -> None:
    manifest = _webhook_case(kind)
    mutate(manifest)
    errors = validate_job(manifest, nni_rules=False)
    assert any(expected in e for e in errors), errors


def test_nni_role_rules() -> None:
    tf = _webhook_case("TFJob")
    specs = tf["spec"]["tfReplicaSpecs"]
    specs["Master"] = specs.pop("Worker")
    assert validate_job(tf, nni_rules=False) == []
    assert validate_job(tf) == [
        "spec.tfReplicaSpecs[Master]: Forbidden: not a TFJob role in NNI",
        "spec.tfReplicaSpecs[Worker]: Required value: NNI requires a Worker role",
    ]
    assert validate_job({"kind": "MPIJob"}) == [
        'kind: Unsupported value: "MPIJob": supported values: "TFJob", "PyTorchJob"'
    ]


# --- Secrets, and the bootstrap as a real process ------------------------------------------


def test_secrets_are_valid_core_objects() -> None:
    created = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": "ks-e-t", "uid": "u-1"},
    }
    token = secrets.token_secret(
        EXP, TRIAL, 2, TOKEN, namespace="ns", owner=secrets.owner_reference(created)
    )
    assert token["metadata"]["name"] == names.token_secret_name(EXP, TRIAL, 2)
    assert token["immutable"] is True
    assert token["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert TOKEN not in json.dumps(token)  # base64 in `data`
    storage = secrets.storage_secret(EXP, "acct", "key==", namespace="ns")
    assert set(storage["data"]) == {"azurestorageaccountname", "azurestorageaccountkey"}
    registry = secrets.registry_secret(EXP, "worker", '{"auths": {}}', namespace="ns")
    assert registry["type"] == "kubernetes.io/dockerconfigjson"
    client = ApiClient()
    for secret in (token, storage, registry):
        assert client.sanitize_for_serialization(secret) == secret
        assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubesweep"


PRINT_PRIMARY = "import os; print(os.environ['KUBESWEEP_PRIMARY'])"


@pytest.mark.parametrize(("index", "primary"), [("0", "1"), ("1", "0")])
def test_primary_bootstrap_runs_the_staged_keeper(tmp_path: Path, index: str, primary: str) -> None:
    runtime = tmp_path / "runtime"
    for rel, data in runtime_files().items():
        (runtime / rel).parent.mkdir(parents=True, exist_ok=True)
        (runtime / rel).write_bytes(data)
    sys_dir, output = tmp_path / "trial", tmp_path / "trial" / "output" / f"worker-{index}"
    sys_dir.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(runtime),
        protocol.ENV_EXPERIMENT_ID: EXP,
        protocol.ENV_TRIAL_ID: TRIAL,
        protocol.ENV_TRIAL_COMMAND: f"{sys.executable} -c {shlex.quote(PRINT_PRIMARY)}",
        protocol.ENV_SYS_DIR: str(sys_dir),
        protocol.ENV_OUTPUT_DIR: str(output),
        protocol.ENV_REPORT_STATUS: "0",
        protocol.ENV_PLATFORM: "kubeflow",
        keeper_command.ENV_REPLICA_INDEX: index,
    }
    command = keeper_command.keeper_command(None)
    done = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert (output / protocol.STDOUT_FILE).read_text().strip() == primary


def test_crd_folder_absent_skips_with_a_clear_reason(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="KUBESWEEP_KUBEFLOW_CRDS"):
        crd_schema("TFJob", tmp_path)


def test_manifest_shares_no_objects_between_replicas() -> None:
    manifest = build(CASES[4])
    seen: set[int] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict | list):
            assert id(node) not in seen, "an object appears twice in the manifest"
            seen.add(id(node))
            for child in node.values() if isinstance(node, dict) else node:
                walk(child)

    walk(manifest)
    assert "&id" not in yaml.safe_dump(manifest)

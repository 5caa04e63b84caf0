"""Every shipped example config loads, including the seed document's kubeflow YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesweep.config import KubeflowTrainingService, load_config_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "config", sorted(EXAMPLES.glob("*/*.yml")), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_example_config_loads(config: Path) -> None:
    spec = load_config_file(config)
    assert spec.search_space
    assert Path(spec.trial_code_directory).is_dir()


def test_seed_kubeflow_example_is_a_tfjob_on_nfs() -> None:
    spec = load_config_file(EXAMPLES / "kubeflow" / "config_kubeflow.yml")
    service = spec.training_service
    assert isinstance(service, KubeflowTrainingService)
    assert service.operator == "tf-operator"
    assert service.ps is not None
    assert service.worker is not None
    assert service.worker.gpu_number == 2
    assert service.storage.type == "nfs"

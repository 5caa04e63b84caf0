"""NNI v1 and v2 experiment configs, normalised into one :class:`ExperimentSpec`."""

from kubesweep.config.loader import detect_format, load_config_file, parse_config
from kubesweep.config.reader import PlaceholderWarning
from kubesweep.config.spec import (
    AlgorithmSpec,
    AzureStorage,
    ExperimentSpec,
    KubeflowTrainingService,
    LocalTrainingService,
    MountedStorage,
    NfsStorage,
    RoleSpec,
    Storage,
    TrainingService,
)

__all__ = [
    "AlgorithmSpec",
    "AzureStorage",
    "ExperimentSpec",
    "KubeflowTrainingService",
    "LocalTrainingService",
    "MountedStorage",
    "NfsStorage",
    "PlaceholderWarning",
    "RoleSpec",
    "Storage",
    "TrainingService",
    "detect_format",
    "load_config_file",
    "parse_config",
]

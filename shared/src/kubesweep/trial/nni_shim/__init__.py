"""A stand-in for Microsoft NNI's trial API, staged as the top-level ``nni`` module.

Unmodified NNI trial code (``import nni; nni.get_next_parameter(); nni.report_final_result(x)``)
runs on kubesweep without NNI installed. Only the trial-side API exists here; code that
needs the rest of NNI (``nni.nas``, ``nni.compression``…) should run in an image with NNI
and ``KUBESWEEP_NNI_SHIM=0``, whose ``NNISDK_MEb`` stdout lines the keeper parses instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubesweep.trial import sdk as _sdk
else:
    try:  # staged next to the keeper, the runtime package is `kubesweep_trial`
        from kubesweep_trial import sdk as _sdk
    except ImportError:  # inside the kubesweep repository and its tests
        from kubesweep.trial import sdk as _sdk

__version__ = "3.0"

get_next_parameter = _sdk.get_next_parameter
get_next_parameters = _sdk.get_next_parameters
get_current_parameter = _sdk.get_current_parameter
report_intermediate_result = _sdk.report_intermediate_result
report_final_result = _sdk.report_final_result
get_experiment_id = _sdk.get_experiment_id
get_trial_id = _sdk.get_trial_id
get_sequence_id = _sdk.get_sequence_id

__all__ = [
    "get_current_parameter",
    "get_experiment_id",
    "get_next_parameter",
    "get_next_parameters",
    "get_sequence_id",
    "get_trial_id",
    "report_final_result",
    "report_intermediate_result",
]

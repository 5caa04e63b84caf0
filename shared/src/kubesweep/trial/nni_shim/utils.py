"""``nni.utils``: the helpers NNI trial scripts import, chiefly ``merge_parameter``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubesweep.trial import params as _params
else:
    try:
        from kubesweep_trial import params as _params
    except ImportError:
        from kubesweep.trial import params as _params

merge_parameter = _params.merge_parameter


class MetricType:
    """The types of metric data, as NNI names them."""

    FINAL = "FINAL"
    PERIODICAL = "PERIODICAL"
    REQUEST_PARAMETER = "REQUEST_PARAMETER"


__all__ = ["MetricType", "merge_parameter"]

"""NNI 3.0's TPE on numpy: `estimator` (the algorithm), `args` (classArgs, liar), `tuner`."""

from kubesweep_tuner.algorithms.tpe.tuner import TpeTuner

__all__ = ["TpeTuner"]

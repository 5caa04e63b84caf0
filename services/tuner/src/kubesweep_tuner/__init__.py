"""kubesweep_tuner."""

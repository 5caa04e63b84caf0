"""kubesweep_collector."""

"""kubesweep_dispatcher."""

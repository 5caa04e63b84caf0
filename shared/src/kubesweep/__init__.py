"""kubesweep."""

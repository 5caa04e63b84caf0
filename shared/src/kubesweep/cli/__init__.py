"""The ``kubesweep`` command line."""

"""An example distbench plugin: one task, ``blobs``."""

"""Dataset readers and image I/O."""

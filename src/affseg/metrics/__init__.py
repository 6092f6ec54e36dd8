"""affseg.metrics."""

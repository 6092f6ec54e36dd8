"""affseg.models."""

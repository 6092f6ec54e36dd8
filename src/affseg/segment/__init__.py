"""affseg.segment."""

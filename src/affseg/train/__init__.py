"""affseg.train."""

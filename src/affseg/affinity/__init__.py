"""affseg.affinity."""

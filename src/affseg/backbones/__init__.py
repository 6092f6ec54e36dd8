"""affseg.backbones."""

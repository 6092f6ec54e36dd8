"""affseg.backbones: pretrained, frozen feature pyramids."""

from affseg.backbones.efficientnet_lite import EfficientNetLitePyramid, load_backbone

__all__ = ["EfficientNetLitePyramid", "load_backbone"]

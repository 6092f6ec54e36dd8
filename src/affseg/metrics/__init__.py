"""affseg.metrics: the region and boundary benchmarks and the other segmentation / depth metrics."""

from affseg.metrics.boundary import BoundaryBenchmark
from affseg.metrics.contingency import compact_labels, contingency_table
from affseg.metrics.depth import depth_metrics
from affseg.metrics.miou import MeanIoU
from affseg.metrics.pairwise import pairwise_scores
from affseg.metrics.pixel_accuracy import hungarian_accuracy, hungarian_matched
from affseg.metrics.region import RegionBenchmark, score_nested

__all__ = [
    "BoundaryBenchmark",
    "MeanIoU",
    "RegionBenchmark",
    "compact_labels",
    "contingency_table",
    "depth_metrics",
    "hungarian_accuracy",
    "hungarian_matched",
    "pairwise_scores",
    "score_nested",
]

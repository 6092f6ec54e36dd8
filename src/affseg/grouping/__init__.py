"""Grouping stages: hierarchies and UCMs, kernel grouping, region merging, KwikCluster,
relabelling and drawing of label maps."""

"""Evaluation in one place: semantic scores, BSDS runs, seed stability, depth tables.

* :mod:`affseg.evaluation.semantic` -- :class:`~affseg.evaluation.semantic.SegScore` and
  :class:`~affseg.evaluation.semantic.SemanticScore` (mIoU, accuracies, confusion) and the
  scoring of a trained semantic segmenter or of pseudo labels on a dataset split.
* :mod:`affseg.evaluation.bsds` -- the BSDS500 region (and boundary) benchmark of one image
  (:func:`~affseg.evaluation.bsds.eval_one`) and the reduce of many in image order
  (:func:`~affseg.evaluation.bsds.reduce_scores`); :mod:`affseg.batch.evaluation` maps it
  over an engine (in-process or Dask).
* :mod:`affseg.evaluation.stability` -- :func:`~affseg.evaluation.stability.seed_stability`:
  the spread of a method's Hungarian pixel accuracy over random seeds.
* :mod:`affseg.evaluation.depth` -- the depth tables: guided depth super-resolution and
  depth completion of the HAM models and the classical baselines on Middlebury scenes.

The package sits between :mod:`affseg.train` and :mod:`affseg.methods` in the layers: it
runs methods and reads datasets, and is used by the CLI, batch, the trainers and the
benchmarks. Importing it is light (no torch).

Examples
--------
>>> import numpy as np
>>> from affseg.evaluation.semantic import SegScore
>>> s = SegScore(["sky", "road"])
>>> s.update(np.array([[0, 1]]), np.array([[0, 1]]))
>>> s.compute()["miou"]
1.0
"""

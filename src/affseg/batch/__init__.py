"""Whole image sets: segmentation and evaluation, in-process or on Dask, resumable.

* :mod:`affseg.batch.engine` -- where tasks run: :class:`SerialEngine` (this process) or
  :class:`DaskEngine` (``dask.distributed``: a local cluster of N worker processes, or an
  existing cluster of one or many machines); :func:`make_engine` picks one.
* :mod:`affseg.batch.segment` -- :func:`segment_images`: atomic outputs, resume (finished
  images skipped), a manifest, per-image failures reported and skipped.
* :mod:`affseg.batch.evaluation` -- :func:`evaluate`: the region and boundary benchmarks of
  :mod:`affseg.evaluation.bsds` as map (per image, anywhere) + reduce (in image order),
  identical to a serial run.
* :mod:`affseg.batch.manifest` -- the JSON record of an output folder.

Example
-------
>>> from affseg.batch import make_engine, segment_images          # doctest: +SKIP
>>> with make_engine(workers=2) as engine:                          # doctest: +SKIP
...     summary = segment_images(items, out, "slic", engine=engine)
"""

from affseg.batch.engine import DaskEngine, Done, Engine, Failed, SerialEngine, make_engine
from affseg.batch.evaluation import evaluate
from affseg.batch.manifest import MANIFEST_NAME, Manifest
from affseg.batch.segment import BatchSummary, SegmentTask, segment_images

__all__ = [
    "MANIFEST_NAME",
    "BatchSummary",
    "DaskEngine",
    "Done",
    "Engine",
    "Failed",
    "Manifest",
    "SegmentTask",
    "SerialEngine",
    "evaluate",
    "make_engine",
    "segment_images",
]

"""Segment a whole image set into an output folder: resumable, atomic, one engine.

Per image ``<stem>`` the outputs are ``<stem>.labels.png``, ``<stem>.overlay.png``,
``<stem>.boundaries.png`` and ``<stem>.mat`` (and ``<stem>.figure.png`` with ``figure``; see
``affseg segment``). Each one is written atomically (temp file ``.<name>.*.part`` +
rename), so a killed run leaves only whole files (and possibly hidden ``.part`` temp
files, removed by the next run).

Resume is by content: an image is finished when the manifest records it done from a
source with the same sha256 (and the same configuration) and all its outputs exist; a
rerun skips finished images unless ``overwrite``. The folder's files that affseg did not
write are never replaced: an image whose output name is taken by such a file fails with a
message naming it, and a file of an input folder is skipped as an output only when the
manifest records it as one. A failing image is recorded in the manifest and in the
summary, its partial outputs are removed, and the others go on. A run holds an exclusive
lock on the folder: a second run into the same folder is refused while the first goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affseg.batch.engine import Done, Engine, Failed, SerialEngine, call_task
from affseg.batch.manifest import MANIFEST_NAME, Manifest, folder_lock, source_digest
from affseg.data.io import image_size, read_image, write_label_png, write_png, write_ucm_mat
from affseg.errors import InputError

#: The outputs of one image, in the order they are written (the ``.mat`` last).
OUTPUT_SUFFIXES: tuple[str, ...] = (".labels.png", ".overlay.png", ".boundaries.png", ".mat")
#: Peak memory of the outputs per full-resolution pixel (bytes): the double-resolution
#: float64 UCM (4 x 8) and its copies while the ``.mat`` is compressed, labels, overlay and
#: boundaries (peak RSS of ``segment --method slic`` on 4000 x 3000: 1.8 GB, of which 0.3 GB
#: the method).
OUTPUT_BYTES_PER_PIXEL = 130.0
#: The extra output of ``figure=True``.
FIGURE_SUFFIX = ".figure.png"


@dataclass
class SegmentTask:
    """One image to segment (picklable: it travels to the workers)."""

    stem: str
    source: str  # an image path, or the name of a built-in example
    is_example: bool
    out: str
    method: str
    seed: int
    options: dict[str, Any]
    segments: int | None
    figure: bool = False
    source_sha256: str = ""


@dataclass
class BatchSummary:
    """What a batch run did."""

    total: int = 0
    excluded: int = 0  # inputs that are this folder's own outputs
    done: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    engine: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "failed": len(self.failed),
            "failures": self.failed,
            "seconds": self.seconds,
            "images_per_second": self.done / self.seconds if self.seconds > 0 else None,
            "engine": self.engine,
        }

    def line(self) -> str:
        rate = f", {self.done / self.seconds:.2f} images/s" if self.seconds > 0 else ""
        s = (
            f"{self.done} segmented, {self.skipped} already done, {len(self.failed)} failed "
            f"of {self.total} ({self.engine}, {self.seconds:.1f} s{rate})"
        )
        if self.failed:
            reasons: dict[str, int] = {}
            for msg in self.failed.values():
                head = msg.split(":", 1)[0]
                reasons[head] = reasons.get(head, 0) + 1
            s += "; failures: " + ", ".join(f"{n} {k}" for k, n in reasons.items())
        return s


def output_names(stem: str, figure: bool = False) -> list[str]:
    """The file names of one image's outputs.

    Examples
    --------
    >>> output_names("a", figure=True)
    ['a.labels.png', 'a.overlay.png', 'a.boundaries.png', 'a.figure.png', 'a.mat']
    """
    sufs = OUTPUT_SUFFIXES
    if figure:
        sufs = (*OUTPUT_SUFFIXES[:-1], FIGURE_SUFFIX, OUTPUT_SUFFIXES[-1])
    return [f"{stem}{suf}" for suf in sufs]


def outputs_of(out: Path, stem: str, figure: bool = False) -> list[Path]:
    """The output paths of one image."""
    return [out / name for name in output_names(stem, figure)]


def is_finished(manifest: Manifest, stem: str, digest: str, figure: bool = False) -> bool:
    """The manifest records ``stem`` done (or started: a run killed before it saved the
    manifest) from a source of sha256 ``digest``, and every output it needs is there (each
    is whole: they are written atomically, the ``.mat`` last)."""
    entry = manifest.images.get(stem) or {}
    if entry.get("status") not in ("done", "pending") or entry.get("source_sha256") != digest:
        return False
    names = output_names(stem, figure)
    return all(manifest.owns(n) and (manifest.folder / n).is_file() for n in names)


def foreign_outputs(manifest: Manifest, names: list[str]) -> list[str]:
    """The names among ``names`` taken by a file (or folder) affseg did not write.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.labels.png").write_bytes(b"the user's own")
    >>> foreign_outputs(Manifest(d, {}), output_names("a"))
    ['a.labels.png']
    """
    folder = manifest.folder
    return [n for n in names if os.path.lexists(folder / n) and not manifest.owns(n)]


def remove_stale_temp_files(out: Path) -> int:
    """Delete the hidden ``.part`` temp files a killed run may have left; returns how many."""
    n = 0
    for p in out.glob(".*.part"):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n


@dataclass
class SegmentResult:
    """What :func:`compute_outputs` hands to :func:`write_outputs` (one image in memory).

    Attributes
    ----------
    image : ndarray, shape (H, W, 3), uint8
    labels : ndarray, shape (H, W), int
        The chosen level.
    ucm2 : ndarray, shape (2H+1, 2W+1)
    figure : ndarray or None
        The ``figure=True`` picture.
    levels : int
    method_seconds : float

    Examples
    --------
    >>> import numpy as np
    >>> r = SegmentResult(np.zeros((2, 3, 3), np.uint8), np.ones((2, 3), np.int32),
    ...                   np.zeros((5, 7)), None, 1, 0.0)
    >>> r.nbytes
    322
    """

    image: np.ndarray
    labels: np.ndarray
    ucm2: np.ndarray
    figure: np.ndarray | None
    levels: int
    method_seconds: float

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        arrays = (self.image, self.labels, self.ucm2, self.figure)
        return sum(a.nbytes for a in arrays if a is not None)


def compute_outputs(task: SegmentTask) -> SegmentResult:
    """Read one image and run the method (everything before the first file is written).

    Examples
    --------
    >>> task = SegmentTask("coffee", "coffee", True, ".", "slic", 0, {"n_segments": (9,)}, None)
    >>> res = compute_outputs(task)
    >>> res.labels.shape, res.ucm2.shape
    ((400, 600), (801, 1201))
    """
    from affseg.methods import DEFAULT_WORKING_SIDE, check_method_memory, run_method, working_size

    if task.is_example:
        from affseg.data.examples import load_example

        image = load_example(task.source)
        h, w = image.shape[:2]
    else:
        h, w = image_size(task.source)
    # the memory rule, from the header: the method at its working size and the outputs
    # at full resolution (the double-resolution UCM and its compressed copy dominate)
    side = task.options.get("working_side", DEFAULT_WORKING_SIDE)
    check_method_memory(
        task.method,
        *working_size(h, w, side),
        extra=OUTPUT_BYTES_PER_PIXEL * h * w,
        what=f"segmenting {w} x {h} pixels with method {task.method!r} and writing its outputs",
        hint="the full-resolution outputs (the .mat UCM above all) need ~130 bytes a pixel: "
        "downscale the photo, or raise the limit",
    )
    if not task.is_example:
        image = read_image(task.source)
    t0 = time.perf_counter()
    hier = run_method(image, task.method, seed=task.seed, **task.options)
    labels = hier.labels(task.segments)
    ucm2 = hier.to_ucm()
    seconds = time.perf_counter() - t0
    figure = None
    if task.figure:  # before anything is written: a failure leaves no outputs
        from affseg.figures import segment_figure

        figure = segment_figure(image, hier)
    return SegmentResult(image, labels, ucm2, figure, len(hier.levels), seconds)


def write_outputs(task: SegmentTask, result: SegmentResult) -> dict[str, Any]:
    """Write one image's outputs (each atomically, the ``.mat`` last); its manifest record.

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> task = SegmentTask("coffee", "coffee", True, out, "slic", 0, {"n_segments": (9,)}, None)
    >>> sorted(write_outputs(task, compute_outputs(task)))
    ['levels', 'method_seconds', 'segments']
    """
    from affseg.grouping.visualize import boundaries_image, overlay

    lab_p, ov_p, bd_p, *fig_p, mat_p = outputs_of(Path(task.out), task.stem, task.figure)
    write_label_png(lab_p, result.labels)
    write_png(ov_p, overlay(result.image, result.labels))
    write_png(bd_p, boundaries_image(result.labels))
    if result.figure is not None:
        write_png(fig_p[0], result.figure)
    write_ucm_mat(mat_p, result.ucm2)  # last
    return {
        "segments": int(len(np.unique(result.labels))),
        "levels": result.levels,
        "method_seconds": result.method_seconds,
    }


def segment_one(task: SegmentTask) -> dict[str, Any]:
    """Segment one image and write its outputs (runs on a worker)."""
    return write_outputs(task, compute_outputs(task))


#: A result at most this large is written in the background while the next image is
#: segmented (two images' outputs then coexist); a larger one is written first.
OVERLAP_BYTES = 256 * 2**20


def pipelined_segment(
    tasks: list[SegmentTask], threads: int | None = None, overlap_bytes: int = OVERLAP_BYTES
) -> Iterator[tuple[int, Done | Failed]]:
    """Segment ``tasks`` in this process, writing each image's outputs on a background
    thread while the next image is read and segmented.

    At most one image is being written at a time, and only one of at most
    ``overlap_bytes``: memory stays that of one image plus one bounded result. Yields
    ``(index, Done | Failed)`` once an image's files are all written (the ``.mat`` last),
    as :meth:`SerialEngine.map` does for :func:`segment_one`.

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> task = SegmentTask("coffee", "coffee", True, out, "slic", 0, {"n_segments": (20, 60)}, None)
    >>> [(i, type(o).__name__) for i, o in pipelined_segment([task])]
    [(0, 'Done')]
    >>> sorted(p.name for p in Path(out).iterdir())[:2]
    ['coffee.boundaries.png', 'coffee.labels.png']
    """
    pending: tuple[int, _Timed] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="affseg-write") as pool:
        for i, task in enumerate(tasks):
            computed = call_task(compute_outputs, task, threads)
            if pending is not None:
                yield pending[0], pending[1].result()
                pending = None
            if isinstance(computed, Failed):
                yield i, computed
                continue
            result: SegmentResult = computed.value
            future = pool.submit(call_task, _write_task, (task, result), None)
            if result.nbytes > overlap_bytes:
                yield i, _with_compute_time(future.result(), computed.seconds)
            else:
                pending = (i, _Timed(future, computed.seconds))
        if pending is not None:
            yield pending[0], pending[1].result()


def _write_task(args: tuple[SegmentTask, SegmentResult]) -> dict[str, Any]:
    return write_outputs(*args)


def _with_compute_time(outcome: Done | Failed, seconds: float) -> Done | Failed:
    outcome.seconds += seconds
    return outcome


class _Timed:
    """A pending write whose outcome gains the image's compute time."""

    def __init__(self, future: Future[Done | Failed], seconds: float) -> None:
        self.future, self.seconds = future, seconds

    def result(self) -> Done | Failed:
        return _with_compute_time(self.future.result(), self.seconds)


def segment_images(
    items: list[tuple[str, Any]],
    out: Path,
    method: str,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    segments: int | None = None,
    engine: Engine | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    log: Any = None,
    figure: bool = False,
) -> BatchSummary:
    """Segment ``items`` (``(stem, path-or-example-name)``) into ``out``.

    Parameters
    ----------
    items : list of (str, Path or str)
        A ``str`` source is the name of a built-in example, a ``Path`` an image file.
    out : Path
        Output folder (created).
    method, seed, options, segments
        As ``affseg segment``.
    engine : Engine, optional
        Where the tasks run (default :class:`SerialEngine`).
    overwrite : bool
        Redo finished images (and accept a manifest of another configuration).
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal and there are >= 2 images).
    log : callable, optional
        Called with one line per finished image (default: ``tqdm.write``).
    figure : bool
        Also write ``<stem>.figure.png`` (:func:`affseg.figures.segment_figure`).

    Returns
    -------
    BatchSummary
    """
    from tqdm import tqdm

    engine = engine or SerialEngine()
    options = dict(options or {})
    stems = [s for s, _ in items]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise InputError(
            f"{len(dup)} input name(s) would write the same outputs (e.g. {dup[0]!r}): "
            "give images with distinct file names"
        )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "command": "segment",
        "method": method,
        "seed": seed,
        "options": options,
        "segments": segments,
    }
    with folder_lock(out):
        remove_stale_temp_files(out)
        manifest_existed = (out / MANIFEST_NAME).is_file()
        manifest = Manifest(out, config, overwrite=overwrite, default_outputs=OUTPUT_SUFFIXES)
        summary = BatchSummary(engine=engine.description)
        write = log or tqdm.write
        run_args = {"method": method, "seed": seed, "options": options, "segments": segments}
        tasks = _plan(items, out, manifest, summary, overwrite, figure, run_args, write)
        summary.total = len(items) - summary.excluded
        show = (len(tasks) >= 2) if progress is None else progress
        t0 = time.perf_counter()
        manifest.save()
        with tqdm(
            total=len(tasks), desc="segment", unit="image", disable=None if show else True
        ) as bar:
            if isinstance(engine, SerialEngine):
                outcomes = pipelined_segment(tasks, engine.threads)
            else:
                outcomes = engine.map(segment_one, tasks)
            for i, outcome in outcomes:
                _finish_task(tasks[i], outcome, manifest, summary, write, method)
                bar.update(1)
                manifest.save(every=1.0)
        summary.seconds = time.perf_counter() - t0
        if summary.done == 0 and summary.skipped == 0 and not manifest_existed:
            # nothing was produced (e.g. every image failed on bad weights): leave --out as
            # it was
            manifest.path.unlink(missing_ok=True)
            return summary
        manifest.save(summary=summary.as_dict())
    return summary


def _plan(
    items: list[tuple[str, Any]],
    out: Path,
    manifest: Manifest,
    summary: BatchSummary,
    overwrite: bool,
    figure: bool,
    run_args: dict[str, Any],
    write: Any,
) -> list[SegmentTask]:
    """The tasks to run; finished images are counted as skipped, the folder's own outputs
    (named as inputs, e.g. ``--out`` = the input folder) are left out, and an image whose
    outputs would replace a file affseg did not write fails at once."""
    out_abs = out.resolve()
    tasks: list[SegmentTask] = []
    for stem, src in items:
        is_example = isinstance(src, str)
        if not is_example:
            path = Path(src).resolve()
            if path.parent == out_abs and manifest.owns(path.name):
                summary.excluded += 1  # one of our own outputs, not an input
                continue
        source = src if is_example else str(Path(src).resolve())
        names = output_names(stem, figure)
        try:
            digest = source_digest(source, is_example)
        except OSError as exc:
            reason = f"CorruptFileError: cannot read {source}: {exc.strerror or exc}"
            _fail(manifest, summary, stem, source, reason, write)
            continue
        if not overwrite and is_finished(manifest, stem, digest, figure):
            summary.skipped += 1
            if manifest.images[stem]["status"] == "pending":
                manifest.images[stem]["status"] = "done"
            continue
        taken = foreign_outputs(manifest, names)
        if not is_example:
            taken += [n for n in names if (out_abs / n) == Path(source) and n not in taken]
        if taken:
            reason = (
                f"InputError: refusing to overwrite {out / taken[0]}, a file affseg did not "
                f"write (output of {stem!r}); move it or choose another --out"
            )
            _fail(manifest, summary, stem, source, reason, write)
            continue
        # claim the names before anything is written: a run killed midway leaves files
        # that the next run knows as its own
        manifest.record(
            stem,
            {"status": "pending", "source": source, "source_sha256": digest, "outputs": names},
        )
        tasks.append(
            SegmentTask(
                stem=stem,
                source=source,
                is_example=is_example,
                out=str(out_abs),  # absolute: workers may run in another folder
                figure=figure,
                source_sha256=digest,
                **run_args,
            )
        )
    return tasks


def _fail(
    manifest: Manifest, summary: BatchSummary, stem: str, source: str, reason: str, write: Any
) -> None:
    summary.failed[stem] = reason
    manifest.record(stem, {"status": "failed", "source": source, "error": reason})
    write(f"{stem}: FAILED {reason}")


def _finish_task(
    task: SegmentTask,
    outcome: Any,
    manifest: Manifest,
    summary: BatchSummary,
    write: Any,
    method: str,
) -> None:
    """Record one finished task; a failed one's outputs (partial or stale) are removed."""
    names = output_names(task.stem, task.figure)
    if isinstance(outcome, Done):
        v = outcome.value
        summary.done += 1
        manifest.record(
            task.stem,
            {
                "status": "done",
                "source": task.source,
                "source_sha256": task.source_sha256,
                "outputs": names,
                "seconds": outcome.seconds,
                **v,
            },
        )
        write(
            f"{task.stem}: {v['segments']} segments ({method}, {v['levels']} levels), "
            f"{v['method_seconds']:.2f} s -> {Path(task.out) / task.stem}.*"
        )
        return
    removed = []
    for n in names:  # every one is ours: foreign files stopped the task before it ran
        try:
            (Path(task.out) / n).unlink()
            removed.append(n)
        except OSError:  # missing, or cannot be removed: then it stays recorded as ours
            pass
    manifest.disown(removed)
    _fail(manifest, summary, task.stem, task.source, outcome.error, write)

"""Segment a whole image set into an output folder: resumable, atomic, one engine.

Per image ``<stem>`` the outputs are ``<stem>.labels.png``, ``<stem>.overlay.png``,
``<stem>.boundaries.png`` and ``<stem>.mat`` (see ``affseg segment``). Each one is written
atomically (temp file ``.<name>.*.part`` + rename), so a killed run leaves only whole
files (and possibly hidden ``.part`` temp files, removed by the next run). An image is
finished when all four outputs exist; a rerun skips finished images unless
``overwrite``. A failing image is recorded in the manifest and in the summary, and the
others go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affseg.batch.engine import Done, Engine, SerialEngine
from affseg.batch.manifest import MANIFEST_NAME, Manifest
from affseg.errors import InputError

#: The outputs of one image, in the order they are written.
OUTPUT_SUFFIXES: tuple[str, ...] = (".labels.png", ".overlay.png", ".boundaries.png", ".mat")


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


@dataclass
class BatchSummary:
    """What a batch run did."""

    total: int = 0
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


def outputs_of(out: Path, stem: str) -> list[Path]:
    """The output paths of one image."""
    return [out / f"{stem}{suf}" for suf in OUTPUT_SUFFIXES]


def is_finished(out: Path, stem: str) -> bool:
    """All outputs of ``stem`` exist (each is whole: they are written atomically)."""
    return all(p.is_file() for p in outputs_of(out, stem))


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


def segment_one(task: SegmentTask) -> dict[str, Any]:
    """Segment one image and write its outputs (runs on a worker)."""
    import numpy as np

    from affseg.data.io import read_image, write_label_png, write_png, write_ucm_mat
    from affseg.grouping.visualize import boundaries_image, overlay
    from affseg.methods import run_method

    if task.is_example:
        from affseg.cli.segment import load_example

        image = load_example(task.source)
    else:
        image = read_image(task.source)
    t0 = time.perf_counter()
    hier = run_method(image, task.method, seed=task.seed, **task.options)
    labels = hier.labels(task.segments)
    ucm2 = hier.to_ucm()
    seconds = time.perf_counter() - t0
    out = Path(task.out)
    lab_p, ov_p, bd_p, mat_p = outputs_of(out, task.stem)
    write_label_png(lab_p, labels)
    write_png(ov_p, overlay(image, labels))
    write_png(bd_p, boundaries_image(labels))
    if task.figure:
        from affseg.figures import segment_figure

        write_png(out / f"{task.stem}.figure.png", segment_figure(image, hier))
    write_ucm_mat(mat_p, ucm2)  # last: its presence completes the image
    return {
        "segments": int(len(np.unique(labels))),
        "levels": len(hier.levels),
        "method_seconds": seconds,
    }


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
    remove_stale_temp_files(out)
    config = {
        "command": "segment",
        "method": method,
        "seed": seed,
        "options": options,
        "segments": segments,
    }
    manifest_existed = (out / MANIFEST_NAME).is_file()
    manifest = Manifest(out, config, overwrite=overwrite)
    summary = BatchSummary(total=len(items), engine=engine.description)
    tasks: list[SegmentTask] = []
    for stem, src in items:
        if not overwrite and is_finished(out, stem):
            summary.skipped += 1
            entry = manifest.images.get(stem) or {"status": "done", "source": str(src)}
            if entry.get("status") != "done":
                entry = {"status": "done", "source": str(src)}
            manifest.record(stem, entry)
            continue
        tasks.append(
            SegmentTask(
                stem=stem,
                source=src if isinstance(src, str) else str(Path(src).resolve()),
                is_example=isinstance(src, str),
                out=str(out.resolve()),  # absolute: workers may run in another folder
                method=method,
                seed=seed,
                options=options,
                segments=segments,
                figure=figure,
            )
        )
    write = log or tqdm.write
    show = (len(tasks) >= 2) if progress is None else progress
    t0 = time.perf_counter()
    manifest.save()
    with tqdm(
        total=len(tasks), desc="segment", unit="image", disable=None if show else True
    ) as bar:
        for i, outcome in engine.map(segment_one, tasks):
            task = tasks[i]
            if isinstance(outcome, Done):
                v = outcome.value
                summary.done += 1
                manifest.record(
                    task.stem,
                    {"status": "done", "source": task.source, "seconds": outcome.seconds, **v},
                )
                write(
                    f"{task.stem}: {v['segments']} segments ({method}, {v['levels']} levels), "
                    f"{v['method_seconds']:.2f} s -> {out / task.stem}.*"
                )
            else:
                summary.failed[task.stem] = outcome.error
                manifest.record(
                    task.stem, {"status": "failed", "source": task.source, "error": outcome.error}
                )
                write(f"{task.stem}: FAILED {outcome.error}")
            bar.update(1)
            manifest.save(every=1.0)
    summary.seconds = time.perf_counter() - t0
    if summary.done == 0 and summary.skipped == 0 and not manifest_existed:
        # nothing was produced (e.g. every image failed on bad weights): leave --out as it was
        manifest.path.unlink(missing_ok=True)
        return summary
    manifest.save(summary=summary.as_dict())
    return summary

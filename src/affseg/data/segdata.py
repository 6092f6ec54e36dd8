"""Semantic-segmentation datasets: the one reader of a user's own data (any K >= 2 classes).

Every dataset with class annotations that affseg trains or evaluates on (``affseg train
wsss --data``, ``affseg eval --task semantic``, ``affseg train ndd``) is read through
:func:`open_dataset`, which detects the layout and returns a :class:`SegDataset`. A bad
input stops with one :class:`~affseg.errors.InputError` naming the file and the problem,
at the latest in :meth:`SegDataset.validate`, which checks a whole split before any work.

Layouts
-------
**Canonical** (``open_dataset(data=DIR)``)::

    DIR/classes.txt                 one class per line: ``name [r g b]``
    DIR/images/<split>/<stem>.<ext> RGB photos (any suffix of affseg.data.io.IMAGE_SUFFIXES)
    DIR/masks/<split>/<stem>.png    class indices (optional per split)
    DIR/tags.csv                    ``stem,name;name;...`` image-level labels (optional)

A split is a folder of ``images/``; it is either fully annotated (``masks/<split>/`` holds
one mask per image, nothing else) or has no ``masks/<split>/`` at all (a weakly supervised
split: its image-level labels then come from ``tags.csv``).

**Pairs of folders** (``open_dataset(images=..., masks=..., classes=FILE)``): images and
masks matched by stem, e.g. CamVid's ``train/`` + ``trainannot/``. A single folder makes
one split (named by ``split``, default ``"train"``); a mapping ``{split: folder}`` makes
several.

**PASCAL VOC** (detected when ``DIR`` holds ``JPEGImages/`` and ``ImageSets/Segmentation/``;
also ``DIR/VOC2012`` and ``DIR/VOCdevkit/VOC2012``): splits are the lists
``ImageSets/Segmentation/<split>.txt``, masks ``SegmentationClass/<stem>.png`` (palette
PNGs), the 21 :data:`VOC_CLASSES` with VOC's colours, 255 = ignore.

**MSRC-v2** (detected when ``DIR`` holds ``images/`` and ``groundTruth/`` but no
``classes.txt``; or :func:`open_msrc`): the colour-coded ground truth decoded by
:mod:`affseg.data.msrc`, in the MSRC-21 vocabulary (default) or the full 23 classes.

Rules
-----
classes.txt
    UTF-8; blank lines and lines starting with ``#`` are skipped, and class ``i`` is the
    ``i``-th remaining line (0-based). A line ending in three integers gives the class
    colour ``r g b`` (0..255); the name is the rest of the line (it may contain spaces,
    not ``,`` or ``;``). Either every class has a colour or none does (then
    :func:`default_palette`, VOC's palette, is used). Names are unique (ignoring case),
    colours too. At least 2 classes.
Ignore index
    Default 255 (65535 when more than 255 classes are listed); mask pixels of that value
    are ignored. The ignore index is either not a listed class (``>= K``: CamVid's 11
    with its 11 classes) or it indexes the **last** line of the class list, which is then
    a void class and is dropped from the vocabulary (CamVid's classes.txt with a 12th line
    ``Unlabelled 0 0 0``, ignore 11, gives the same 11 classes). After this,
    ``ignore_index >= num_classes`` always, so ``mask < num_classes`` marks the labelled
    pixels. A void class anywhere else is refused (the other classes would be renumbered).
Masks
    Single-channel PNG (also BMP / TIFF; JPEG is refused: lossy compression changes the
    indices), 8 or 16 bit: the value is the class index. Palette PNGs (mode ``P``, VOC):
    the palette index is the class index, and when the classes have colours every used
    palette entry must carry its class's colour, else the mask is refused. RGB masks are
    colour-coded: decoded with the classes' colours (pixels of the void class's colour,
    when a void line gives one, are ignored); with no colours they are refused.
    :meth:`SegDataset.mask` returns int64 with the ignored pixels equal to ``ignore_index``.
tags.csv
    ``stem,name;name;...`` per line (``#`` comments, blank lines and a ``stem,tags`` header
    are skipped; an empty list is allowed). Rows are keyed by stem over all splits. Where
    an image has a row, its tags are that row (the masks are not consulted); otherwise
    they are the classes present in its mask. Tags include every class, background too.
Fingerprint
    :meth:`SegDataset.fingerprint` hashes (sha256) the class list, the ignore index and,
    for every image of the split, its stem, file names and the **bytes** of its image and
    mask files, plus its tags row: any change of content changes it, touching or copying
    the files does not (``quick=True``: sizes and modification times instead of bytes).

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> from PIL import Image
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "classes.txt").write_text("background 0 0 0\\ncat 255 0 0\\n")
>>> for split in ("train", "val"):
...     (root / "images" / split).mkdir(parents=True)
...     (root / "masks" / split).mkdir(parents=True)
...     Image.new("RGB", (4, 3)).save(root / "images" / split / "a.png")
...     m = np.zeros((3, 4), np.uint8); m[0, :2] = 1; m[2, 3] = 255
...     Image.fromarray(m).save(root / "masks" / split / "a.png")
>>> ds = open_dataset(root)
>>> ds.classes, ds.num_classes, ds.ignore_index, ds.splits()
(('background', 'cat'), 2, 255, ('train', 'val'))
>>> ds.mask("train", "a")[0].tolist(), ds.tags("train", "a")
([1, 1, 0, 0], (0, 1))
>>> ds.validate("train").image_counts.tolist()
[1, 1]
>>> ds.tags_only("train").mask("train", "a")
Traceback (most recent call last):
...
affseg.errors.InputError: split 'train' is opened tags-only (weak supervision): ...
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from affseg.data import msrc as _msrc
from affseg.data.io import IMAGE_SUFFIXES, image_size, open_image, read_image
from affseg.data.paths import dataset_dir
from affseg.errors import AffsegError, DatasetNotFoundError, InputError

__all__ = [
    "DEFAULT_IGNORE_INDEX",
    "MASK_SUFFIXES",
    "VOC_CLASSES",
    "VOC_IGNORE_COLOUR",
    "Sample",
    "SampleSource",
    "SegDataset",
    "SplitReport",
    "default_palette",
    "open_dataset",
    "open_msrc",
    "read_classes",
]

#: The ignore index when none is given (65535 when more than 255 classes are listed).
DEFAULT_IGNORE_INDEX = 255
#: The largest class count / ignore index: masks are at most 16-bit.
_MAX_INDEX = 65535
#: Suffixes (any case) of mask files: lossless formats only.
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
#: PIL modes of masks that store class indices directly.
_INDEX_MODES = ("1", "L", "I;16", "I;16L", "I;16B", "I")

#: The 21 PASCAL VOC classes (index = VOC class id; 255 = ignore, the object borders).
VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
#: The colour of VOC's ignore index 255 in its palette PNGs (the object borders).
VOC_IGNORE_COLOUR = (224, 224, 192)

_T = TypeVar("_T")
_INT = re.compile(r"[+-]?\d+")


def default_palette(num_classes: int) -> np.ndarray:
    """Distinct colours for classes without given colours: PASCAL VOC's palette.

    Class ``i``'s colour interleaves the bits of ``i`` (the palette of VOC's PNGs for
    ``i < 256``, extended to any count; class 0 is black).

    Parameters
    ----------
    num_classes : int
        K >= 0.

    Returns
    -------
    ndarray, shape (K, 3), uint8

    Examples
    --------
    >>> default_palette(4).tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    """
    k = int(num_classes)
    if k < 0:
        raise InputError(f"number of classes must be >= 0, got {k}")
    c = np.arange(k, dtype=np.int64)
    out = np.zeros((k, 3), np.int64)
    for j in range(8):
        for ch in range(3):
            out[:, ch] |= ((c >> (3 * j + ch)) & 1) << (7 - j)
    return out.astype(np.uint8)


def read_classes(path: str | os.PathLike[str]) -> tuple[tuple[str, ...], np.ndarray | None]:
    """Parse a ``classes.txt``: one class per line, ``name [r g b]``.

    See the module's *Rules* for the format. The void-class rule (an ignore index that
    names the last line) is applied by :class:`SegDataset`, not here.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    names : tuple of str, length K
    colours : ndarray, shape (K, 3), uint8, or None
        None when no line gives a colour.

    Raises
    ------
    InputError
        Missing or undecodable file, no class, a malformed line (a colour value outside
        0..255, a colour on some lines only, no name), a name with ``,`` or ``;``,
        duplicate names or colours; each message names the file and line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "classes.txt"
    >>> _ = p.write_text("# CamVid\\nSky 128 128 128\\ntraffic light 250 170 30\\n")
    >>> names, colours = read_classes(p)
    >>> names, colours.tolist()
    (('Sky', 'traffic light'), [[128, 128, 128], [250, 170, 30]])
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"classes file not found: {p} (one class per line: 'name' or 'name r g b')"
        )
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"cannot read classes file {p}: {exc.strerror or exc}") from None
    names: list[str] = []
    colours: list[tuple[int, int, int] | None] = []
    linenos: list[int] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        n_int = 0
        while n_int < len(tokens) and _INT.fullmatch(tokens[len(tokens) - 1 - n_int]):
            n_int += 1
        where = f"{p} line {lineno} ({line!r})"
        colour: tuple[int, int, int] | None = None
        if n_int >= 3:
            rgb = tuple(int(t) for t in tokens[-3:])
            if any(not 0 <= v <= 255 for v in rgb):
                raise InputError(f"{where}: bad colour {rgb}: r g b must lie in 0..255")
            colour = (rgb[0], rgb[1], rgb[2])
            tokens = tokens[:-3]
        if not tokens:
            raise InputError(f"{where}: no class name (expected 'name' or 'name r g b')")
        name = " ".join(tokens)
        if "," in name or ";" in name:
            raise InputError(f"{where}: class names cannot contain ',' or ';' (tags.csv uses them)")
        names.append(name)
        colours.append(colour)
        linenos.append(lineno)
    if not names:
        raise InputError(f"{p} lists no class (one class per line: 'name' or 'name r g b')")
    seen: dict[str, int] = {}
    for name, lineno in zip(names, linenos, strict=True):
        key = name.casefold()
        if key in seen:
            raise InputError(
                f"{p}: duplicate class name {name!r} on lines {seen[key]} and {lineno}"
            )
        seen[key] = lineno
    given = [c is not None for c in colours]
    if not any(given):
        return tuple(names), None
    if not all(given):
        i = given.index(False)
        j = given.index(True)
        raise InputError(
            f"{p} line {linenos[i]} ({names[i]!r}) has no colour 'r g b' (three integers "
            f"0..255) while line {linenos[j]} has one: give every class a colour or none"
        )
    seen_c: dict[tuple[int, int, int] | None, int] = {}
    for colour, lineno in zip(colours, linenos, strict=True):
        if colour in seen_c:
            raise InputError(
                f"{p}: lines {seen_c[colour]} and {lineno} give the same colour {colour}; "
                "class colours must be distinct"
            )
        seen_c[colour] = lineno
    return tuple(names), np.array(colours, dtype=np.uint8)


class Sample(NamedTuple):
    """One image of a split and its mask file (None for a split without masks).

    Examples
    --------
    >>> from pathlib import Path
    >>> s = Sample("a", Path("images/train/a.jpg"), None)
    >>> s.stem, s.mask is None
    ('a', True)
    """

    stem: str
    image: Path
    mask: Path | None


@dataclass(frozen=True)
class SplitReport:
    """What :meth:`SegDataset.validate` found in a split.

    Attributes
    ----------
    split : str
    num_images : int
    has_masks : bool
        False also for a split guarded by :meth:`SegDataset.tags_only`.
    image_counts : ndarray, shape (K,), int64
        Number of images whose tags carry each class.
    pixel_counts : ndarray, shape (K,), int64, or None
        Labelled pixels per class (None without readable masks).
    ignore_pixels : int
        Pixels of the ignore index (0 without readable masks).

    Examples
    --------
    >>> import numpy as np
    >>> r = SplitReport("train", 2, False, np.array([2, 1]), None, 0)
    >>> r.image_counts.tolist()
    [2, 1]
    """

    split: str
    num_images: int
    has_masks: bool
    image_counts: np.ndarray
    pixel_counts: np.ndarray | None
    ignore_pixels: int


#: The samples of one split for :class:`SegDataset`: a sequence, or a callable (called once,
#: when the split is first used) that returns one.
SampleSource = Sequence[Sample] | Callable[[], Sequence[Sample]]


class SegDataset:
    """A semantic-segmentation dataset: K classes, named splits of images, masks and tags.

    Normally made by :func:`open_dataset` or :func:`open_msrc`; the constructor takes
    explicit sample lists for data in no supported layout.

    Parameters
    ----------
    classes : sequence of str
        Class names, index = class index (a last void class is dropped, see
        ``ignore_index``).
    samples : mapping str -> sequence of Sample, or a callable returning one
        Per split; a callable is called (once) when the split is first used, so that a
        broken split does not block the others.
    colours : array_like, shape (len(classes), 3), optional
        Class colours (0..255); None: :func:`default_palette` (and palette / RGB masks
        cannot be checked or decoded by colour).
    ignore_index : int, optional
        Mask value of ignored pixels; default 255 (65535 for more than 255 classes). When
        it indexes a listed class that must be the last, which becomes the void class.
    tags : mapping str -> sequence of str, or path-like, optional
        Image-level labels by stem (class names), or a ``tags.csv`` file.
    layout : str
        How the data was found (``"canonical"``, ``"pairs"``, ``"voc"``, ``"msrc21"``,
        ``"msrc23"``, ``"custom"``); for messages and :func:`repr`.
    root : path-like, optional
        The dataset folder, for messages.
    classes_source : str
        Where the classes came from, for messages.

    Attributes
    ----------
    classes : tuple of str, length K
    colours : ndarray, shape (K, 3), uint8
    colours_given : bool
        Whether ``colours`` came with the classes (else the default palette).
    void_name : str or None
        Name of the dropped void class (the last listed class, when ``ignore_index``
        names it).
    void_colour : tuple of int or None
        Colour of the dropped void class (its RGB-mask pixels are ignored).
    num_classes : int
        K >= 2.
    ignore_index : int
        >= K: mask pixels of this value are ignored.
    layout : str
    root : Path or None
    tags_source : str or None
        The tags file (or mapping) in use; None: tags come from the masks.

    Raises
    ------
    InputError
        Fewer than 2 classes, a bad ignore index or colour array, a bad tags file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (3, 2)).save(d / "x.png")
    >>> Image.fromarray(np.array([[0, 1, 2], [2, 2, 0]], np.uint8)).save(d / "x_gt.png")
    >>> samples = {"val": [Sample("x", d / "x.png", d / "x_gt.png")]}
    >>> ds = SegDataset(["road", "car", "void"], samples, ignore_index=2)
    >>> ds.classes, ds.ignore_index
    (('road', 'car'), 2)
    >>> ds.mask("val", "x").tolist()
    [[0, 1, 2], [2, 2, 0]]
    >>> ds.tag_matrix("val").tolist()
    [[True, True]]
    """

    def __init__(
        self,
        classes: Sequence[str],
        samples: Mapping[str, SampleSource],
        *,
        colours: Any = None,
        ignore_index: int | None = None,
        tags: Mapping[str, Sequence[str]] | str | os.PathLike[str] | None = None,
        layout: str = "custom",
        root: str | os.PathLike[str] | None = None,
        classes_source: str = "the class list",
    ) -> None:
        names = tuple(str(n) for n in classes)
        src = classes_source
        cols: np.ndarray | None = None
        if colours is not None:
            raw = np.asarray(colours)
            if raw.shape != (len(names), 3) or raw.dtype.kind not in "iu":
                raise InputError(
                    f"colours of {src} must be integers of shape ({len(names)}, 3), got "
                    f"{raw.dtype} {raw.shape}"
                )
            if raw.size and (raw.min() < 0 or raw.max() > 255):
                raise InputError(f"colours of {src} must lie in 0..255")
            cols = raw.astype(np.uint8)
        if ignore_index is None:
            ignore = DEFAULT_IGNORE_INDEX if len(names) <= DEFAULT_IGNORE_INDEX else _MAX_INDEX
        elif isinstance(ignore_index, bool) or not isinstance(ignore_index, int | np.integer):
            raise InputError(f"ignore_index must be an integer, got {ignore_index!r}")
        else:
            ignore = int(ignore_index)
        if not 0 <= ignore <= _MAX_INDEX:
            raise InputError(f"ignore_index {ignore} outside 0..{_MAX_INDEX} (masks are 16-bit)")
        self.void_colour: tuple[int, int, int] | None = None
        self.void_name: str | None = None
        if ignore < len(names):
            if ignore != len(names) - 1:
                raise InputError(
                    f"ignore_index {ignore} names class {names[ignore]!r} of {src}, which is "
                    f"not the last of its {len(names)} classes: a void class must be the last "
                    "line (or leave it out and give an ignore index >= the class count)"
                )
            self.void_name = names[-1]
            names = names[:-1]
            if cols is not None:
                r, g, b = (int(v) for v in cols[-1])
                self.void_colour = (r, g, b)
                cols = cols[:-1]
        k = len(names)
        if k < 2:
            void = f" (after dropping the void class {self.void_name!r})" if self.void_name else ""
            raise InputError(
                f"{src} lists {k} class{'es' if k != 1 else ''}{void}; a segmentation needs at "
                "least 2 (e.g. background and foreground)"
            )
        if cols is not None:
            keys = _colour_keys(cols)
            if len(np.unique(keys)) < k:
                raise InputError(f"{src}: class colours must be distinct")
        self.classes: tuple[str, ...] = names
        self.num_classes: int = k
        self.ignore_index: int = ignore
        self.colours_given: bool = cols is not None
        self.colours: np.ndarray = cols if cols is not None else default_palette(k)
        self.colours.setflags(write=False)
        self.layout = layout
        self.root = Path(root) if root is not None else None
        self.classes_source = src
        self._sources: dict[str, SampleSource] = dict(samples)
        if not self._sources:
            raise InputError(f"dataset {self._where()} has no split")
        self._samples_cache: dict[str, tuple[Sample, ...]] = {}
        self._index: dict[str, dict[str, int]] = {}
        self._derived_tags: dict[tuple[str, str], tuple[int, ...]] = {}
        self._guarded: frozenset[str] = frozenset()
        self._tags_orphans_checked = False
        self.tags_source: str | None = None
        self._tag_rows: dict[str, tuple[int, ...]] = {}
        if isinstance(tags, str | os.PathLike):
            self.tags_source = str(tags)
            self._tag_rows = _read_tags(Path(tags), self.classes)
        elif tags is not None:
            self.tags_source = "the tags mapping"
            self._tag_rows = {
                str(stem): self._tag_indices(names_, f"tags of {stem!r}")
                for stem, names_ in tags.items()
            }
        self._colour_table = self._build_colour_table()

    # ------------------------------------------------------------------ description
    def _where(self) -> str:
        return f"{self.layout} dataset at {self.root}" if self.root else f"{self.layout} dataset"

    def __repr__(self) -> str:
        return (
            f"SegDataset(layout={self.layout!r}, root={str(self.root) if self.root else None!r},"
            f" num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"splits={list(self.splits())})"
        )

    def splits(self) -> tuple[str, ...]:
        """The split names, sorted."""
        return tuple(sorted(self._sources))

    def _tag_indices(self, names: Iterable[str], where: str) -> tuple[int, ...]:
        lookup = {n: i for i, n in enumerate(self.classes)}
        out = set()
        for n in names:
            if n not in lookup:
                raise InputError(f"{where}: {n!r} is not a class ({_list_names(self.classes)})")
            out.add(lookup[n])
        return tuple(sorted(out))

    # ------------------------------------------------------------------ listing
    def samples(self, split: str) -> tuple[Sample, ...]:
        """The split's samples, sorted by stem (masks hidden on a tags-only split).

        Raises
        ------
        DatasetNotFoundError
            Unknown split, or a missing folder of it.
        InputError
            An empty split, duplicate stems, masks without images or the reverse.
        """
        items = self._samples(split)
        if split in self._guarded:
            return tuple(s._replace(mask=None) for s in items)
        return items

    def _samples(self, split: str) -> tuple[Sample, ...]:
        if split not in self._sources:
            raise DatasetNotFoundError(
                f"no split {split!r} in the {self._where()}; splits: {', '.join(self.splits())}"
            )
        cached = self._samples_cache.get(split)
        if cached is not None:
            return cached
        src = self._sources[split]
        items = tuple(src() if callable(src) else src)
        if not items:
            raise InputError(f"split {split!r} of the {self._where()} is empty: no images")
        by_stem: dict[str, Sample] = {}
        for s in items:
            if not isinstance(s, Sample):
                raise InputError(f"split {split!r}: samples must be Sample, got {type(s).__name__}")
            if s.stem in by_stem:
                raise InputError(
                    f"duplicate stem {s.stem!r} in split {split!r}: {by_stem[s.stem].image} and "
                    f"{s.image} (one image per stem: remove or rename one)"
                )
            by_stem[s.stem] = s
        with_mask = [s for s in items if s.mask is not None]
        if with_mask and len(with_mask) < len(items):
            lone = next(s for s in items if s.mask is None)
            raise InputError(
                f"image {lone.image} has no mask, while {len(with_mask)} other images of split "
                f"{split!r} have one (e.g. {with_mask[0].mask}): a split is either fully "
                "annotated or has no masks"
            )
        ordered = tuple(sorted(items, key=lambda s: s.stem))
        self._samples_cache[split] = ordered
        self._index[split] = {s.stem: i for i, s in enumerate(ordered)}
        return ordered

    def _sample(self, split: str, stem: str) -> Sample:
        items = self._samples(split)
        i = self._index[split].get(stem)
        if i is None:
            raise InputError(f"no image {stem!r} in split {split!r} of the {self._where()}")
        return items[i]

    def stems(self, split: str) -> tuple[str, ...]:
        """The split's image stems, sorted (the row order of :meth:`tag_matrix`)."""
        return tuple(s.stem for s in self._samples(split))

    def has_masks(self, split: str) -> bool:
        """Whether the split's masks can be read (False without masks or when tags-only)."""
        return split not in self._guarded and self._samples(split)[0].mask is not None

    # ------------------------------------------------------------------ tags-only guard
    def tags_only(self, *splits: str) -> SegDataset:
        """A view whose masks of ``splits`` (default: all) cannot be read.

        For weakly supervised training: :meth:`mask` and :meth:`pair` raise
        :class:`~affseg.errors.InputError` on a guarded split, :meth:`samples` hides its
        mask files and :meth:`has_masks` is False, so a method given the view provably
        learns from images and tags alone. Tags that come from masks (no tags.csv row)
        are still derived internally, as the image-level labels of MSRC's protocol are.
        The other splits (e.g. ``val`` for evaluation) stay readable.

        Returns
        -------
        SegDataset
            A view sharing this dataset's caches.
        """
        for s in splits:
            if s not in self._sources:
                self._samples(s)  # raises DatasetNotFoundError
        view = copy.copy(self)
        view._guarded = self._guarded | frozenset(splits or self._sources)
        return view

    def is_tags_only(self, split: str) -> bool:
        """Whether ``split`` is guarded by :meth:`tags_only`."""
        return split in self._guarded

    def _check_unguarded(self, split: str) -> None:
        if split in self._guarded:
            raise InputError(
                f"split {split!r} is opened tags-only (weak supervision): its pixel masks "
                "cannot be read"
            )

    # ------------------------------------------------------------------ pixels
    def image(self, split: str, stem: str) -> np.ndarray:
        """The photo, shape (H, W, 3) uint8 (:func:`affseg.data.io.read_image`)."""
        return read_image(self._sample(split, stem).image)

    def mask(self, split: str, stem: str) -> np.ndarray:
        """The class map, shape (H, W) int64: 0..K-1, ignored pixels = ``ignore_index``.

        Raises
        ------
        InputError
            Tags-only split, a split without masks, a value outside the classes, a
            palette that does not match the classes' colours, an unknown colour in a
            colour-coded mask, a size other than its image's.
        """
        self._check_unguarded(split)
        s = self._sample(split, stem)
        if s.mask is None:
            raise InputError(
                f"split {split!r} of the {self._where()} has no masks (weakly supervised: "
                "read its tags)"
            )
        m = self._read_mask(s.mask)
        self._check_size(s, m, image_size(s.image))
        return m

    def pair(self, split: str, stem: str) -> tuple[np.ndarray, np.ndarray]:
        """``(image (H, W, 3) uint8, mask (H, W) int64)`` of one sample."""
        return self.image(split, stem), self.mask(split, stem)

    @staticmethod
    def _check_size(s: Sample, m: np.ndarray, hw: tuple[int, int]) -> None:
        if m.shape != hw:
            raise InputError(
                f"mask {s.mask} is {m.shape[1]}x{m.shape[0]} but its image {s.image} is "
                f"{hw[1]}x{hw[0]} (width x height)"
            )

    def _build_colour_table(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.colours_given:
            return None
        keys = _colour_keys(self.colours)
        values = np.arange(self.num_classes, dtype=np.int64)
        if self.void_colour is not None:
            keys = np.append(keys, _colour_keys(np.array([self.void_colour])))
            values = np.append(values, self.ignore_index)
        order = np.argsort(keys)
        return keys[order], values[order]

    def _read_mask(self, path: Path) -> np.ndarray:
        """Decode one mask file to (H, W) int64 class indices, every check applied."""
        with open_image(path, "mask") as im:
            mode = im.mode
            if mode == "P":
                raw = np.asarray(im)
                palette = np.array(im.getpalette() or [], dtype=np.int64)
            elif mode in _INDEX_MODES:
                raw = np.asarray(im)
                palette = None
            elif mode == "RGB":
                return self._decode_colours(np.asarray(im), path)
            else:
                raise InputError(
                    f"mask {path} has mode {mode}; masks are single-channel class indices "
                    "(8/16-bit or palette PNG) or colour-coded RGB"
                )
        m = raw.astype(np.int64)
        if palette is not None and self.colours_given:
            self._check_palette(m, palette.reshape(-1, 3)[:, :3], path)
        self._check_values(m, path)
        return m

    def _check_palette(self, m: np.ndarray, palette: np.ndarray, path: Path) -> None:
        used = np.flatnonzero(np.bincount(m.ravel(), minlength=1))
        used = used[used < self.num_classes]
        if not used.size:
            return
        if used[-1] >= len(palette):
            raise InputError(
                f"palette mask {path} uses index {int(used[-1])} but its palette has only "
                f"{len(palette)} colours"
            )
        wrong = np.flatnonzero((palette[used] != self.colours[used]).any(axis=1))
        if wrong.size:
            c = int(used[wrong[0]])
            raise InputError(
                f"palette mask {path}: its colour for index {c} is "
                f"{tuple(int(v) for v in palette[c])} but {self.classes_source} gives class {c} "
                f"({self.classes[c]!r}) the colour {tuple(int(v) for v in self.colours[c])}: "
                "the palette does not match the classes' colours (save the mask as class "
                "indices, or fix the colours)"
            )

    def _check_values(self, m: np.ndarray, path: Path) -> None:
        bad = ((m >= self.num_classes) & (m != self.ignore_index)) | (m < 0)
        if bad.any():
            vals = np.unique(m[bad])
            shown = ", ".join(str(int(v)) for v in vals[:8]) + (" ..." if len(vals) > 8 else "")
            raise InputError(
                f"mask {path} holds value{'s' if len(vals) > 1 else ''} {shown} "
                f"({int(bad.sum())} pixels), neither a class (0..{self.num_classes - 1}) nor "
                f"the ignore index {self.ignore_index}"
            )

    def _decode_colours(self, rgb: np.ndarray, path: Path) -> np.ndarray:
        if self._colour_table is None:
            raise InputError(
                f"mask {path} is colour-coded (RGB) but {self.classes_source} gives no colours: "
                "add 'r g b' to every class, or convert the masks to class-index PNGs"
            )
        sorted_keys, values = self._colour_table
        keys = _colour_keys(rgb)
        pos = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
        known = sorted_keys[pos] == keys
        if not known.all():
            u, counts = np.unique(keys[~known], return_counts=True)
            top = u[np.argsort(-counts, kind="stable")][:5]
            shown = ", ".join(
                str((int(k >> 16) & 255, int(k >> 8) & 255, int(k) & 255)) for k in top
            )
            raise InputError(
                f"colour-coded mask {path} holds {len(u)} colour{'s' if len(u) > 1 else ''} "
                f"that no class of {self.classes_source} has: {shown}"
                f"{' ...' if len(u) > 5 else ''}"
            )
        return values[pos]

    # ------------------------------------------------------------------ tags
    def tags(self, split: str, stem: str) -> tuple[int, ...]:
        """Image-level labels: the sorted class indices the image carries.

        Its tags.csv row when it has one, else the classes present in its mask (read even
        on a tags-only split: only the labels leave this method).

        Raises
        ------
        InputError
            An image with neither a tags row nor a mask.
        """
        s = self._sample(split, stem)
        row = self._tag_rows.get(stem)
        if row is not None:
            return row
        key = (split, stem)
        got = self._derived_tags.get(key)
        if got is None:
            if s.mask is None:
                raise InputError(
                    f"image {s.image} has no mask and no row in "
                    f"{self.tags_source or 'tags.csv'}: its image-level labels are unknown"
                )
            m = self._read_mask(s.mask)
            got = tuple(int(c) for c in np.flatnonzero(self._class_counts(m)))
            self._derived_tags[key] = got
        return got

    def _class_counts(self, m: np.ndarray) -> np.ndarray:
        return np.bincount(m[m < self.num_classes], minlength=self.num_classes)

    def tag_matrix(self, split: str, *, progress: bool | None = None) -> np.ndarray:
        """Image-level labels of a whole split, shape (N, K) bool, rows in :meth:`stems` order.

        Parameters
        ----------
        progress : bool, optional
            tqdm bar while masks are decoded; default: for 200 images or more on a terminal.
        """
        stems = self.stems(split)
        out = np.zeros((len(stems), self.num_classes), dtype=bool)
        for i, stem in enumerate(_bar(stems, f"tags {split}", progress)):
            out[i, list(self.tags(split, stem))] = True
        return out

    def _check_tag_rows(self) -> None:
        """Every tags row names an image of some split (checked once)."""
        if self._tags_orphans_checked or not self._tag_rows:
            return
        known: set[str] = set()
        for split in self.splits():
            known.update(self._index[split] if split in self._index else self.stems(split))
        orphans = sorted(set(self._tag_rows) - known)
        if orphans:
            more = f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else ""
            raise InputError(
                f"{self.tags_source} has a row for {orphans[0]!r}{more}, which is an image of "
                f"no split ({', '.join(self.splits())})"
            )
        self._tags_orphans_checked = True

    # ------------------------------------------------------------------ checks
    def validate(
        self, split: str, *, training: bool | None = None, progress: bool | None = None
    ) -> SplitReport:
        """Check a whole split before any work: one InputError naming the file and problem.

        Images are checked from their headers (:func:`affseg.data.io.image_size`: readable,
        RGB, size); masks are decoded (values in the class list or the ignore index,
        palette colours, colour codes, same size as the image); every image needs tags
        (a tags.csv row or a mask); tags.csv rows must name images of the dataset. On a
        :meth:`tags_only` split the masks of images with a tags row are not read. Problems
        of several files are reported together: the first in full, then how many more.

        Parameters
        ----------
        split : str
        training : bool, optional
            Also require every class to be carried by some image (a class that training
            never sees cannot be learned). Default: ``split == "train"``.
        progress : bool, optional
            tqdm bar; default: for 200 images or more on a terminal.

        Returns
        -------
        SplitReport

        Raises
        ------
        DatasetNotFoundError
            Unknown split or a missing folder.
        InputError
            Any bad file or content (see above).
        """
        samples = self._samples(split)
        self._check_tag_rows()
        k = self.num_classes
        image_counts = np.zeros(k, np.int64)
        pixel_counts = np.zeros(k, np.int64)
        ignore_pixels = 0
        problems: list[str] = []
        for s in _bar(samples, f"checking {split}", progress):
            try:
                hw = image_size(s.image)
                present: np.ndarray | None = None
                # a tags-only split never decodes the mask of an image its tags row covers
                unread = split in self._guarded and s.stem in self._tag_rows
                if s.mask is not None and not unread:
                    m = self._read_mask(s.mask)
                    self._check_size(s, m, hw)
                    counts = self._class_counts(m)
                    pixel_counts += counts
                    ignore_pixels += int(m.size - counts.sum())
                    present = counts > 0
                    self._derived_tags[(split, s.stem)] = tuple(
                        int(c) for c in np.flatnonzero(present)
                    )
            except AffsegError as exc:
                problems.append(str(exc))
                continue
            row = self._tag_rows.get(s.stem)
            if row is not None:
                image_counts[list(row)] += 1
            elif present is not None:
                image_counts += present
            else:
                problems.append(
                    f"image {s.image} has no mask and no row in "
                    f"{self.tags_source or 'tags.csv'}: its image-level labels are unknown"
                )
        if problems:
            more = (
                f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''} in "
                f"split {split!r}; the next: {problems[1]})"
                if len(problems) > 1
                else ""
            )
            raise InputError(problems[0] + more)
        if split == "train" if training is None else training:
            missing = [self.classes[c] for c in np.flatnonzero(image_counts == 0)]
            if missing:
                raise InputError(
                    f"no image of split {split!r} carries class"
                    f"{'es' if len(missing) > 1 else ''} {_list_names(missing, 'none')} "
                    f"(by its tags): a class training never sees cannot be learned; drop it "
                    f"from {self.classes_source} or add images that show it"
                )
        readable = self.has_masks(split)
        return SplitReport(
            split=split,
            num_images=len(samples),
            has_masks=readable,
            image_counts=image_counts,
            pixel_counts=pixel_counts if readable else None,
            ignore_pixels=ignore_pixels if readable else 0,
        )

    def fingerprint(self, split: str, *, quick: bool = False, progress: bool | None = None) -> str:
        """A sha256 hex digest of everything the split's reading depends on.

        The class names, colours (when given), void colour and ignore index, then per image
        (by stem): the stem, the image and mask file names and their bytes, and its
        tags row. A change of any file's content changes it; a copy of the dataset
        elsewhere, or touching files, does not. ``quick=True`` hashes each file's size and
        modification time (ns) instead of its bytes: no reading, but any rewrite changes it.
        """
        samples = self._samples(split)
        h = hashlib.sha256()
        head = {
            "classes": list(self.classes),
            "colours": self.colours.tolist() if self.colours_given else None,
            "void_colour": self.void_colour,
            "ignore_index": self.ignore_index,
            "mask_decoder": self._decoder_name(),
        }
        h.update(json.dumps(head, sort_keys=True).encode())
        for s in _bar(samples, f"hashing {split}", progress):
            h.update(f"\0{s.stem}\0".encode())
            for p in (s.image, s.mask):
                if p is None:
                    h.update(b"-")
                    continue
                h.update(p.name.encode() + b"\0")
                h.update(_file_digest(p, quick))
            row = self._tag_rows.get(s.stem)
            h.update(b"" if row is None else json.dumps(row).encode())
        return h.hexdigest()

    def _decoder_name(self) -> str:
        return "indices"


# ---------------------------------------------------------------------- helpers
def _colour_keys(rgb: np.ndarray) -> np.ndarray:
    """Pack (..., 3) colours into one int64 key per colour (...,)."""
    c = np.asarray(rgb).astype(np.int64)
    return (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]


def _list_names(names: Sequence[str], what: str = "classes") -> str:
    shown = ", ".join(repr(n) for n in names[:12])
    extra = f", ... ({len(names)} in all)" if len(names) > 12 else ""
    return f"{shown}{extra}" if what == "none" else f"{what}: {shown}{extra}"


def _bar(items: Sequence[_T], desc: str, progress: bool | None) -> Iterable[_T]:
    from tqdm import tqdm

    disable: bool | None
    if progress is None:
        disable = True if len(items) < 200 else None  # None: on a terminal only
    else:
        disable = not progress
    return tqdm(items, desc=desc, disable=disable, leave=False, dynamic_ncols=True)


def _file_digest(p: Path, quick: bool) -> bytes:
    try:
        if quick:
            st = p.stat()
            return f"{st.st_size}:{st.st_mtime_ns}".encode()
        with open(p, "rb") as f:
            return hashlib.file_digest(f, "sha256").digest()
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}") from None


def _read_tags(path: Path, classes: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``tags.csv`` (``stem,name;name;...``) into stem -> sorted class indices."""
    if not path.is_file():
        raise InputError(f"tags file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lookup = {n: i for i, n in enumerate(classes)}
    rows: dict[str, tuple[int, ...]] = {}
    lines: dict[str, int] = {}
    header_allowed = True
    for lineno, fields in enumerate(csv.reader(text.splitlines()), 1):
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in fields]
        if header_allowed and [f.lower() for f in fields] == ["stem", "tags"]:
            header_allowed = False
            continue
        header_allowed = False
        where = f"{path} line {lineno}"
        if len(fields) != 2:
            raise InputError(
                f"{where}: expected 'stem,name;name;...' (2 fields), got {len(fields)} "
                "(separate class names with ';')"
            )
        stem, names = fields
        if not stem:
            raise InputError(f"{where}: no stem")
        if stem in rows:
            raise InputError(f"{where}: stem {stem!r} already has a row (line {lines[stem]})")
        idx = set()
        for n in (t.strip() for t in names.split(";")):
            if not n:
                continue
            if n not in lookup:
                raise InputError(f"{where}: tag {n!r} names no class ({_list_names(classes)})")
            idx.add(lookup[n])
        rows[stem] = tuple(sorted(idx))
        lines[stem] = lineno
    return rows


def _list_files(folder: Path, suffixes: Sequence[str], what: str) -> dict[str, Path]:
    """stem -> file of the regular, non-hidden files of ``folder`` with ``suffixes``."""
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{what} folder not found: {folder}")
    files: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.name.startswith(".") or not f.is_file():
            continue
        suf = f.suffix.lower()
        if suf not in suffixes:
            if what == "masks" and suf in IMAGE_SUFFIXES:
                raise InputError(
                    f"mask {f}: {suf} is not a mask format (masks are lossless PNG, BMP or "
                    "TIFF: lossy compression changes class indices)"
                )
            continue
        if f.stem in files:
            raise InputError(
                f"duplicate stem {f.stem!r}: {files[f.stem]} and {f} (one file per stem: "
                "remove or rename one)"
            )
        files[f.stem] = f
    return files


def _pair_lister(
    images: Path, masks: Path | None, split: str, mask_suffix: str = ""
) -> Callable[[], list[Sample]]:
    """A lister of images matched by stem with ``masks`` (stem + ``mask_suffix``)."""

    def lister() -> list[Sample]:
        imgs = _list_files(images, IMAGE_SUFFIXES, "images")
        if not imgs:
            raise InputError(
                f"split {split!r} is empty: no images ({', '.join(IMAGE_SUFFIXES)}) in {images}"
            )
        if masks is None:
            return [Sample(stem, p, None) for stem, p in imgs.items()]
        found = _list_files(masks, MASK_SUFFIXES, "masks")
        by_stem: dict[str, Path] = {}
        for mstem, p in found.items():
            if mask_suffix and not mstem.endswith(mask_suffix):
                continue
            by_stem[mstem[: len(mstem) - len(mask_suffix)]] = p
        orphans = sorted(set(by_stem) - set(imgs))
        if orphans:
            more = f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else ""
            raise InputError(f"mask {by_stem[orphans[0]]} has no image in {images}{more}")
        missing = sorted(set(imgs) - set(by_stem))
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputError(
                f"image {imgs[missing[0]]} has no mask in {masks}{more} (a split is either "
                "fully annotated or has no masks folder)"
            )
        return [Sample(stem, p, by_stem[stem]) for stem, p in imgs.items()]

    return lister


def _subdirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


# ---------------------------------------------------------------------- layouts
def _open_canonical(
    root: Path,
    classes: str | os.PathLike[str] | Sequence[str] | None,
    ignore_index: int | None,
    tags: str | os.PathLike[str] | None,
) -> SegDataset:
    images_root, masks_root = root / "images", root / "masks"
    splits = _subdirs(images_root)
    if not splits:
        loose = [f for f in images_root.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES]
        hint = f" (it holds {len(loose)} images directly: move them to images/train/)"
        raise InputError(
            f"{images_root} has no split folders (images/<split>/<stem>.<ext>)"
            + (hint if loose else "")
        )
    mask_splits = _subdirs(masks_root) if masks_root.is_dir() else []
    stray = sorted(set(mask_splits) - set(splits))
    if stray:
        raise InputError(
            f"{masks_root / stray[0]} has no images folder {images_root / stray[0]} "
            f"(image splits: {', '.join(splits)})"
        )
    names, colours, source = _classes_arg(classes, root / "classes.txt")
    if tags is None and (root / "tags.csv").is_file():
        tags = root / "tags.csv"
    sources = {
        s: _pair_lister(images_root / s, masks_root / s if s in mask_splits else None, s)
        for s in splits
    }
    return SegDataset(
        names,
        sources,
        colours=colours,
        ignore_index=ignore_index,
        tags=tags,
        layout="canonical",
        root=root,
        classes_source=source,
    )


def _classes_arg(
    classes: str | os.PathLike[str] | Sequence[str] | None, default: Path | None
) -> tuple[tuple[str, ...], np.ndarray | None, str]:
    """(names, colours or None, description) from a classes argument or file."""
    if classes is None:
        if default is None:
            raise InputError("give the classes (a classes.txt file: one 'name [r g b]' a line)")
        if not default.is_file():
            raise InputError(
                f"{default.parent} has no classes.txt (one class per line: 'name' or "
                "'name r g b'; line i = class i)"
            )
        classes = default
    if isinstance(classes, str | os.PathLike):
        names, colours = read_classes(classes)
        return names, colours, str(classes)
    return tuple(str(n) for n in classes), None, "the class list"


def _find_voc(root: Path) -> Path | None:
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir():
            return cand
    return None


def _open_voc(
    base: Path,
    classes: str | os.PathLike[str] | Sequence[str] | None,
    ignore_index: int | None,
    tags: str | os.PathLike[str] | None,
) -> SegDataset:
    sets = base / "ImageSets" / "Segmentation"
    if not sets.is_dir():
        raise DatasetNotFoundError(
            f"{base} looks like PASCAL VOC (JPEGImages/) but has no {sets} with the split lists"
        )
    splits = sorted(p.stem for p in sets.glob("*.txt") if not p.name.startswith("."))
    if not splits:
        raise InputError(f"{sets} holds no split list (<split>.txt)")

    def lister_for(split: str) -> Callable[[], list[Sample]]:
        def lister() -> list[Sample]:
            listing = sets / f"{split}.txt"
            out: list[Sample] = []
            seen: dict[str, int] = {}
            for lineno, raw in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
                stem = raw.strip().split(" ")[0] if raw.strip() else ""
                if not stem:
                    continue
                if stem in seen:
                    raise InputError(
                        f"{listing} line {lineno}: {stem!r} already listed on line {seen[stem]}"
                    )
                seen[stem] = lineno
                img = base / "JPEGImages" / f"{stem}.jpg"
                if not img.is_file():
                    raise InputError(
                        f"{listing} line {lineno} names {stem!r}, but {img} is missing"
                    )
                mask = base / "SegmentationClass" / f"{stem}.png"
                out.append(Sample(stem, img, mask if mask.is_file() else None))
            if not out:
                raise InputError(f"split {split!r} is empty: {listing} lists no image")
            return out

        return lister

    if classes is None:
        names: tuple[str, ...] = VOC_CLASSES
        colours: np.ndarray | None = default_palette(len(VOC_CLASSES))
        source = "VOC's classes"
    else:
        names, colours, source = _classes_arg(classes, None)
    if tags is None and (base / "tags.csv").is_file():
        tags = base / "tags.csv"
    ds = SegDataset(
        names,
        {s: lister_for(s) for s in splits},
        colours=colours,
        ignore_index=ignore_index,
        tags=tags,
        layout="voc",
        root=base,
        classes_source=source,
    )
    if classes is None and ds.ignore_index == DEFAULT_IGNORE_INDEX:
        ds.void_colour = VOC_IGNORE_COLOUR
        ds._colour_table = ds._build_colour_table()
    return ds


class _MSRCDataset(SegDataset):
    """MSRC-v2 through :mod:`affseg.data.msrc`'s colour decoding (void -> ignore 255)."""

    def __init__(
        self, folder: Path, vocabulary: str, tags: str | os.PathLike[str] | None = None
    ) -> None:
        if vocabulary not in ("msrc21", "msrc23"):
            raise InputError(f"MSRC vocabulary must be 'msrc21' or 'msrc23', got {vocabulary!r}")
        self._msrc21 = vocabulary == "msrc21"
        ids_names = _msrc.MSRC21_CLASS_NAMES if self._msrc21 else _msrc.CLASS_NAMES
        names = ids_names[1:]
        colours = _msrc.CLASS_COLOURS[[_msrc.CLASS_NAMES.index(n) for n in names]]
        images_root, gt_root = folder / "images", folder / "groundTruth"
        splits = _subdirs(images_root)
        if not splits:
            raise DatasetNotFoundError(f"MSRC_v2 at {folder} has no split folders in {images_root}")
        sources = {
            s: _pair_lister(
                images_root / s, gt_root / s if (gt_root / s).is_dir() else None, s, "_GT"
            )
            for s in splits
        }
        super().__init__(
            names,
            sources,
            colours=colours,
            ignore_index=DEFAULT_IGNORE_INDEX,
            tags=tags,
            layout=vocabulary,
            root=folder,
            classes_source=f"MSRC's {'21' if self._msrc21 else '23'} classes",
        )
        # MSRC id (0 = void, 1..) -> class index (void -> ignore)
        self._lut = np.concatenate([[self.ignore_index], np.arange(self.num_classes)]).astype(
            np.int64
        )

    def _read_mask(self, path: Path) -> np.ndarray:
        with open_image(path, "MSRC ground truth") as im:
            if im.mode not in ("RGB", "P"):
                raise InputError(f"MSRC ground truth {path} has mode {im.mode}; expected RGB")
            rgb = np.asarray(im.convert("RGB"))
        try:
            ids = _msrc.decode_colours(rgb)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        if self._msrc21:
            ids = _msrc.to_msrc21(ids)
        return self._lut[ids]

    def _decoder_name(self) -> str:
        return self.layout


def _is_msrc(root: Path) -> bool:
    return (
        (root / "images").is_dir()
        and (root / "groundTruth").is_dir()
        and not (root / "classes.txt").is_file()
        and not (root / "masks").is_dir()
    )


def open_msrc(root: str | os.PathLike[str] | None = None, vocabulary: str = "msrc21") -> SegDataset:
    """MSRC-v2 as a :class:`SegDataset` (splits ``train``: 298, ``val``: 57 images).

    Ground truth is decoded by :func:`affseg.data.msrc.decode_colours` (unknown colours
    refused); void (black) is ignored (index 255).

    Parameters
    ----------
    root : path-like, optional
        The data root holding ``MSRC_v2/`` (as :mod:`affseg.data.msrc`), or the
        ``MSRC_v2`` folder itself; default :func:`affseg.data.paths.data_root`.
    vocabulary : {"msrc21", "msrc23"}
        ``"msrc21"``: the 21 classes of the MSRC-21 protocol (horse and mountain are
        void); ``"msrc23"``: all 23 classes of MSRC-v2. Class index = MSRC id - 1.

    Returns
    -------
    SegDataset

    Raises
    ------
    DatasetNotFoundError
        No MSRC_v2 folder.

    Examples
    --------
    >>> ds = open_msrc(vocabulary="msrc23")            # doctest: +SKIP
    >>> ds.num_classes, len(ds.stems("train"))         # doctest: +SKIP
    (23, 298)
    """
    if root is not None and _is_msrc(Path(root)):
        folder = Path(root)
    else:
        folder = dataset_dir("MSRC_v2", root)
    return _MSRCDataset(folder, vocabulary)


def open_dataset(
    data: str | os.PathLike[str] | None = None,
    *,
    images: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
    masks: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
    classes: str | os.PathLike[str] | Sequence[str] | None = None,
    ignore_index: int | None = None,
    tags: str | os.PathLike[str] | None = None,
    split: str = "train",
) -> SegDataset:
    """Open a semantic-segmentation dataset, detecting its layout.

    Either ``data`` (a folder: PASCAL VOC, canonical or MSRC-v2 layout, detected in that
    order) or ``images`` (pairs of folders). See the module's *Layouts* and *Rules*.
    Opening lists the split folders and parses the class list and tags; the files of a
    split are listed when it is first used and checked by :meth:`SegDataset.validate`.

    Parameters
    ----------
    data : path-like, optional
        The dataset folder.
    images, masks : path-like or mapping str -> path-like, optional
        Pairs mode: one folder (one split named ``split``) or ``{split: folder}`` each;
        ``masks`` may be absent or lack splits (weakly supervised splits).
    classes : path-like or sequence of str, optional
        A classes.txt file (required in pairs mode; default ``DIR/classes.txt``), or the
        class names (no colours).
    ignore_index : int, optional
        Default 255 (65535 above 255 classes); see *Rules* for a listed void class.
    tags : path-like, optional
        A tags.csv (default ``DIR/tags.csv`` when present).
    split : str
        The split name of a single pair of folders.

    Returns
    -------
    SegDataset

    Raises
    ------
    DatasetNotFoundError
        A missing folder.
    InputError
        Conflicting or missing arguments, an unrecognised folder, a bad classes.txt or
        tags.csv, fewer than 2 classes.

    Examples
    --------
    Pairs of folders (CamVid's layout: 11 classes listed, 11 = Unlabelled):

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("train", "trainannot"):
    ...     (d / sub).mkdir()
    >>> Image.new("RGB", (2, 2)).save(d / "train" / "f1.jpg")
    >>> Image.fromarray(np.array([[0, 1], [2, 3]], np.uint8)).save(d / "trainannot" / "f1.png")
    >>> _ = (d / "classes.txt").write_text("Sky\\nRoad\\nCar\\n")
    >>> ds = open_dataset(images=d / "train", masks=d / "trainannot", classes=d / "classes.txt",
    ...                   ignore_index=3)
    >>> ds.layout, ds.splits(), ds.num_classes, ds.tags("train", "f1")
    ('pairs', ('train',), 3, (0, 1, 2))
    """
    if data is not None and (images is not None or masks is not None):
        raise InputError("give either data=DIR or images=/masks= folders, not both")
    if data is not None:
        root = Path(data)
        if not root.exists():
            raise DatasetNotFoundError(f"dataset folder not found: {root}")
        if not root.is_dir():
            raise InputError(f"dataset {root} is not a folder")
        voc = _find_voc(root)
        if voc is not None:
            return _open_voc(voc, classes, ignore_index, tags)
        if _is_msrc(root):
            if classes is not None or ignore_index is not None:
                raise InputError(
                    f"{root} is MSRC-v2, whose classes are fixed: use open_msrc(vocabulary="
                    "'msrc21' or 'msrc23')"
                )
            return _MSRCDataset(root, "msrc21", tags)
        if (root / "images").is_dir():
            return _open_canonical(root, classes, ignore_index, tags)
        raise InputError(
            f"{root} is no dataset layout affseg reads: expected classes.txt + "
            "images/<split>/ (+ masks/<split>/), PASCAL VOC (JPEGImages/, "
            "ImageSets/Segmentation/), or MSRC-v2 (images/, groundTruth/); or give "
            "images= and masks= folders"
        )
    if images is None:
        if masks is not None:
            raise InputError("masks= needs images= (the folders are matched by stem)")
        raise InputError("give data=DIR (a dataset folder) or images=DIR (and masks=DIR)")
    if classes is None:
        raise InputError("images=/masks= folders need classes= (a classes.txt file)")
    if isinstance(images, Mapping):
        image_dirs = {str(k): Path(v) for k, v in images.items()}
        if masks is not None and not isinstance(masks, Mapping):
            raise InputError("images= is a mapping {split: folder}: give masks= as one too")
        mask_dirs = {str(k): Path(v) for k, v in (masks or {}).items()}
    else:
        if isinstance(masks, Mapping):
            raise InputError("masks= is a mapping {split: folder}: give images= as one too")
        image_dirs = {split: Path(images)}
        mask_dirs = {split: Path(masks)} if masks is not None else {}
    if not image_dirs:
        raise InputError("images= names no folder")
    stray = sorted(set(mask_dirs) - set(image_dirs))
    if stray:
        raise InputError(f"masks= has split {stray[0]!r}, which images= lacks")
    for what, dirs in (("images", image_dirs), ("masks", mask_dirs)):
        for s, p in dirs.items():
            if not p.is_dir():
                raise DatasetNotFoundError(f"{what} folder of split {s!r} not found: {p}")
    names, colours, source = _classes_arg(classes, None)
    common = os.path.commonpath([str(p.resolve()) for p in image_dirs.values()])
    return SegDataset(
        names,
        {s: _pair_lister(p, mask_dirs.get(s), s) for s, p in image_dirs.items()},
        colours=colours,
        ignore_index=ignore_index,
        tags=tags,
        layout="pairs",
        root=Path(common),
        classes_source=source,
    )

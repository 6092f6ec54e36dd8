"""The BSDS500 boundary benchmark (Martin et al. 2004; Arbelaez et al., TPAMI 2011).

Faithful to the BSR bench (``evaluation_bdry_image.m``, ``correspondPixels``,
``collect_eval_bdry.m``):

* the machine boundary map at threshold t is ``pb >= t`` thinned to one-pixel width
  (``bwmorph(.., 'thin', inf)``, :func:`skimage.morphology.thin`), where ``pb`` is
  ``ucm2[2::2, 2::2]`` for a UCM, ``png / 255`` for a soft boundary map; a list of
  segmentations gives one map per segmentation (``seg2bdry(.., 'imageSize')``, thinned);
* each annotator's boundaries are matched to the machine pixels by a minimum-cost
  bipartite assignment: pixels closer than ``0.0075`` of the image diagonal may match at
  cost ``rint(100 * distance)``, every unmatched pixel costs the outlier cost
  (``100 * maxDist``, in the same units), i.e. the most matches, then the shortest ones;
* counts per threshold: ``cntR`` = matched ground-truth pixels summed over annotators,
  ``sumR`` = their boundary pixels, ``cntP`` = machine pixels matched to at least one
  annotator, ``sumP`` = machine pixels;
* ODS: best F of the pooled counts with linear interpolation between consecutive
  thresholds (``maxF``, 100 steps); OIS: each image at its own best threshold (last argmax
  of F, no interpolation), counts pooled; AP: area under the pooled PR curve, precision
  interpolated at recall 0, 0.01, ..., 1 (``interp1`` over the unique recalls, outside -> 0).

The official matcher (Goldberg's CSA) solves the assignment on a random sparse outlier
graph, so it moves results by ~1e-4 from run to run (and finds slightly fewer matches than
the optimum); this module solves the same assignment exactly and is deterministic: the
matching is the one :func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`
(LAPJVsp) returns on the candidate graph (:func:`_assign`, the reference path), computed
by a port of that algorithm that touches only the columns each search reaches
(:mod:`affseg.metrics._boundary_match`: same pairs, a fraction of the time). On the BSR
demo it reproduces the official ODS / OIS / AP within 6e-4 (the three official runs on the
same boundaries differ by up to 4e-4). Thresholds whose thresholded maps coincide are
scored once.

The per-image state (four count vectors) is mergeable: score images anywhere, then
:meth:`BoundaryBenchmark.merge` or :meth:`BoundaryBenchmark.add` the states in any order
of arrival; :meth:`compute` pools them in image-id order of insertion.

Example
-------
>>> bench = BoundaryBenchmark()                               # doctest: +SKIP
>>> for image_id, ucm2, gts in data:                          # doctest: +SKIP
...     bench.update(ucm2, gts, image_id)
>>> bench.compute()["ods"]                                    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from affseg.errors import InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.metrics.region import ucm_if_hierarchy

#: Matching tolerance as a fraction of the image diagonal (BSR default).
MAX_DIST = 0.0075
#: Outlier cost, in units of ``maxDist`` (BSR default).
OUTLIER_COST = 100.0
#: Integer cost scale of the official matcher (distances are ``rint(100 * d)``).
_MULTIPLIER = 100


def bsr_thresholds(n: int = 99) -> np.ndarray:
    """The BSR bench's thresholds of a boundary map: ``linspace(1/(n+1), 1-1/(n+1), n)``."""
    if n < 1:
        raise InputError(f"the number of thresholds must be >= 1, got {n}")
    return np.linspace(1 / (n + 1), 1 - 1 / (n + 1), n)


def seg_to_boundaries(seg: np.ndarray) -> np.ndarray:
    """Boundary pixels of a label map, as BSR's ``seg2bdry(seg, 'imageSize')``.

    A pixel is on a boundary when its label differs from the pixel below or to the right
    (or, at a corner, when one of the edges meeting there does); the last row / column copy
    the one before.

    Parameters
    ----------
    seg : ndarray, shape (H, W)

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    s = np.asarray(seg)
    if s.ndim != 2 or min(s.shape) < 1:
        raise InputError(f"a segmentation must be a 2-D label map; got shape {s.shape}")
    h, w = s.shape
    ev = np.zeros((h, w), dtype=bool)  # label differs from the pixel below
    ev[:-1] = s[:-1] != s[1:]
    eh = np.zeros((h, w), dtype=bool)  # label differs from the pixel to the right
    eh[:, :-1] = s[:, :-1] != s[:, 1:]
    # double-size map b (2H+1, 2W+1); the image-size map is b[2::2, 2::2]: its pixel (i, j)
    # is the grid corner below-right of pixel (i, j)
    out = np.zeros((h, w), dtype=bool)
    if h > 1 and w > 1:
        out[:-1, :-1] = eh[:-1, :-1] | eh[1:, :-1] | ev[:-1, :-1] | ev[:-1, 1:]
    if h > 1:  # b[:, end] = b[:, end-1]: the last column repeats the vertical edgels
        out[:-1, -1] = ev[:-1, -1]
    if w > 1:  # b[end, :] = b[end-1, :]: the last row repeats the horizontal edgels
        out[-1, :-1] = eh[-1, :-1]
    return out  # the last pixel (H-1, W-1) stays False, as in seg2bdry


def thin(bmap: np.ndarray) -> np.ndarray:
    """Morphological thinning to one-pixel-wide curves (``bwmorph(bmap, 'thin', inf)``).

    :func:`skimage.morphology.thin`, computed by a port that visits only the set pixels
    (same result).
    """
    b = np.asarray(bmap, dtype=bool)
    if b.ndim != 2:
        raise InputError(f"a boundary map must be 2-D; got shape {b.shape}")
    if not b.any():
        return b
    from affseg.metrics._boundary_match import thin_map

    out = thin_map(b)
    if out is None:  # pragma: no cover - scikit-image without the lookup tables
        from skimage.morphology import thin as _thin

        out = _thin(b)
    return out


class _Target:
    """One annotator's boundary pixels, indexed for fast neighbour look-up."""

    def __init__(self, bmap: np.ndarray, max_dist: float) -> None:
        b = np.asarray(bmap, dtype=bool)
        self.shape = b.shape
        self.n = int(b.sum())
        self.r = r = int(np.ceil(max_dist))
        y, x = np.nonzero(b)
        self.y, self.x = y, x
        idx = np.full((b.shape[0] + 2 * r, b.shape[1] + 2 * r), -1, dtype=np.int64)
        idx[y + r, x + r] = np.arange(y.size)
        self.index = idx
        offs = [
            (u, v)
            for u in range(-r, r + 1)
            for v in range(-r, r + 1)
            if u * u + v * v <= max_dist * max_dist
        ]
        self.offsets = np.asarray(offs, dtype=np.int64).reshape(-1, 2)
        self.costs = np.rint(np.hypot(self.offsets[:, 0], self.offsets[:, 1]) * _MULTIPLIER)

    def match(self, y: np.ndarray, x: np.ndarray, outlier: float) -> tuple[np.ndarray, np.ndarray]:
        """Matched (machine pixel, annotator pixel) pairs: :func:`_assign` of :meth:`edges`."""
        from affseg.metrics._boundary_match import match_pixels

        return match_pixels(
            y, x, self.index, self.y, self.x, self.r, self.offsets, self.costs, outlier
        )

    def edges(self, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(machine pixel, annotator pixel, integer cost) of every pair within maxDist."""
        r = self.r
        ii, jj, cc = [], [], []
        for (u, v), c in zip(self.offsets, self.costs, strict=True):
            j = self.index[y + (r + u), x + (r + v)]
            ok = np.flatnonzero(j >= 0)
            if ok.size:
                ii.append(ok)
                jj.append(j[ok])
                cc.append(np.full(ok.size, c))
        if not ii:
            e = np.zeros(0, dtype=np.int64)
            return e, e, np.zeros(0)
        return np.concatenate(ii), np.concatenate(jj), np.concatenate(cc)


def _assign(
    i: np.ndarray, j: np.ndarray, c: np.ndarray, n1: int, outlier: float
) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment with outliers: which pixel pairs are matched (reference).

    Nodes are machine pixels ``i`` and annotator pixels ``j``; the edge (i, j) costs ``c``;
    every unmatched pixel costs ``outlier``. Since every match removes two outliers, the
    problem is: the matching of minimum ``sum(c) - outlier * size``. It is solved exactly as
    a full matching of the smaller side, each of its nodes also joined to a private
    "unmatched" node at cost ``outlier`` (:func:`scipy.sparse.csgraph.
    min_weight_full_bipartite_matching`, LAPJVsp).

    The benchmark itself calls :meth:`_Target.match`, which returns the same pairs faster.

    Returns
    -------
    (matched_i, matched_j) : ndarray, the matched pairs
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    # only nodes with an edge take part (the others are unmatched anyway)
    ui, ii = np.unique(i, return_inverse=True)
    uj, jj = np.unique(j, return_inverse=True)
    a, b = ui.size, uj.size
    rows_small = a <= b
    r, col, n_r, n_c = (ii, jj, a, b) if rows_small else (jj, ii, b, a)
    rows = np.concatenate([r, np.arange(n_r)])
    cols = np.concatenate([col, n_c + np.arange(n_r)])
    # +1 on every weight: a full matching always has n_r edges, so the optimum is unchanged
    # and no weight is an (ignored) explicit zero
    w = np.concatenate([c + 1.0, np.full(n_r, outlier + 1.0)])
    graph = csr_matrix((w, (rows, cols)), shape=(n_r, n_c + n_r))
    r_ind, c_ind = min_weight_full_bipartite_matching(graph)
    real = c_ind < n_c
    r_ind, c_ind = r_ind[real], c_ind[real]
    if rows_small:
        return ui[r_ind], uj[c_ind]
    return ui[c_ind], uj[r_ind]


def correspond_pixels(
    bmap1: np.ndarray,
    bmap2: np.ndarray,
    max_dist: float = MAX_DIST,
    outlier_cost: float = OUTLIER_COST,
) -> tuple[np.ndarray, np.ndarray]:
    """Match the pixels of two boundary maps (BSR ``correspondPixels``, exact).

    Parameters
    ----------
    bmap1, bmap2 : ndarray, shape (H, W), bool
        Machine and ground-truth boundary maps.
    max_dist : float
        Tolerance as a fraction of the image diagonal.
    outlier_cost : float
        Cost of an unmatched pixel, in units of the tolerance.

    Returns
    -------
    match1, match2 : ndarray, shape (H, W), bool
        The matched pixels of each map.
    """
    b1 = np.asarray(bmap1, dtype=bool)
    b2 = np.asarray(bmap2, dtype=bool)
    if b1.shape != b2.shape or b1.ndim != 2:
        raise InputError(f"boundary maps must be 2-D of one shape; got {b1.shape}, {b2.shape}")
    md = max_dist * float(np.hypot(*b1.shape))
    target = _Target(b2, md)
    m1, m2 = _match_to(b1, target, md, outlier_cost)
    return m1, m2


def _match_to(
    b1: np.ndarray, target: _Target, md: float, outlier_cost: float
) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.nonzero(b1)
    out1 = np.zeros(b1.shape, dtype=bool)
    out2 = np.zeros(b1.shape, dtype=bool)
    if y.size == 0 or target.n == 0:
        return out1, out2
    outlier = float(np.ceil(outlier_cost * md * _MULTIPLIER))
    mi, mj = target.match(y, x, outlier)
    out1[y[mi], x[mi]] = True
    out2[target.y[mj], target.x[mj]] = True
    return out1, out2


def _count_matches(b1: np.ndarray, targets: list[_Target], md: float) -> tuple[int, int]:
    """(sum over annotators of matched annotator pixels, machine pixels matched to any)."""
    y, x = np.nonzero(b1)
    if y.size == 0:
        return 0, 0
    acc = np.zeros(y.size, dtype=bool)
    cnt_r = 0
    outlier = float(np.ceil(OUTLIER_COST * md * _MULTIPLIER))
    for t in targets:
        if t.n == 0:
            continue
        mi, _ = t.match(y, x, outlier)
        cnt_r += int(mi.size)
        acc[mi] = True
    return cnt_r, int(acc.sum())


def boundary_counts(
    maps: list[np.ndarray],
    gt_boundaries: list[np.ndarray],
    max_dist: float = MAX_DIST,
    thin_maps: bool = True,
) -> dict[str, np.ndarray]:
    """The BSR per-threshold counts of a sequence of machine boundary maps of one image.

    Parameters
    ----------
    maps : list of ndarray, each (H, W), bool
        The machine map at each threshold (before thinning).
    gt_boundaries : list of ndarray, each (H, W), bool
        Each annotator's boundary map.
    max_dist : float
    thin_maps : bool
        Thin every machine map first (the BSR default).

    Returns
    -------
    dict
        ``cntR``, ``sumR``, ``cntP``, ``sumP``: int64 arrays (T,).
    """
    shape = gt_boundaries[0].shape
    md = max_dist * float(np.hypot(*shape))
    targets = [_Target(g, md) for g in gt_boundaries]
    sum_r_one = int(sum(t.n for t in targets))
    n = len(maps)
    cnt_r = np.zeros(n, dtype=np.int64)
    cnt_p = np.zeros(n, dtype=np.int64)
    sum_p = np.zeros(n, dtype=np.int64)
    prev: np.ndarray | None = None
    prev_counts = (0, 0, 0)
    for k, m in enumerate(maps):
        m = np.asarray(m, dtype=bool)
        if m.shape != shape:
            raise InputError(f"boundary map has shape {m.shape} but ground truth has {shape}")
        if prev is not None and (m is prev or np.array_equal(m, prev)):
            counts = prev_counts
        else:
            b = thin(m) if thin_maps else m
            cr, cp = _count_matches(b, targets, md)
            counts = (cr, cp, int(b.sum()))
        cnt_r[k], cnt_p[k], sum_p[k] = counts
        prev, prev_counts = m, counts
    return {
        "cntR": cnt_r,
        "sumR": np.full(n, sum_r_one, dtype=np.int64),
        "cntP": cnt_p,
        "sumP": sum_p,
    }


def _fmeasure(r: np.ndarray | float, p: np.ndarray | float) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    s = p + r
    return 2 * p * r / np.where(s == 0, 1.0, s)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a / np.where(b == 0, 1.0, b)


def max_f(thresh: np.ndarray, r: np.ndarray, p: np.ndarray) -> tuple[float, float, float, float]:
    """BSR ``maxF``: best (threshold, recall, precision, F) along the PR curve, with linear
    interpolation between consecutive thresholds (100 steps, first maximum kept)."""
    thresh = np.asarray(thresh, dtype=np.float64)
    best = (float(thresh[0]), float(r[0]), float(p[0]), float(_fmeasure(r[0], p[0])))
    if thresh.size < 2:
        return best
    d = np.linspace(0, 1, 100)[None, :]
    t = thresh[1:, None] * d + thresh[:-1, None] * (1 - d)
    rr = r[1:, None] * d + r[:-1, None] * (1 - d)
    pp = p[1:, None] * d + p[:-1, None] * (1 - d)
    f = _fmeasure(rr, pp).ravel()  # row-major: the official loop order (i, then d)
    k = int(np.argmax(f))
    if f[k] > best[3]:
        best = (float(t.ravel()[k]), float(rr.ravel()[k]), float(pp.ravel()[k]), float(f[k]))
    return best


def _average_precision(r: np.ndarray, p: np.ndarray) -> float:
    """BSR AP: ``[Ru, i] = unique(R)``; ``interp1(Ru, P(i), 0:0.01:1)``, NaN -> 0, x 0.01."""
    r = np.asarray(r, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    ru, first = np.unique(r, return_index=True)
    # MATLAB's legacy unique() keeps the last occurrence of each value
    last = np.array([np.flatnonzero(r == v)[-1] for v in ru], dtype=np.int64)
    del first
    if ru.size < 2:
        return 0.0
    ri = np.linspace(0, 1, 101)
    pi = np.interp(ri, ru, p[last])
    pi[(ri < ru[0]) | (ri > ru[-1])] = 0.0
    return float(pi.sum() * 0.01)


def _last_argmax(x: np.ndarray) -> int:
    x = np.asarray(x)
    return int(x.size - 1 - np.argmax(x[::-1]))


class BoundaryBenchmark:
    """Streaming BSDS boundary benchmark: :meth:`update` per image, :meth:`compute` at the end.

    Parameters
    ----------
    thresholds : int or ndarray
        Number of thresholds of a UCM / soft boundary map (default 99:
        :func:`bsr_thresholds`), or the threshold values themselves.
    max_dist : float
        Matching tolerance, fraction of the image diagonal (default 0.0075).
    thin_maps : bool
        Thin the thresholded machine maps (default True, as the BSR bench).

    Notes
    -----
    Inputs of :meth:`update`:

    * a :class:`Hierarchy` (its UCM) or a UCM ``ucm2`` (2H+1, 2W+1): ``pb = ucm2[2::2, 2::2]``;
    * a soft boundary map (H, W): float in [0, 1], or uint8 (read from a PNG: divided by 255);
    * a list / tuple of segmentations, or an integer stack (L, H, W): one "threshold" per
      segmentation (their boundaries), reported by 1-based index as in the BSR bench;
    * one integer label map (H, W) other than uint8: a single segmentation.

    Ground truths are label maps (their boundaries: ``seg2bdry`` thinned, which is exactly
    the ``Boundaries`` field stored in the BSDS files) or boolean boundary maps.
    """

    def __init__(
        self,
        thresholds: int | np.ndarray = 99,
        max_dist: float = MAX_DIST,
        thin_maps: bool = True,
    ) -> None:
        if np.ndim(thresholds) == 0:
            thr = bsr_thresholds(int(thresholds))
        else:
            thr = np.asarray(thresholds, dtype=np.float64)
            if thr.ndim != 1 or thr.size == 0 or np.any(np.diff(thr) < 0):
                raise InputError("thresholds must be a non-empty non-decreasing 1-D array")
        self.thresholds = thr
        self.max_dist = float(max_dist)
        self.thin_maps = bool(thin_maps)
        self.reset()

    def reset(self) -> None:
        """Forget every image scored so far."""
        self._ids: list[str] = []
        self._counts: list[np.ndarray] = []  # each (T, 4): cntR, sumR, cntP, sumP
        self._axis: np.ndarray | None = None

    @property
    def axis(self) -> np.ndarray | None:
        """Threshold of each scored position (the thresholds, or 1..L for segmentations)."""
        return self._axis

    # ------------------------------------------------------------------ per image
    def _maps(self, segmentation: Any, shape: tuple[int, int]) -> tuple[Any, np.ndarray]:
        segmentation = ucm_if_hierarchy(segmentation, shape)
        if isinstance(segmentation, list | tuple):
            segs = [np.asarray(s) for s in segmentation]
            if not segs:
                raise InputError("the list of segmentations is empty")
            for s in segs:
                if s.shape != shape:
                    raise InputError(
                        f"segmentation has shape {s.shape} but ground truth has {shape}"
                    )
            return [seg_to_boundaries(s) for s in segs], np.arange(1, len(segs) + 1, dtype=float)
        arr = np.asarray(segmentation)
        ucm_shape = (2 * shape[0] + 1, 2 * shape[1] + 1)
        if arr.ndim == 3 and arr.shape[1:] == shape and not np.issubdtype(arr.dtype, np.floating):
            return self._maps(list(arr), shape)
        if arr.ndim == 2 and arr.shape == ucm_shape:
            pb = arr.astype(np.float64)[2::2, 2::2]
        elif arr.ndim == 2 and arr.shape == shape:
            if arr.dtype == np.uint8:
                pb = arr.astype(np.float64) / 255.0
            elif np.issubdtype(arr.dtype, np.floating):
                pb = arr.astype(np.float64)
            elif arr.dtype == bool:
                pb = arr.astype(np.float64)
            else:
                return self._maps([arr], shape)
        else:
            raise InputError(
                f"input has shape {arr.shape}; expected a UCM {ucm_shape}, a boundary map or "
                f"label map {shape}, or a list of label maps, for ground truth of shape {shape}"
            )
        if not np.isfinite(pb).all():
            raise InputError("the boundary map holds NaN or inf")
        return _LazyThresholds(pb, self.thresholds), self.thresholds

    def score(self, segmentation: Any, ground_truths: list[np.ndarray]) -> dict[str, Any]:
        """One image's counts, without recording them (the map step of a distributed run).

        Returns
        -------
        dict
            ``cntR``, ``sumR``, ``cntP``, ``sumP`` (T,) int64, ``axis`` (T,) float,
            ``recall``, ``precision``, ``f`` (T,), and the image's best ``ois_threshold``,
            ``ois_recall``, ``ois_precision``, ``ois_f`` (BSR ``maxF``).
        """
        gts = _gt_boundaries(ground_truths)
        maps, axis = self._maps(segmentation, gts[0].shape)
        counts = boundary_counts(list(maps), gts, self.max_dist, self.thin_maps)
        r = _ratio(counts["cntR"], counts["sumR"])
        p = _ratio(counts["cntP"], counts["sumP"])
        bt, br, bp, bf = max_f(axis, r, p)
        return {
            **counts,
            "axis": axis,
            "recall": r,
            "precision": p,
            "f": _fmeasure(r, p),
            "ois_threshold": bt,
            "ois_recall": br,
            "ois_precision": bp,
            "ois_f": bf,
        }

    def add(self, stats: dict[str, Any], image_id: str | None = None) -> None:
        """Record one image's :meth:`score` (the reduce step)."""
        axis = np.asarray(stats["axis"], dtype=np.float64)
        if self._axis is not None and axis.shape != self._axis.shape:
            raise InputError(
                f"this image has {axis.size} thresholds/segmentations but earlier ones had "
                f"{self._axis.size}; a benchmark needs the same number for every image"
            )
        if self._axis is None:
            self._axis = axis
        keys = ("cntR", "sumR", "cntP", "sumP")
        c = np.stack([np.asarray(stats[k], dtype=np.int64) for k in keys], 1)
        self._ids.append(str(image_id) if image_id is not None else str(len(self._ids)))
        self._counts.append(c)

    def update(
        self,
        segmentation: Hierarchy | np.ndarray | list[np.ndarray],
        ground_truths: list[np.ndarray],
        image_id: str | None = None,
    ) -> dict[str, Any]:
        """Score one image and record it; returns its :meth:`score`."""
        stats = self.score(segmentation, ground_truths)
        self.add(stats, image_id)
        return stats

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The mergeable state: ids, per-image counts (T, 4) and the threshold axis."""
        return {
            "ids": list(self._ids),
            "counts": [c.copy() for c in self._counts],
            "axis": None if self._axis is None else self._axis.copy(),
        }

    def merge(self, other: BoundaryBenchmark | dict[str, Any]) -> BoundaryBenchmark:
        """Append another benchmark's images (or a :meth:`state`) to this one."""
        st = other.state() if isinstance(other, BoundaryBenchmark) else other
        for image_id, c in zip(st["ids"], st["counts"], strict=True):
            c = np.asarray(c, dtype=np.int64)
            self.add(
                {"axis": st["axis"], "cntR": c[:, 0], "sumR": c[:, 1], "cntP": c[:, 2],
                 "sumP": c[:, 3]},
                image_id,
            )  # fmt: skip
        return self

    # ------------------------------------------------------------------ dataset
    def compute(self) -> dict[str, Any]:
        """Dataset scores over every recorded image (BSR ``collect_eval_bdry``).

        Returns
        -------
        dict
            ``ods``, ``ods_recall``, ``ods_precision``, ``ods_threshold``, ``ois``,
            ``ois_recall``, ``ois_precision``, ``ap``, ``images``, ``pr_curve``
            {threshold, recall, precision, f} (pooled, per threshold) and ``per_image``
            {id: {threshold, recall, precision, f}} (each image's ``maxF``).
        """
        if not self._counts:
            raise InputError("no image has been scored: call update() first")
        axis = self._axis
        assert axis is not None
        tot = np.sum(self._counts, axis=0)  # (T, 4)
        r = _ratio(tot[:, 0], tot[:, 1])
        p = _ratio(tot[:, 2], tot[:, 3])
        f = _fmeasure(r, p)
        bt, br, bp, bf = max_f(axis, r, p)
        best = np.zeros(4)
        per_image = {}
        for image_id, c in zip(self._ids, self._counts, strict=True):
            ri, pi = _ratio(c[:, 0], c[:, 1]), _ratio(c[:, 2], c[:, 3])
            best += c[_last_argmax(_fmeasure(ri, pi))]
            t, rr, pp, ff = max_f(axis, ri, pi)
            per_image[image_id] = {"threshold": t, "recall": rr, "precision": pp, "f": ff}
        r_max = float(_ratio(best[0], best[1]))
        p_max = float(_ratio(best[2], best[3]))
        return {
            "ods": bf,
            "ods_recall": br,
            "ods_precision": bp,
            "ods_threshold": bt,
            "ois": float(_fmeasure(r_max, p_max)),
            "ois_recall": r_max,
            "ois_precision": p_max,
            "ap": _average_precision(r, p),
            "images": len(self._counts),
            "pr_curve": {
                "threshold": axis.tolist(),
                "recall": r.tolist(),
                "precision": p.tolist(),
                "f": f.tolist(),
            },
            "per_image": per_image,
        }


def boundary_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The ``"boundary"`` entry of ``affseg eval``'s JSON: the scores and the pooled curve."""
    keys = ("ods", "ois", "ap", "ods_recall", "ods_precision", "ods_threshold")
    out: dict[str, Any] = {k: result[k] for k in keys}
    out.update(
        ois_recall=result["ois_recall"],
        ois_precision=result["ois_precision"],
        pr_curve=result["pr_curve"],
        per_image=result["per_image"],
    )
    return out


class _LazyThresholds:
    """``pb >= t`` for each threshold, built on demand (a sequence of bool maps).

    Consecutive thresholds with no value of ``pb`` between them (``t <= v < t'``) give the
    same map: it is built once and yielded again as the same object, which
    :func:`boundary_counts` then scores once.
    """

    def __init__(self, pb: np.ndarray, thresholds: np.ndarray) -> None:
        self.pb = pb
        self.thresholds = thresholds

    def __len__(self) -> int:
        return self.thresholds.size

    def __iter__(self) -> Iterator[np.ndarray]:
        below = np.searchsorted(np.sort(self.pb, axis=None), self.thresholds, side="left")
        prev: np.ndarray | None = None
        prev_below = -1
        for t, k in zip(self.thresholds, below.tolist(), strict=True):
            if prev is None or k != prev_below:
                prev, prev_below = self.pb >= t, k
            yield prev


def _gt_boundaries(ground_truths: Any) -> list[np.ndarray]:
    if isinstance(ground_truths, np.ndarray) and ground_truths.ndim == 2:
        ground_truths = [ground_truths]
    gts = [np.asarray(g) for g in ground_truths]
    if not gts:
        raise InputError("the ground-truth list is empty: an image needs at least one")
    shape = gts[0].shape
    for g in gts:
        if g.ndim != 2 or g.shape != shape:
            raise InputError(f"ground truths must be 2-D of one shape; got {g.shape} vs {shape}")
    return [g if g.dtype == bool else thin(seg_to_boundaries(g)) for g in gts]


def plot_pr_curve(result: dict[str, Any], path: Any, title: str = "") -> None:
    """Write the PR curve of :meth:`BoundaryBenchmark.compute` as a PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - optional
        raise InputError("a PR-curve plot needs matplotlib: pip install matplotlib") from exc
    from affseg.data.io import atomic_write

    curve = result["pr_curve"]
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for fv in np.arange(0.1, 1.0, 0.1):  # iso-F lines
        rr = np.linspace(fv / (2 - fv) + 1e-9, 1, 200)
        pp = fv * rr / (2 * rr - fv)
        ax.plot(rr, pp, color="0.85", lw=0.7)
    label = f"ODS {result['ods']:.3f}  OIS {result['ois']:.3f}  AP {result['ap']:.3f}"
    ax.plot(curve["recall"], curve["precision"], "-", color="tab:red", lw=2, label=label)
    ax.plot([result["ods_recall"]], [result["ods_precision"]], "o", color="tab:red")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Recall", ylabel="Precision", title=title)
    ax.legend(loc="lower left")
    ax.grid(True, alpha=0.3)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)

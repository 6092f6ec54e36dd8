"""The BSDS500 region benchmark (Arbelaez et al., TPAMI 2011), streaming and fast.

Faithful to the BSR bench (``evaluation_reg_image.m``, ``match_segmentations*.m``,
``collect_eval_reg.m``): segmentation covering ODS/OIS/Best,
probabilistic Rand index and variation of information (log2) ODS/OIS, plus Hungarian pixel
accuracy ODS/OIS. A hierarchy is scored at 99 thresholds (a UCM) or as a list of label maps,
each one a "threshold".

Speed: the thresholds of a UCM give nested partitions, so the image is labelled once
(:func:`affseg.grouping.ucm.ucm_nested_labels`), the contingency table of the finest
partition against every annotator is counted once, and the table of each coarser partition
is its row sums through the parent map. Identical partitions are scored once. Every
statistic comes from those tables.

References
----------
P. Arbelaez, M. Maire, C. Fowlkes and J. Malik, "Contour Detection and Hierarchical Image
Segmentation", IEEE TPAMI 33(5), 2011.

Examples
--------
Score one label map (a UCM ``(2H+1, 2W+1)``, a :class:`~affseg.grouping.hierarchy.Hierarchy`
or a list of label maps are scored the same way) against its annotations:

>>> import numpy as np
>>> gt = np.array([[1, 1, 2, 2]] * 4)
>>> bench = RegionBenchmark()
>>> _ = bench.update(gt, [gt], "toy")
>>> res = bench.compute()
>>> res["covering"]["ods"], res["pri"]["ods"]
(1.0, 1.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from affseg.errors import InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.ucm import BSDS_THRESHOLDS, check_ucm2, ucm_nested_labels
from affseg.metrics.contingency import compact_labels
from affseg.metrics.pixel_accuracy import hungarian_matched


def _xlog2x(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = x[pos] * np.log2(x[pos])
    return out


def _check_ground_truths(ground_truths: list[np.ndarray]) -> list[np.ndarray]:
    if isinstance(ground_truths, np.ndarray) and ground_truths.ndim == 2:
        ground_truths = [ground_truths]
    gts = [np.asarray(g) for g in ground_truths]
    if not gts:
        raise InputError("the ground-truth list is empty: an image needs at least one")
    shape = gts[0].shape
    if len(shape) != 2 or min(shape) == 0:
        raise InputError(f"a ground truth must be a 2-D label map; got shape {shape}")
    for g in gts:
        if g.shape != shape:
            raise InputError(f"ground truths differ in shape: {g.shape} vs {shape}")
    return gts


def _levels_as_nested(levels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label maps as the labels of their common refinement plus one parent map each.

    Returns
    -------
    fine : ndarray, shape (H, W), int64, labels 0..F-1
    parents : ndarray, shape (L, F), int64
    counts : ndarray, shape (L,), int64
    """
    comp = [compact_labels(lv) for lv in levels]
    fine, n_fine = comp[0]
    for lab, n in comp[1:]:
        fine, n_fine = compact_labels(fine * n + lab)
    first = np.zeros(n_fine, dtype=np.int64)
    flat = fine.ravel()
    first[flat[::-1]] = np.arange(flat.size)[::-1]
    parents = np.stack([lab.ravel()[first] for lab, _ in comp])
    counts = np.asarray([n for _, n in comp], dtype=np.int64)
    return fine, parents, counts


def ucm_if_hierarchy(segmentation: Any, shape: tuple[int, int]) -> Any:
    """A :class:`Hierarchy` as its UCM (its shape checked against ``shape``); else as is.

    The common first step of the benchmarks' input handling.

    Examples
    --------
    >>> import numpy as np
    >>> ucm_if_hierarchy(Hierarchy.flat(np.ones((2, 3), int)), (2, 3)).shape
    (5, 7)
    """
    if isinstance(segmentation, Hierarchy):
        if segmentation.shape != shape:
            raise InputError(
                f"hierarchy has shape {segmentation.shape} but ground truth has {shape}"
            )
        return segmentation.to_ucm()
    return segmentation


class RegionBenchmark:
    """Streaming BSDS region benchmark: :meth:`update` per image, :meth:`compute` at the end.

    Parameters
    ----------
    thresholds : ndarray, shape (T,)
        Thresholds of a UCM (default: the 99 BSDS ones, 0.01..0.99).

    Notes
    -----
    Conventions of the BSR bench and ``gpb_val_reference.json``:

    * covering: ``cntR(t)`` = sum over annotators and their regions R' of
      ``|R'| max_R IoU(R, R')``, ``sumR`` = K N. ODS pools ``cntR``/``sumR`` over images at
      one threshold; OIS pools each image at its own best threshold (the last argmax);
      Best pools, per GT region, its best IoU over all thresholds.
    * PRI, VI (log2), pixel accuracy: mean over annotators per image; ODS = best threshold
      of the mean over images; OIS = mean over images of each one's best.
    * All inputs of one benchmark must have the same number of thresholds (a UCM has T; a
      list of L label maps has L, reported by level index).

    References
    ----------
    P. Arbelaez, M. Maire, C. Fowlkes and J. Malik, "Contour Detection and Hierarchical Image
    Segmentation", IEEE TPAMI 33(5), 2011.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([[1, 1, 2, 2]] * 4)
    >>> bench = RegionBenchmark()
    >>> _ = bench.update([gt, np.ones_like(gt)], [gt], "toy")  # two levels
    >>> bench.compute()["covering"]["ods"]
    1.0
    """

    def __init__(self, thresholds: np.ndarray = BSDS_THRESHOLDS) -> None:
        thr = np.asarray(thresholds, dtype=np.float64)
        if thr.ndim != 1 or thr.size == 0 or np.any(np.diff(thr) < 0):
            raise InputError("thresholds must be a non-empty non-decreasing 1-D array")
        self.thresholds = thr
        self.reset()

    def reset(self) -> None:
        """Forget every image scored so far."""
        self._ids: list[str] = []
        self._stats: list[dict[str, Any]] = []
        self._axis: np.ndarray | None = None  # threshold values of the scored inputs

    @property
    def axis(self) -> np.ndarray | None:
        """Threshold value of each scored position, shape (T,): the UCM thresholds, or
        0..L-1 for lists of L label maps; None before the first :meth:`update`."""
        return self._axis

    # ------------------------------------------------------------------ per image
    def _partitions(
        self, segmentation: Any, shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(fine, parents, counts, threshold axis) of any accepted segmentation input."""
        segmentation = ucm_if_hierarchy(segmentation, shape)
        if isinstance(segmentation, list | tuple):
            levels = [np.asarray(lv) for lv in segmentation]
            if not levels:
                raise InputError("the list of label maps is empty")
        else:
            arr = np.asarray(segmentation)
            ucm_shape = (2 * shape[0] + 1, 2 * shape[1] + 1)
            if arr.ndim == 2 and arr.shape == ucm_shape:
                u = check_ucm2(arr, shape)
                fine, parents, counts = ucm_nested_labels(u, self.thresholds)
                return fine, parents, counts, self.thresholds
            if arr.ndim == 2 and arr.shape != shape:
                raise InputError(
                    f"segmentation has shape {arr.shape}; expected a label map {shape} or "
                    f"a UCM {ucm_shape} for ground truth of shape {shape}"
                )
            if arr.ndim not in (2, 3):
                raise InputError(
                    f"segmentation must be a label map (H, W), a stack (L, H, W) or a UCM "
                    f"(2H+1, 2W+1); got shape {arr.shape}"
                )
            levels = [arr] if arr.ndim == 2 else list(arr)
        for lv in levels:
            if lv.shape != shape:
                raise InputError(
                    f"label map has shape {lv.shape} but ground truth has shape {shape}"
                )
        fine, parents, counts = _levels_as_nested(levels)
        return fine, parents, counts, np.arange(len(levels), dtype=np.float64)

    def score(
        self,
        segmentation: Hierarchy | np.ndarray | list[np.ndarray],
        ground_truths: list[np.ndarray],
    ) -> dict[str, Any]:
        """One image's statistics without recording them (the map step of a distributed run).

        Returns
        -------
        dict
            As :meth:`update`, plus ``axis`` (T,): the threshold of each position.
        """
        gts = _check_ground_truths(ground_truths)
        shape = gts[0].shape
        fine, parents, counts, axis = self._partitions(segmentation, shape)
        stats = score_nested(fine, parents, counts, gts)
        stats["axis"] = axis
        return stats

    def add(self, stats: dict[str, Any], image_id: str | None = None) -> None:
        """Record one image's :meth:`score` (the reduce step; images pool in call order).

        Raises
        ------
        InputError
            The image has another number of thresholds / levels than the earlier ones.
        """
        axis = np.asarray(stats["axis"], dtype=np.float64)
        if self._axis is not None and axis.shape != self._axis.shape:
            raise InputError(
                f"this image has {axis.size} thresholds/levels but earlier ones had "
                f"{self._axis.size}; a benchmark needs the same number for every image"
            )
        if self._axis is None:
            self._axis = axis
        self._ids.append(str(image_id) if image_id is not None else str(len(self._ids)))
        self._stats.append(stats)

    def merge(self, other: RegionBenchmark) -> RegionBenchmark:
        """Append the images of another benchmark (scored anywhere) to this one."""
        for image_id, stats in zip(other._ids, other._stats, strict=True):
            self.add({**stats, "axis": other._axis}, image_id)
        return self

    def update(
        self,
        segmentation: Hierarchy | np.ndarray | list[np.ndarray],
        ground_truths: list[np.ndarray],
        image_id: str | None = None,
    ) -> dict[str, Any]:
        """Score one image.

        Parameters
        ----------
        segmentation : Hierarchy, ndarray or list of ndarray
            A :class:`Hierarchy` (scored as its UCM), a UCM of shape (2H+1, 2W+1) (scored
            at ``thresholds``), a list or stack (L, H, W) of label maps (each one a
            threshold, nested or not), or one label map (H, W).
        ground_truths : list of ndarray, each (H, W)
            Every human segmentation of the image.
        image_id : str, optional
            Key in ``per_image`` (default: the running index).

        Returns
        -------
        dict
            This image's statistics: per-threshold arrays (T,) ``covering``, ``cntR``,
            ``pri``, ``vi``, ``pixel_accuracy``, ``n_segments``; scalars ``sumR``,
            ``best_cntR``, ``covering_ois``, ``covering_best``, ``pri_ois``, ``vi_ois``,
            ``pixel_accuracy_ois``; ``axis`` (T,).
        """
        stats = self.score(segmentation, ground_truths)
        self.add(stats, image_id)
        return stats

    # ------------------------------------------------------------------ dataset
    def compute(self) -> dict[str, Any]:
        """Dataset statistics over every image scored since the last :meth:`reset`.

        Returns
        -------
        dict
            ``covering`` {ods, ois, best, ods_threshold, ods_index}, ``pri``, ``vi`` and
            ``pixel_accuracy`` {ods, ois, ods_threshold, ods_index}, ``images``,
            ``per_image`` {id: {covering_ois, covering_best, pri_ois, vi_ois,
            pixel_accuracy_ois}}. ``ods_threshold`` is the value on :attr:`axis` of the
            ODS position (its last argmax), ``ods_index`` its index.
        """
        if not self._stats:
            raise InputError("no image has been scored: call update() first")
        axis = self._axis
        assert axis is not None
        st = self._stats
        cnt = np.sum([s["cntR"] for s in st], axis=0)  # (T,)
        sum_r = float(sum(s["sumR"] for s in st))
        cov = cnt / sum_r
        i_cov = _last_argmax(cov)
        ois_cnt = float(sum(s["cntR"][_last_argmax(s["cntR"])] for s in st))
        best_cnt = float(sum(s["best_cntR"] for s in st))
        pri = np.mean([s["pri"] for s in st], axis=0)
        vi = np.mean([s["vi"] for s in st], axis=0)
        pa = np.mean([s["pixel_accuracy"] for s in st], axis=0)
        i_pri, i_vi, i_pa = _last_argmax(pri), _last_argmax(-vi), _last_argmax(pa)
        return {
            "covering": {
                "ods": float(cov[i_cov]),
                "ois": ois_cnt / sum_r,
                "best": best_cnt / sum_r,
                "ods_threshold": float(axis[i_cov]),
                "ods_index": i_cov,
            },
            "pri": {
                "ods": float(pri[i_pri]),
                "ois": float(np.mean([s["pri_ois"] for s in st])),
                "ods_threshold": float(axis[i_pri]),
                "ods_index": i_pri,
            },
            "vi": {
                "ods": float(vi[i_vi]),
                "ois": float(np.mean([s["vi_ois"] for s in st])),
                "ods_threshold": float(axis[i_vi]),
                "ods_index": i_vi,
            },
            "pixel_accuracy": {
                "ods": float(pa[i_pa]),
                "ois": float(np.mean([s["pixel_accuracy_ois"] for s in st])),
                "ods_threshold": float(axis[i_pa]),
                "ods_index": i_pa,
            },
            "images": len(st),
            "per_image": {
                i: {
                    k: s[k]
                    for k in (
                        "covering_ois",
                        "covering_best",
                        "pri_ois",
                        "vi_ois",
                        "pixel_accuracy_ois",
                    )
                }
                for i, s in zip(self._ids, st, strict=True)
            },
        }


def _last_argmax(x: np.ndarray) -> int:
    """Index of the last maximum of a 1-D array."""
    x = np.asarray(x)
    return int(x.size - 1 - np.argmax(x[::-1]))


#: Entries of a dense stacked contingency table above which work is split up.
_DENSE_LIMIT = 1 << 22


def _score_levels(
    lev_map: np.ndarray,
    k_lev: np.ndarray,
    r0: np.ndarray,
    col: np.ndarray,
    val: np.ndarray,
    g_size: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Statistics of D partitions against one annotator from the finest table.

    Parameters
    ----------
    lev_map : ndarray, shape (D, F), int
        Fine label -> segment (0..k_lev[d]-1) at each level.
    k_lev : ndarray, shape (D,)
    r0, col, val : ndarray, shape (nnz,)
        Non-zero entries of the finest contingency table (fine label, GT region, count).
    g_size : ndarray, shape (M,)
        GT region sizes.

    Returns
    -------
    best : ndarray, shape (D, M)
        Per GT region, its best IoU with a segment of each level.
    ri, vi, matched : ndarray, shape (D,)
        Rand index, variation of information (bits), Hungarian accuracy.
    """
    m = g_size.size
    n_pix = float(g_size.sum())
    n_lev = lev_map.shape[0]
    offs = np.concatenate([[0], np.cumsum(k_lev)])  # (D+1,)
    rows = lev_map[:, r0] + offs[:-1, None]  # (D, nnz): rows of the stacked tables
    table = np.bincount(
        (rows * m + col).ravel(), weights=np.tile(val, n_lev), minlength=offs[-1] * m
    ).reshape(offs[-1], m)  # (sum K_d, M): the level tables stacked
    r_size = table.sum(axis=1)  # (sum K_d,)
    iou = table / (r_size[:, None] + g_size[None, :] - table)
    best = np.maximum.reduceat(iou, offs[:-1], axis=0)  # (D, M)
    sum_sq = np.add.reduceat((table**2).sum(axis=1), offs[:-1])
    r_sq = np.add.reduceat(r_size**2, offs[:-1])
    g_sq = float((g_size**2).sum())
    ri = 1 - (r_sq / 2 + g_sq / 2 - sum_sq) / (n_pix * (n_pix - 1) / 2)
    xl = np.add.reduceat(_xlog2x(table).sum(axis=1), offs[:-1])
    rl = np.add.reduceat(_xlog2x(r_size), offs[:-1])
    gl = float(_xlog2x(g_size).sum())
    vi = (rl + gl - 2 * xl) / n_pix
    matched = (
        np.array([hungarian_matched(table[offs[d] : offs[d + 1]]) for d in range(n_lev)]) / n_pix
    )
    return best, ri, vi, matched


def score_nested(
    fine: np.ndarray,
    parents: np.ndarray,
    counts: np.ndarray,
    ground_truths: list[np.ndarray],
) -> dict[str, Any]:
    """Every region statistic of one image at every threshold.

    Parameters
    ----------
    fine : ndarray, shape (H, W), int, labels 0..F-1
        The common refinement of all the partitions.
    parents : ndarray, shape (T, F), int
        Partition at threshold t = ``parents[t][fine]``, labels 0..counts[t]-1.
    counts : ndarray, shape (T,)
    ground_truths : list of ndarray, each (H, W)
        Negative labels mark void pixels: they are left out of every statistic of that
        annotation (the segmentation's regions are restricted to the labelled pixels).

    Returns
    -------
    dict
        See :meth:`RegionBenchmark.update`.

    Examples
    --------
    Two thresholds: the finest partition (two regions) and everything merged:

    >>> import numpy as np
    >>> fine = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    >>> gt = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> r = score_nested(fine, np.array([[0, 1], [0, 0]]), np.array([2, 1]), [gt])
    >>> r["covering"].tolist(), r["n_segments"].tolist()
    ([1.0, 0.5], [2, 1])
    """
    n_thr, n_fine = parents.shape
    # score each partition once per run of identical consecutive thresholds (for a UCM
    # every distinct partition; nested partitions never repeat after a change)
    changed = np.any(parents[1:] != parents[:-1], axis=1)  # (T-1,)
    inverse = np.concatenate([[0], np.cumsum(changed)])  # (T,)
    uniq = parents[np.concatenate([[True], changed])]  # (D, F)
    n_lev = uniq.shape[0]
    k_lev = uniq.max(axis=1) + 1  # (D,)
    fine_flat = fine.ravel()

    cnt = np.zeros(n_lev)
    ri = np.zeros(n_lev)
    vi = np.zeros(n_lev)
    pa = np.zeros(n_lev)
    best_cnt = 0.0
    sum_r = 0.0
    n_gt = 0
    for gt in ground_truths:
        gt = np.asarray(gt)
        labelled = gt >= 0 if gt.dtype.kind == "i" else None
        if labelled is not None and not labelled.any():
            continue  # an annotation that labels nothing says nothing
        n_gt += 1
        if labelled is not None and not labelled.all():
            g, m = compact_labels(gt[labelled])
            keys = fine_flat[labelled.ravel()] * m + g
        else:
            g, m = compact_labels(gt)
            keys = fine_flat * m + g.ravel()
        sum_r += float(keys.size)
        if n_fine * m <= _DENSE_LIMIT:
            c0 = np.bincount(keys, minlength=n_fine * m)  # (F*M,)
            nz = np.flatnonzero(c0)
            val = c0[nz].astype(np.float64)
        else:  # a very fine common refinement (non-nested label maps): sparse count
            nz, c = np.unique(keys, return_counts=True)
            val = c.astype(np.float64)
        r0, col = np.divmod(nz, m)  # the finest table's non-zeros (nnz,)
        g_size = np.bincount(col, weights=val, minlength=m)  # (M,)
        best_all = np.zeros(m)
        # levels in chunks that keep the stacked tables to a few million entries
        cost = k_lev * m + r0.size
        start = 0
        while start < n_lev:
            stop = start + max(1, int(np.searchsorted(np.cumsum(cost[start:]), _DENSE_LIMIT)))
            sl = slice(start, stop)
            best, ri_c, vi_c, pa_c = _score_levels(uniq[sl], k_lev[sl], r0, col, val, g_size)
            cnt[sl] += best @ g_size
            best_all = np.maximum(best_all, best.max(axis=0))
            ri[sl] += ri_c
            vi[sl] += vi_c
            pa[sl] += pa_c
            start = stop
        best_cnt += float(best_all @ g_size)
    if sum_r == 0:
        raise InputError("every pixel of every ground truth is void: nothing to score")
    cnt_t = cnt[inverse]
    ri_t, vi_t, pa_t = ri[inverse] / n_gt, vi[inverse] / n_gt, pa[inverse] / n_gt
    return {
        "covering": cnt_t / sum_r,
        "cntR": cnt_t,
        "sumR": sum_r,
        "best_cntR": best_cnt,
        "pri": ri_t,
        "vi": vi_t,
        "pixel_accuracy": pa_t,
        "n_segments": np.asarray(counts),
        "covering_ois": float(cnt_t.max() / sum_r),
        "covering_best": best_cnt / sum_r,
        "pri_ois": float(ri_t.max()),
        "vi_ois": float(vi_t.min()),
        "pixel_accuracy_ois": float(pa_t.max()),
    }

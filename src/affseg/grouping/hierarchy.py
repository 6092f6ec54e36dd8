"""The hierarchy value every segmentation method returns.

A :class:`Hierarchy` is a list of nested label maps ordered fine -> coarse, with the height
at which each level appears; it converts to and from a BSDS UCM (see
:mod:`affseg.grouping.ucm`), so the region benchmark, the writers and other BSDS tools all
read the same thing. A flat segmentation is a one-level hierarchy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from skimage.segmentation import relabel_sequential

from affseg.errors import InputError
from affseg.grouping.ucm import BSDS_THRESHOLDS, check_ucm2, levels_to_ucm, ucm_nested_labels


@dataclass
class Hierarchy:
    """Nested segmentations of one image.

    Attributes
    ----------
    levels : list of ndarray, each (H, W) int32
        Label maps, labels 1..K_l, fine (index 0) -> coarse.
    heights : ndarray, shape (L,)
        Non-decreasing values in [0, 1]: the UCM threshold at which level l appears.
    default_level : int
        The level :meth:`labels` returns when no segment count is asked.
    ucm2 : ndarray, shape (2H+1, 2W+1), optional
        The UCM the levels came from (kept as given), else built on demand.

    Examples
    --------
    >>> import numpy as np
    >>> fine = np.array([[1, 1, 2, 2], [3, 3, 2, 2]])
    >>> coarse = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> hier = Hierarchy([fine, coarse], heights=np.array([0.0, 0.5]), default_level=1)
    >>> hier.n_segments, hier.labels().tolist()
    ([3, 2], [[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> hier.labels(segments=3).tolist()
    [[1, 1, 2, 2], [3, 3, 2, 2]]
    >>> hier.to_ucm().shape
    (5, 9)
    """

    levels: list[np.ndarray]
    heights: np.ndarray | None = None
    default_level: int = 0
    ucm2: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.levels:
            raise InputError("a hierarchy needs at least one level")
        shape = self.levels[0].shape
        out = []
        for lv in self.levels:
            a = np.asarray(lv)
            if a.shape != shape or a.ndim != 2:
                raise InputError(f"hierarchy levels differ in shape: {a.shape} vs {shape}")
            out.append(a.astype(np.int32, copy=False))
        self.levels = out
        n = len(out)
        if self.heights is None:
            h = (np.arange(n) + 0.5) / n
            h[0] = 0.0
            self.heights = h
        self.heights = np.asarray(self.heights, dtype=np.float64)
        if self.heights.shape != (n,):
            raise InputError(f"heights has shape {self.heights.shape}; expected ({n},)")
        if not 0 <= self.default_level < n:
            raise InputError(f"default_level {self.default_level} outside 0..{n - 1}")

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the label maps."""
        return self.levels[0].shape  # type: ignore[return-value]

    @property
    def n_segments(self) -> list[int]:
        """Number of segments of every level, fine -> coarse."""
        return [int(len(np.unique(lv))) for lv in self.levels]

    def labels(self, segments: int | None = None) -> np.ndarray:
        """One level as labels 1..K.

        Parameters
        ----------
        segments : int, optional
            The level whose segment count is closest to this (ties: the finer one).

        Returns
        -------
        ndarray, shape (H, W), int32
        """
        if segments is None:
            lv = self.levels[self.default_level]
        else:
            if segments < 1:
                raise InputError(f"segments must be >= 1, got {segments}")
            counts = np.asarray(self.n_segments)
            lv = self.levels[int(np.argmin(np.abs(counts - segments)))]
        return relabel_sequential(lv)[0].astype(np.int32) if lv.min() != 1 else lv

    def to_ucm(self) -> np.ndarray:
        """The hierarchy as a BSDS UCM, shape (2H+1, 2W+1), values in [0, 1]."""
        if self.ucm2 is not None:
            return self.ucm2
        return levels_to_ucm(self.levels, self.heights)

    @classmethod
    def flat(cls, labels: np.ndarray) -> Hierarchy:
        """A one-level hierarchy of a single segmentation (H, W)."""
        return cls([np.asarray(labels)])

    @classmethod
    def from_ucm(cls, ucm2: np.ndarray, thresholds: np.ndarray = BSDS_THRESHOLDS) -> Hierarchy:
        """The distinct segmentations of a UCM over ``thresholds`` (fine -> coarse)."""
        u = check_ucm2(ucm2)
        thr = np.sort(np.asarray(thresholds, dtype=np.float64))
        fine, parents, counts = ucm_nested_labels(u, thr)
        levels: list[np.ndarray] = []
        heights: list[float] = []
        last_count = -1
        for k in range(len(thr)):
            if counts[k] != last_count:
                levels.append(parents[k][fine] + 1)
                heights.append(float(thr[k]))
                last_count = int(counts[k])
        return cls(levels, np.asarray(heights), ucm2=u)

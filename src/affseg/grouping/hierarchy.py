"""The hierarchy value every segmentation method returns.

A :class:`Hierarchy` is a list of nested label maps ordered fine -> coarse, with the height
at which each level appears; it converts to and from a BSDS UCM (see
:mod:`affseg.grouping.ucm`), so the region benchmark, the writers and other BSDS tools all
read the same thing. A flat segmentation is a one-level hierarchy.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
from skimage.segmentation import relabel_sequential

from affseg.errors import InputError
from affseg.grouping.ucm import BSDS_THRESHOLDS, check_ucm2, levels_to_ucm, ucm_nested_labels


def _ucm_index(work: np.ndarray, n_work: int) -> np.ndarray:
    """UCM coordinate (0..2n) of every output UCM coordinate (0..2N) under a nearest map.

    ``work[i]`` is the working pixel of output pixel i (non-decreasing). Odd coordinates
    (pixels) map to pixels; even ones (boundaries) to the working boundary between
    ``work[i-1]`` and ``work[i]``, or to the working pixel itself when both are the same
    (no boundary there); the frame maps to the frame.
    """
    big = len(work)
    idx = np.empty(2 * big + 1, dtype=np.intp)
    idx[1::2] = 2 * work + 1
    idx[0], idx[-1] = 0, 2 * n_work
    inner = np.arange(1, big)
    idx[2 * inner] = np.where(work[inner - 1] == work[inner], 2 * work[inner] + 1, 2 * work[inner])
    return idx


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
    out_shape : (int, int), optional
        The image's resolution when the levels were computed at a smaller working
        resolution (see :meth:`upsampled`): :meth:`labels` and :meth:`to_ucm` then return
        nearest-neighbour upsampled results of this shape, while ``levels`` (and
        ``ucm2``) stay at the working resolution, so memory stays bounded.

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
    out_shape: tuple[int, int] | None = None

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
        if self.out_shape is not None:
            full = tuple(int(v) for v in self.out_shape)
            if len(full) != 2 or full[0] < shape[0] or full[1] < shape[1]:
                raise InputError(f"out_shape {self.out_shape} is smaller than the levels {shape}")
            self.out_shape = None if full == tuple(shape) else full  # type: ignore[assignment]

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of what :meth:`labels` returns (the image's resolution)."""
        if self.out_shape is not None:
            return self.out_shape
        return self.levels[0].shape  # type: ignore[return-value]

    @property
    def work_shape(self) -> tuple[int, int]:
        """(H, W) of ``levels``: the working resolution (equals :attr:`shape` unless upsampled)."""
        return self.levels[0].shape  # type: ignore[return-value]

    def upsampled(self, shape: tuple[int, int]) -> Hierarchy:
        """The same hierarchy presented at the larger resolution ``shape`` (nearest neighbour).

        Nothing is computed now: :meth:`labels` and :meth:`to_ucm` upsample on demand.
        """
        return Hierarchy(
            self.levels,
            self.heights,
            self.default_level,
            ucm2=self.ucm2,
            out_shape=(int(shape[0]), int(shape[1])),
        )

    def _rows_cols(self) -> tuple[np.ndarray, np.ndarray]:
        """Working-resolution row and column of every output row and column (nearest)."""
        (h, w), (big_h, big_w) = self.work_shape, self.shape
        rows = np.minimum((np.arange(big_h) + 0.5) * h / big_h, h - 1).astype(np.intp)
        cols = np.minimum((np.arange(big_w) + 0.5) * w / big_w, w - 1).astype(np.intp)
        return rows, cols

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
            if (
                isinstance(segments, bool)
                or not isinstance(segments, numbers.Integral)
                or segments < 1
            ):
                raise InputError(f"segments must be an integer >= 1, got {segments!r}")
            gaps = [abs(int(n) - int(segments)) for n in self.n_segments]  # exact, any size
            lv = self.levels[gaps.index(min(gaps))]  # ties: the finer level
        lv = relabel_sequential(lv)[0].astype(np.int32) if lv.min() != 1 else lv
        if self.out_shape is not None:
            rows, cols = self._rows_cols()
            lv = lv[np.ix_(rows, cols)]
        return lv

    def to_ucm(self) -> np.ndarray:
        """The hierarchy as a BSDS UCM, shape (2H+1, 2W+1), values in [0, 1].

        For an upsampled hierarchy this is exactly the UCM of the upsampled levels, taken
        from the working-resolution UCM by index (each output boundary is the working
        boundary it falls on; boundaries inside a working pixel are 0).
        """
        ucm = self.ucm2 if self.ucm2 is not None else levels_to_ucm(self.levels, self.heights)
        if self.out_shape is None:
            return ucm
        rows, cols = self._rows_cols()
        return ucm[
            np.ix_(_ucm_index(rows, self.work_shape[0]), _ucm_index(cols, self.work_shape[1]))
        ]

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

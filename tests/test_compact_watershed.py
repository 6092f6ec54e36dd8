"""affseg.grouping.compact_watershed: the same labels as skimage's compact watershed."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import watershed

from affseg.errors import InputError
from affseg.grouping.compact_watershed import compact_watershed


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("compactness", [1e-3, 0.1, 5.0])
def test_equals_skimage_on_random_maps(seed: int, compactness: float) -> None:
    img = np.random.default_rng(seed).random((37, 53))
    got = compact_watershed(img, 60, compactness)
    assert got.dtype == np.int32
    assert np.array_equal(got, watershed(img, markers=60, compactness=compactness))


def test_equals_skimage_with_tied_seeds_and_flat_regions() -> None:
    # flat zero areas: many seeds share the value 0 and many queue keys tie
    rng = np.random.default_rng(5)
    img = np.round(rng.random((48, 64)) * 3) / 3
    img[:, :30] = 0.0
    img[10:20, 40:] = 0.5
    for n in (12, 50, 200):
        assert np.array_equal(compact_watershed(img, n, 1e-3), watershed(img, n, compactness=1e-3))


def test_follows_a_step_edge() -> None:
    img = np.zeros((20, 30))
    img[:, 14:16] = 1.0  # a ridge between columns 13 and 16
    lab = compact_watershed(img, 6, 1e-3)
    left, right = np.unique(lab[:, :14]), np.unique(lab[:, 16:])
    assert np.intersect1d(left, right).size == 0


def test_bad_input() -> None:
    with pytest.raises(InputError, match="2-D"):
        compact_watershed(np.zeros((4, 4, 3)), 2, 1e-3)
    with pytest.raises(InputError, match="compactness"):
        compact_watershed(np.zeros((8, 8)), 2, 0.0)
    with pytest.raises(InputError, match="NaN"):
        compact_watershed(np.full((8, 8), np.nan), 2, 1e-3)

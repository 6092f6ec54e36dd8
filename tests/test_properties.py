"""Property-based tests (hypothesis) of input validation and of metric invariants.

Validation: whatever array or option reaches the public API, the answer is a valid result
or an :class:`~affseg.errors.InputError` -- never another exception -- and the input is
never modified. Metrics: scores do not depend on how labels are numbered; a hierarchy's
levels nest.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from affseg.data.io import as_rgb  # noqa: E402
from affseg.errors import InputError  # noqa: E402
from affseg.methods import check_options, run_method  # noqa: E402
from affseg.metrics import RegionBenchmark, hungarian_accuracy, pairwise_scores  # noqa: E402

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dtypes = st.sampled_from(
    [
        np.uint8,
        np.uint16,
        np.int8,
        np.int32,
        np.int64,
        np.float16,
        np.float32,
        np.float64,
        np.complex64,
        bool,
    ]
)
shapes = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
    st.tuples(st.integers(0, 12), st.integers(0, 12), st.sampled_from([1, 3, 4])),
)


def _arrays(dtype, shape):
    # no subnormal floats: affseg's compiled kernel may run with flush-to-zero set
    kw = {"allow_subnormal": False} if np.dtype(dtype).kind in "fc" else {}
    return hnp.arrays(dtype, shape, elements=hnp.from_dtype(np.dtype(dtype), **kw))


@FAST
@given(st.tuples(dtypes, shapes).flatmap(lambda a: _arrays(*a)))
def test_as_rgb_valid_or_input_error(arr: np.ndarray) -> None:
    before = arr.copy()
    try:
        out = as_rgb(arr)
    except InputError:
        pass
    else:
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        assert out.shape == arr.shape and min(out.shape[:2]) >= 2
    np.testing.assert_array_equal(arr, before)  # never modified in place


@pytest.mark.parametrize(
    "bad",
    [
        [[[1, 2, 3]], [[1, 2]]],  # ragged
        np.zeros((4, 4, 3), complex),
        np.array([["a"] * 3] * 4),
        object(),
        None,
        np.zeros((4, 4, 3), object),
    ],
)
def test_as_rgb_odd_inputs(bad) -> None:
    with pytest.raises(InputError):
        as_rgb(bad)


@FAST
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 8), st.integers(2, 8), st.just(3)),
        elements=st.floats(allow_subnormal=False, width=64),
    ),
)
def test_as_rgb_float_nan_inf_and_range(arr: np.ndarray) -> None:
    ok = bool(np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1)
    if ok:
        assert as_rgb(arr).max() <= 255
    else:
        with pytest.raises(InputError):
            as_rgb(arr)


@FAST
@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(4, 24), st.integers(4, 24), st.just(3))),
    st.sampled_from(["plain", "transposed", "reversed", "strided", "readonly", "fortran"]),
    st.sampled_from(["slic", "felzenszwalb", "kmeans"]),
)
def test_methods_on_views(img: np.ndarray, view: str, method: str) -> None:
    """Views, negative strides, read-only and Fortran arrays: same result as a copy."""
    if view == "transposed":
        v = img.transpose(1, 0, 2)
    elif view == "reversed":
        v = img[::-1, ::-1]
    elif view == "strided":
        v = np.repeat(img, 2, axis=1)[:, ::2]
    elif view == "fortran":
        v = np.asfortranarray(img)
    else:
        v = img
    if view == "readonly":
        v = img.copy()
        v.flags.writeable = False
    before = v.copy()
    labels = run_method(v, method).labels()
    assert labels.shape == v.shape[:2]
    assert labels.min() == 1
    assert len(np.unique(labels)) == labels.max()  # labels 1..K
    np.testing.assert_array_equal(v, before)
    np.testing.assert_array_equal(labels, run_method(np.ascontiguousarray(v), method).labels())


@FAST
@given(
    st.integers(2, 90),
    st.integers(2, 90),
    st.one_of(
        st.none(),
        st.integers(-3, 120),
        st.floats(allow_nan=True, allow_subnormal=False),
        st.text(max_size=3),
    ),
)
def test_working_resolution_shapes(h: int, w: int, working_side) -> None:
    img = np.random.default_rng(h * 97 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    try:
        hier = run_method(img, "slic", working_side=working_side)
    except InputError as exc:
        valid = working_side is None or (isinstance(working_side, int) and working_side >= 2)
        assert not valid or "elongated" in str(exc)  # e.g. 80 x 3 at working_side=2
        return
    assert hier.labels().shape == (h, w)
    assert hier.to_ucm().shape == (2 * h + 1, 2 * w + 1)
    assert max(hier.work_shape) <= (working_side or max(h, w))


option_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 500),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
    st.text(max_size=4),
    st.lists(st.integers(-2, 300), max_size=3),
    st.tuples(st.floats(0.01, 5.0)),
)


@FAST
@given(
    st.sampled_from(["slic", "felzenszwalb", "quickshift", "kmeans", "ncut"]),
    st.data(),
)
def test_check_options_types(method: str, data) -> None:
    from affseg.methods import method_options

    names = sorted(method_options(method))
    key = data.draw(st.sampled_from([*names, "not_an_option"]))
    value = data.draw(option_values)
    try:
        out = check_options(method, {key: value})
    except InputError:
        return
    assert key in names and set(out) == {key}


# --------------------------------------------------------------------------- metrics
label_maps = hnp.arrays(np.int32, st.tuples(st.integers(2, 9), st.integers(2, 9)),
                        elements=st.integers(0, 4))  # fmt: skip


def _permute(labels: np.ndarray, seed: int) -> np.ndarray:
    uniq = np.unique(labels)
    perm = np.random.default_rng(seed).permutation(len(uniq)) * 7 + 3  # new, spread labels
    return perm[np.searchsorted(uniq, labels)]


@FAST
@given(label_maps, st.data(), st.integers(0, 1000))
def test_metrics_ignore_label_numbering(seg: np.ndarray, data, seed: int) -> None:
    gt = data.draw(hnp.arrays(np.int32, seg.shape, elements=st.integers(0, 3)))
    seg_p, gt_p = _permute(seg, seed), _permute(gt, seed + 1)
    a, b = pairwise_scores(seg, gt), pairwise_scores(seg_p, gt_p)
    for k in ("accuracy", "precision", "recall", "f1"):
        assert a[k] == pytest.approx(b[k])
    assert hungarian_accuracy(seg, [gt]) == pytest.approx(hungarian_accuracy(seg_p, [gt_p]))
    ra, rb = RegionBenchmark(), RegionBenchmark()
    sa = ra.update([seg], [gt])
    sb = rb.update([seg_p], [gt_p])
    for k in ("covering", "pri", "vi", "pixel_accuracy"):
        # VI of identical partitions is 0 up to rounding (log terms cancel to ~1e-16)
        np.testing.assert_allclose(sa[k], sb[k], atol=1e-12)
    # a segmentation scored against itself is perfect
    self_score = RegionBenchmark().update([seg], [seg])
    np.testing.assert_allclose(self_score["covering"], 1.0)
    np.testing.assert_allclose(self_score["vi"], 0.0, atol=1e-12)
    # symmetric pairwise accuracy, bounded scores
    assert pairwise_scores(gt, seg)["accuracy"] == pytest.approx(a["accuracy"])
    assert 0 <= a["accuracy"] <= 1 and 0 <= sa["covering"].max() <= 1 + 1e-12


@FAST
@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(6, 20), st.integers(6, 20), st.just(3))),
    st.sampled_from(["felzenszwalb", "slic", "kmeans"]),
)
def test_hierarchy_levels_nest(img: np.ndarray, method: str) -> None:
    hier = run_method(img, method)
    heights = np.asarray(hier.heights)
    assert np.all(np.diff(heights) >= 0)
    ucm = hier.to_ucm()
    assert ucm.shape == (2 * img.shape[0] + 1, 2 * img.shape[1] + 1)
    assert ucm.min() >= 0 and ucm.max() <= 1
    # the UCM's levels are nested: every region of a finer level lies in one coarser region
    from affseg.grouping.hierarchy import Hierarchy

    nested = Hierarchy.from_ucm(ucm)
    for fine, coarse in zip(nested.levels[:-1], nested.levels[1:], strict=True):
        pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
        assert len(np.unique(pairs[0])) == pairs.shape[1]

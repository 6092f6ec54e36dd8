"""The documented public API: works in any import order, validates options once."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
import torch
from skimage import data

import affseg
from affseg.errors import AffsegError, InputError


def _import_every_submodule() -> None:
    for mod in pkgutil.walk_packages(affseg.__path__, "affseg."):
        importlib.import_module(mod.name)


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    return data.coffee()[::4, ::4]


def test_segment_and_hierarchy_after_importing_every_submodule(small: np.ndarray) -> None:
    _import_every_submodule()
    assert callable(affseg.segment) and callable(affseg.hierarchy)
    first = affseg.segment(small, "slic")
    second = affseg.segment(small, "slic")  # the second call used to hit the subpackage
    np.testing.assert_array_equal(first, second)
    hier = affseg.hierarchy(small, "felzenszwalb")
    assert hier.labels().shape == small.shape[:2]


def test_metrics_import_does_not_shadow_api(small: np.ndarray) -> None:
    from affseg.metrics import RegionBenchmark  # noqa: F401 - the import is the point

    assert affseg.segment(small, "slic", segments=8).max() >= 1


@pytest.mark.parametrize("method", ["slic", "felzenszwalb", "mmt", "spectral", "ndd"])
def test_unknown_option_is_an_affseg_error_listing_valid_ones(
    small: np.ndarray, method: str
) -> None:
    from affseg.methods import method_options

    with pytest.raises(AffsegError, match="takes no option 'bogus'; its options: ") as err:
        affseg.hierarchy(small, method, bogus=1)
    for name in method_options(method):
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("method", "options", "fragment"),
    [
        ("slic", {"compactness": "abc"}, "compactness='abc' has the wrong type"),
        ("slic", {"n_segments": "abc"}, "n_segments='abc' has the wrong type"),
        ("felzenszwalb", {"sigma": float("nan")}, "sigma=nan has the wrong type"),
        ("ndd", {"max_centres": 2.5}, "max_centres=2.5 has the wrong type"),
        ("mmt", {"max_iter": "x"}, "max_iter='x' has the wrong type"),
    ],
)
def test_option_values_are_validated(small, method, options, fragment) -> None:
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        affseg.hierarchy(small, method, **options)


def test_scalar_promoted_where_a_sequence_is_expected(small: np.ndarray) -> None:
    from affseg.methods import check_options

    assert check_options("slic", {"n_segments": 64}) == {"n_segments": (64,)}
    assert len(affseg.hierarchy(small, "slic", n_segments=64).levels) == 1


def test_bad_seed_and_method() -> None:
    with pytest.raises(InputError, match="seed must be a non-negative integer"):
        affseg.hierarchy(np.zeros((8, 8, 3), np.uint8), "slic", seed=-1)
    with pytest.raises(InputError, match="unknown method 'nope'; choose one of"):
        affseg.segment(np.zeros((8, 8, 3), np.uint8), "nope")


def test_library_calls_restore_torch_threads(small: np.ndarray) -> None:
    from affseg.methods.spectral import spectral_hierarchy

    before = torch.get_num_threads()
    spectral_hierarchy(small, threads=1)
    assert torch.get_num_threads() == before

"""Shared fixtures: the data root, and skipping data-backed tests without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from affseg.data.paths import data_root


def _dataset(name: str) -> Path:
    path = data_root() / name
    if not path.is_dir():
        pytest.skip(f"dataset {name} not available at {path}")
    return path


@pytest.fixture(scope="session")
def bsds_dir() -> Path:
    """``BSDS500/`` under the data root (skips without it)."""
    return _dataset("BSDS500")


@pytest.fixture(scope="session")
def gpb_dir() -> Path:
    """``BSDS500_gPb_ucm2/`` under the data root (skips without it)."""
    return _dataset("BSDS500_gPb_ucm2")


@pytest.fixture(scope="session")
def msrc_dir() -> Path:
    """``MSRC_v2/`` under the data root (skips without it)."""
    return _dataset("MSRC_v2")


@pytest.fixture(scope="session")
def middlebury_dir() -> Path:
    """``Middlebury_depth_sr/`` under the data root (skips without it)."""
    return _dataset("Middlebury_depth_sr")

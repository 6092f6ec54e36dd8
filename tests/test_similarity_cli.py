"""``affseg similarity``: the Fig. 2-style figure of diffusion-similarity maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affseg.cli import main
from affseg.cli.similarity import colour_similarity

FAST = ["--grid", "12", "--n-eig", "8", "--k", "5"]


def two_halves() -> np.ndarray:
    img = np.zeros((24, 32, 3), np.uint8)
    img[:, :16] = (200, 30, 30)
    img[:, 16:] = (30, 60, 220)
    return img


def test_similarity_stays_in_the_region() -> None:
    maps = colour_similarity(
        two_halves(), [(12, 4), (12, 28)], grid=12, mu=0.5, t=10.0, tau=0.6, k=5, n_eig=8
    )
    assert maps.shape == (2, 24, 32)
    assert maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6
    left, right = maps[0], maps[1]
    assert left[:, :14].mean() > 5 * left[:, 18:].mean()
    assert right[:, 18:].mean() > 5 * right[:, :14].mean()


def test_cli_writes_figure(tmp_path: Path, capsys) -> None:
    src = tmp_path / "halves.png"
    Image.fromarray(two_halves()).save(src)
    out = tmp_path / "fig.png"
    assert main(["similarity", str(src), "--out", str(out), "--pixels", "12,4", "5,30",
                 *FAST]) == 0  # fmt: skip
    fig = np.asarray(Image.open(out))
    assert fig.shape == (24, 3 * 32 + 2 * 6, 3)  # image + 2 maps, 6-pixel gaps
    small = tmp_path / "small.png"
    assert main(["similarity", str(src), "--out", str(small), "--height", "12", *FAST]) == 0
    assert np.asarray(Image.open(small)).shape[0] == 12


@pytest.mark.parametrize(("argv", "needle"), [
    (["--pixels", "99,1"], "outside"),
    (["--pixels", "a,b"], "row,col"),
    (["--grid", "1"], "--grid"),
])  # fmt: skip
def test_cli_errors(tmp_path: Path, capsys, argv: list[str], needle: str) -> None:
    src = tmp_path / "halves.png"
    Image.fromarray(two_halves()).save(src)
    assert main(["similarity", str(src), "--out", str(tmp_path / "f.png"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("affseg: error: ") and "\n" not in err and needle in err


def test_cli_needs_one_source(tmp_path: Path, capsys) -> None:
    assert main(["similarity", "--out", str(tmp_path / "f.png")]) == 2
    assert "--example" in capsys.readouterr().err

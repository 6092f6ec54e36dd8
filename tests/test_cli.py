"""``affseg segment`` and ``affseg eval`` run in-process: outputs, round trips, error lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from affseg.cli import main
from affseg.cli.segment import parse_sets
from affseg.data import bsds
from affseg.data.io import read_label_png, write_label_png, write_ucm_mat
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.ucm import ucm_to_labels

SLIC_FAST = ["--method", "slic", "--set", "n_segments=(200,50,12)"]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI expecting a user error; return its single stderr line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("affseg: error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    """A 40x56 RGB photo-like PNG: two colour halves with a square."""
    img = np.zeros((40, 56, 3), np.uint8)
    img[:, :28] = (200, 40, 40)
    img[:, 28:] = (40, 160, 220)
    img[10:25, 10:20] = (250, 250, 250)
    img = np.clip(img + np.random.default_rng(0).normal(0, 3, img.shape), 0, 255)
    path = tmp_path / "in" / "tiny.png"
    path.parent.mkdir()
    Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def test_parse_sets() -> None:
    assert parse_sets(["scales=64,256", "sigma=0.5", "name=abc", "min-size=3"]) == {
        "scales": (64, 256), "sigma": 0.5, "name": "abc", "min_size": 3,
    }  # fmt: skip


@pytest.mark.parametrize("method", ["felzenszwalb", "kmeans"])
def test_segment_outputs_round_trip(tiny: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / "out"
    assert main(["segment", str(tiny), "--out", str(out), "--method", method]) == 0
    names = {p.name for p in out.iterdir()} - {"affseg_manifest.json"}  # + the manifest
    assert names == {f"tiny.{s}" for s in ("labels.png", "overlay.png", "boundaries.png", "mat")}
    labels = read_label_png(out / "tiny.labels.png")
    assert labels.shape == (40, 56) and labels.min() >= 1
    overlay = np.asarray(Image.open(out / "tiny.overlay.png"))
    assert overlay.shape == (40, 56, 3) and overlay.dtype == np.uint8
    bnd = np.asarray(Image.open(out / "tiny.boundaries.png"))
    assert bnd.shape == (40, 56) and set(np.unique(bnd)) <= {0, 255}
    ucm2 = scipy.io.loadmat(out / "tiny.mat")["ucm2"]
    assert ucm2.shape == (81, 113)
    # the saved hierarchy holds the saved labels (as connected segments) at some threshold
    levels = Hierarchy.from_ucm(ucm2).levels
    from affseg.grouping.relabel import connected_relabel

    assert any(same_partition(lv, connected_relabel(labels)) for lv in levels)


def test_segment_folder_and_segments(tiny: Path, tmp_path: Path, capsys) -> None:
    Image.open(tiny).save(tiny.parent / "second.png")
    out = tmp_path / "out"
    argv = ["segment", str(tiny.parent), "--out", str(out), *SLIC_FAST, "--segments", "12"]
    assert main(argv) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "segments" in ln]
    assert len(lines) == 2 and lines[0].startswith("second:")
    assert len(list(out.glob("*.labels.png"))) == 2


def test_segment_example(tmp_path: Path) -> None:
    argv = ["segment", "--example", "chelsea", "--out", str(tmp_path), *SLIC_FAST]
    assert main(argv) == 0
    assert read_label_png(tmp_path / "chelsea.labels.png").shape == (300, 451)


def test_readme_main_command(tmp_path: Path) -> None:
    """The README's main job: the shipped spec-diff-net on a built-in photo."""
    from affseg.data.io import read_label_png
    from affseg.grouping.ucm import check_ucm2, ucm_to_labels

    assert main(["segment", "--example", "coffee", "--out", str(tmp_path)]) == 0
    labels = read_label_png(tmp_path / "coffee.labels.png")
    assert labels.shape == (400, 600) and 2 <= labels.max() <= 1000
    ucm = check_ucm2(scipy.io.loadmat(tmp_path / "coffee.mat")["ucm2"], labels.shape)
    assert 0 <= ucm.min() and ucm.max() <= 1
    # the label map is one of the UCM's thresholdings (same partition)
    parts = [ucm_to_labels(ucm, t) for t in np.unique(ucm)[:-1]]
    assert any(
        p.max() == labels.max()
        and len(np.unique(p.astype(np.int64) * 100000 + labels)) == labels.max()
        for p in parts
    )


def test_segment_bad_inputs(tmp_path: Path, capsys) -> None:
    gray = tmp_path / "gray.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(gray)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(rgba)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    out = str(tmp_path / "o")
    assert "grayscale" in error_line(capsys, ["segment", str(gray), "--out", out])
    assert "alpha" in error_line(capsys, ["segment", str(rgba), "--out", out])
    assert "cannot decode" in error_line(capsys, ["segment", str(broken), "--out", out])
    assert "no such image" in error_line(capsys, ["segment", "nope.png", "--out", out])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in error_line(capsys, ["segment", str(empty), "--out", out])
    msg = error_line(capsys, ["segment", str(gray), "--out", out, "--set", "bogus=1"])
    assert "takes no option 'bogus'" in msg


# ----------------------------------------------------------------------------- eval
def test_eval_method_json(bsds_dir: Path, tmp_path: Path, capsys) -> None:
    js = tmp_path / "r.json"
    argv = ["eval", "--data", str(bsds_dir.parent), "--split", "val", "--limit", "2",
            *SLIC_FAST, "--json", str(js)]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "covering" in table and "pixel accuracy" in table
    r = json.loads(js.read_text())
    assert r["images"] == 2 and r["seconds"] > 0
    for key, subs in {"covering": ("ods", "ois", "best"), "pri": ("ods", "ois"),
                      "vi": ("ods", "ois"), "pixel_accuracy": ("ods", "ois")}.items():  # fmt: skip
        for s in subs:
            assert np.isfinite(r[key][s])
    assert 0 < r["covering"]["ods"] <= r["covering"]["ois"] <= r["covering"]["best"] <= 1
    assert r["vi"]["ois"] <= r["vi"]["ods"]


def test_eval_saved_equals_method(bsds_dir: Path, tmp_path: Path) -> None:
    """Hierarchies saved by `affseg segment` score exactly as `affseg eval --method`."""
    root = str(bsds_dir.parent)
    ids = bsds.list_split(root, "val")[:2]
    out = tmp_path / "seg"
    imgs = [str(bsds.image_path(root, "val", i)) for i in ids]
    assert main(["segment", *imgs, "--out", str(out), *SLIC_FAST]) == 0
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["eval", "--ucm", str(out), "--data", root, "--split", "val",
                 "--json", str(a)]) == 0  # fmt: skip
    assert main(["eval", "--data", root, "--split", "val", "--limit", "2", *SLIC_FAST,
                 "--json", str(b)]) == 0  # fmt: skip
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    for key in ("covering", "pri", "vi", "pixel_accuracy"):
        for s in ("ods", "ois"):
            assert ra[key][s] == pytest.approx(rb[key][s], abs=1e-12)
    # label maps alone (one level each) are scored too
    lab_dir = tmp_path / "labs"
    for i in ids:
        write_label_png(lab_dir / f"{i}.labels.png", read_label_png(out / f"{i}.labels.png"))
    c = tmp_path / "c.json"
    assert main(["eval", "--ucm", str(lab_dir), "--data", root, "--json", str(c)]) == 0
    assert json.loads(c.read_text())["images"] == 2


def test_eval_bad_inputs(bsds_dir: Path, tmp_path: Path, capsys) -> None:
    root = str(bsds_dir.parent)
    image_id = bsds.list_split(root, "val")[0]
    h, w = bsds.load_image(root, "val", image_id).shape[:2]
    base = ["eval", "--data", root, "--split", "val", "--ucm"]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no <id>.mat" in error_line(capsys, [*base, str(empty)])

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / f"{image_id}.mat").write_bytes(b"garbage" * 20)
    assert "cannot read" in error_line(capsys, [*base, str(corrupt)])

    wrong = tmp_path / "wrong"
    write_ucm_mat(wrong / f"{image_id}.mat", np.zeros((2 * h - 1, 2 * w + 1)))
    msg = error_line(capsys, [*base, str(wrong)])
    assert f"{image_id}.mat" in msg and "shape" in msg

    labs = tmp_path / "labs"
    write_label_png(labs / f"{image_id}.labels.png", np.ones((h + 1, w), np.uint16))
    msg = error_line(capsys, [*base, str(labs)])
    assert "labels.png" in msg and "shape" in msg

    rgb = tmp_path / "rgb"
    rgb.mkdir()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(rgb / f"{image_id}.labels.png")
    assert "single channel" in error_line(capsys, [*base, str(rgb)])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / f"{image_id}.labels.png").write_bytes(b"\x89PNG truncated")
    assert "cannot decode label map" in error_line(capsys, [*base, str(broken)])

    stray = tmp_path / "stray"
    write_label_png(stray / "notanid.labels.png", np.ones((h, w), np.uint16))
    assert "not images of split" in error_line(capsys, [*base, str(stray)])

    nomat = tmp_path / "nomat"
    nomat.mkdir()
    scipy.io.savemat(nomat / f"{image_id}.mat", {"other": np.zeros(2)})
    assert "no 'ucm2'" in error_line(capsys, [*base, str(nomat)])

    msg = error_line(capsys, ["eval", "--data", root, "--split", "test", "--method", "slic"])
    assert "splits present" in msg
    msg = error_line(capsys, ["eval", "--data", str(tmp_path), "--method", "slic"])
    assert "BSDS500 not found" in msg


def test_eval_levels_mode(bsds_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """--mode levels scores each level as one 'threshold'; unequal level counts -> one line."""
    root = str(bsds_dir.parent)
    js = tmp_path / "lv.json"
    assert main(["eval", "--data", root, "--limit", "2", *SLIC_FAST, "--mode", "levels",
                 "--json", str(js)]) == 0  # fmt: skip
    r = json.loads(js.read_text())
    assert r["mode"] == "levels" and r["images"] == 2
    assert r["covering"]["ods_threshold"] in (0.0, 1.0, 2.0)  # a level index
    per = r["per_image"]
    assert r["covering"]["ods"] <= r["covering"]["ois"] <= r["covering"]["best"]
    assert len(per) == 2
    capsys.readouterr()

    import affseg.evaluation.bsds as bsds_eval

    calls = iter([2, 3])

    def fake(image, method, seed, options):  # levels: 2 on the first image, 3 on the next
        n = next(calls)
        return Hierarchy([np.ones(image.shape[:2], np.int32)] * n)

    monkeypatch.setattr(bsds_eval, "run_method_named", fake)
    msg = error_line(capsys, ["eval", "--data", root, "--limit", "2", "--method", "slic",
                              "--mode", "levels"])  # fmt: skip
    assert "same number of levels" in msg and "--mode ucm" in msg


def test_eval_stability(bsds_dir: Path, tmp_path: Path, capsys) -> None:
    """--stability K: every seed on every image, the spread printed and saved."""
    root = str(bsds_dir.parent)
    js = tmp_path / "stab.json"
    assert main(["eval", "--data", root, "--limit", "1", *SLIC_FAST, "--stability", "2",
                 "--seed", "3", "--json", str(js)]) == 0  # fmt: skip
    r = json.loads(js.read_text())
    assert r["method"] == "slic" and r["seeds"] == [3, 4] and len(r["ids"]) == 1
    assert np.shape(r["accuracy"]) == np.shape(r["n_segments"]) == (1, 2)
    assert r["mean_per_image_std"] == 0.0 and r["iterations"] is None  # slic: no seed, no SGD
    assert r["options"] == {"n_segments": [200, 50, 12]}
    assert "per-image std over seeds" in capsys.readouterr().out
    msg = error_line(capsys, ["eval", "--data", root, *SLIC_FAST, "--stability", "1"])
    assert "K >= 2" in msg


def test_ucm_mat_reproduces_labels_exactly(tiny: Path, tmp_path: Path) -> None:
    """The .mat of a nested connected hierarchy gives back the saved label map exactly."""
    out = tmp_path / "o"
    assert main(["segment", str(tiny), "--out", str(out), *SLIC_FAST, "--segments", "50"]) == 0
    labels = read_label_png(out / "tiny.labels.png")
    ucm2 = scipy.io.loadmat(out / "tiny.mat")["ucm2"]
    hits = [t for t in np.linspace(0.01, 0.99, 99) if same_partition(ucm_to_labels(ucm2, t),
                                                                     labels)]  # fmt: skip
    assert hits


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["segment", "--help"], ["eval", "--help"], ["similarity", "--help"],
     ["semantic", "--help"], ["serve", "--help"], ["info", "--help"], ["train", "--help"],
     ["depth-sr", "--help"], ["depth-complete", "--help"]],
)  # fmt: skip
def test_help_imports_no_torch(argv: list[str]) -> None:
    """``affseg --help`` and these subcommands' help answer without importing torch, numpy,
    numba, scipy, skimage or starlette (only the chosen subcommand's module is imported;
    heavy modules load when a command runs)."""
    import subprocess
    import sys

    heavy = ("torch", "numpy", "numba", "scipy", "skimage", "starlette")
    code = (
        "import sys\nfrom affseg.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]", run.stdout[-300:]

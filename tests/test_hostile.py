"""Hostile and careless inputs, through the CLI and the API (issue 14).

Every probe asserts: exit status 2 and exactly one ``affseg: error:`` line naming the
problem, no traceback, no partial or wrong output, nothing written outside ``--out``; for
crafted weights files, that no code ran.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import affseg
from affseg.cli import main
from affseg.data.io import read_image, read_label_png
from affseg.errors import AffsegError, InputError
from affseg.methods import run_method
from cli_util import cli_error  # noqa: E402

WEIGHTS = Path(affseg.__file__).parent / "weights"
HAM = WEIGHTS / "ham_depth_sr_hyperbolic.pt"
NDD = WEIGHTS / "spec_diff_net.pt"


# --------------------------------------------------------------------------- helpers
def files_under(folder: Path, manifest: bool = False) -> list[str]:
    """Files written under ``folder``; the batch manifest only with ``manifest``."""
    if not folder.exists():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and (manifest or p.name != "affseg_manifest.json")
    )


def photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 40)
    img[:, w // 2 :] = (40, 40, 200)
    return np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)


def save(path: Path, arr: np.ndarray, **kw) -> Path:
    Image.fromarray(arr).save(path, **kw)
    return path


class Payload:
    """Unpickling this runs ``os.makedirs(marker)``: the proof that code executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def evil_files(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A marker path and weights files that would create it when unpickled unsafely."""
    marker = tmp_path / "PWNED"
    a = tmp_path / "evil_torch.pt"
    torch.save({"config": Payload(marker), "state_dict": {}, "record": {}}, a)
    b = tmp_path / "evil_pickle.pt"
    b.write_bytes(pickle.dumps({"model": Payload(marker)}))
    # unsafe loading would run it: the payload is real
    assert not marker.exists()
    return marker, [a, b]


# --------------------------------------------------------------------------- security
def test_payload_is_real(tmp_path: Path) -> None:
    marker, (a, _) = evil_files(tmp_path)
    torch.load(a, weights_only=False)  # what affseg must never do
    assert marker.exists()


@pytest.mark.parametrize("which", [0, 1])
def test_malicious_weights_run_no_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], which: int
) -> None:
    marker, evil = evil_files(tmp_path)
    w = evil[which]
    guide = save(tmp_path / "g.png", photo(64, 64))
    depth = save(tmp_path / "d.png", np.full((16, 16), 100, np.uint8))
    out = tmp_path / "out"
    probes = [
        ["depth-sr", "run", "--weights", w, "--guide", guide, "--depth", depth,
         "--out", out / "x.png"],
        ["depth-sr", "eval", "--weights", w, "--scene", "nope", "--data", tmp_path / "nodata"],
        ["segment", guide, "--out", out, "--set", f"weights={w}"],
        ["segment", guide, "--out", out, "--method", "spectral", "--set", f"weights={w}"],
    ]  # fmt: skip
    for argv in probes:
        line = cli_error(capsys, argv)
        assert "weights" in line or "not" in line, line
        assert not marker.exists(), argv
    # train ndd --resume from a crafted checkpoint
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(w.read_bytes())
    line = cli_error(capsys, ["train", "ndd", "--out", run_dir, "--resume", "--steps", "1"])
    assert "checkpoint" in line
    assert not marker.exists()
    # the environment variable and the API
    with pytest.raises(AffsegError):
        affseg.segment(photo(64, 64), weights=str(w))
    from affseg.methods.depth_sr import load_model

    with pytest.raises(AffsegError):
        load_model(w)
    assert not marker.exists()
    assert files_under(out, manifest=True) == []


def test_foreign_and_corrupt_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(4096))
    guide = save(tmp_path / "g.png", photo(64, 64))
    depth = save(tmp_path / "d.png", np.full((16, 16), 100, np.uint8))
    out = tmp_path / "o.png"
    for w, what in ((junk, "not affseg depth-sr weights"), (NDD, "not affseg depth-sr weights")):
        line = cli_error(
            capsys,
            ["depth-sr", "run", "--weights", w, "--guide", guide, "--depth", depth, "--out", out],
        )
        assert what in line
    for w in (junk, HAM):
        line = cli_error(
            capsys, ["segment", guide, "--out", tmp_path / "s", "--set", f"weights={w}"]
        )
        assert "spec-diff-net" in line
    assert not out.exists()
    assert files_under(tmp_path / "s", manifest=True) == []


def test_no_unsafe_loader_in_source() -> None:
    """Every torch.load / np.load call in affseg is safe; no pickle module loads."""
    import ast

    src = Path(affseg.__file__).parent
    calls = 0
    for f in src.rglob("*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n in ("pickle", "dill", "cloudpickle", "joblib") for n in names), f
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = getattr(node.func.value, "id", "")
            kw = {k.arg: k.value for k in node.keywords}
            if (owner, node.func.attr) == ("torch", "load"):
                calls += 1
                assert isinstance(kw.get("weights_only"), ast.Constant), (f, node.lineno)
                assert kw["weights_only"].value is True, (f, node.lineno)
            if (owner, node.func.attr) == ("np", "load"):
                allow = kw.get("allow_pickle")
                assert allow is None or getattr(allow, "value", True) is False, (f, node.lineno)
    assert calls >= 5


# --------------------------------------------------------------------------- images
def _png_header_only(path: Path, w: int, h: int) -> Path:
    """A tiny PNG whose header claims w x h RGB pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def test_decompression_bomb_refused_before_decoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = _png_header_only(tmp_path / "bomb.png", 30000, 30000)
    big = _png_header_only(tmp_path / "big.png", 12000, 10000)  # under PIL's limit, over ours
    for f in (bomb, big):
        with pytest.raises(InputError, match="megapixels|decompression"):
            read_image(f)
        line = cli_error(capsys, ["segment", f, "--out", tmp_path / "o", "--method", "slic"])
        assert "megapixels" in line or "decompression" in line
    assert files_under(tmp_path / "o", manifest=True) == []
    depth = save(tmp_path / "d.png", np.full((16, 16), 100, np.uint8))
    line = cli_error(
        capsys,
        ["depth-sr", "run", "--weights", HAM, "--guide", bomb, "--depth", depth,
         "--out", tmp_path / "x.png"],
    )  # fmt: skip
    assert "decompression" in line or "megapixels" in line


def test_pixel_limit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = save(tmp_path / "a.png", photo(48, 64))
    monkeypatch.setenv("AFFSEG_MAX_PIXELS", "1000")
    with pytest.raises(InputError, match="AFFSEG_MAX_PIXELS"):
        read_image(f)
    monkeypatch.setenv("AFFSEG_MAX_PIXELS", "abc")
    with pytest.raises(InputError, match="AFFSEG_MAX_PIXELS"):
        read_image(f)


def test_exif_orientation_honoured(tmp_path: Path) -> None:
    img = photo(40, 60)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    f = tmp_path / "rot.jpg"
    Image.fromarray(img).save(f, exif=exif, quality=95)
    from affseg.data.io import image_size

    assert read_image(f).shape == (60, 40, 3)
    assert image_size(f) == (60, 40)
    # the left (red) half of the stored image is the top of the displayed one
    up = read_image(f).astype(int)
    assert up[5, :, 0].mean() > up[5, :, 2].mean()


def test_exif_orientation_through_segment(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    f = tmp_path / "rot.jpg"
    Image.fromarray(photo(40, 60)).save(f, exif=exif)
    assert main(["segment", str(f), "--out", str(tmp_path / "o"), "--method", "slic"]) == 0
    assert read_label_png(tmp_path / "o" / "rot.labels.png").shape == (60, 40)


def test_animated_and_palette_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = [Image.fromarray(photo(32, 32, s)) for s in range(3)]
    anim = tmp_path / "anim.gif"
    frames[0].save(anim, save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="3 frames"):
        read_image(anim)
    line = cli_error(capsys, ["segment", anim, "--out", tmp_path / "o", "--method", "slic"])
    assert "frames" in line
    # a single-frame GIF is an image like any other, as a file and in a folder
    d = tmp_path / "d"
    d.mkdir()
    frames[0].save(d / "still.gif")
    assert main(["segment", str(d), "--out", str(tmp_path / "o2"), "--method", "slic"]) == 0
    assert (tmp_path / "o2" / "still.labels.png").is_file()


def test_folder_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "in"
    d.mkdir()
    save(d / "a.png", photo())
    (d / "sub.png").mkdir()  # a folder named like an image is not an image
    (d / ".hidden.png").write_bytes(b"junk")
    (d / "notes.txt").write_text("x")
    out = tmp_path / "o"
    assert main(["segment", str(d), "--out", str(out), "--method", "slic"]) == 0
    assert {p.split(".")[0] for p in files_under(out)} == {"a"}
    # explicit files follow the same rule
    line = cli_error(capsys, ["segment", d / "notes.txt", "--out", tmp_path / "o3"])
    assert "not an image file" in line
    line = cli_error(capsys, ["segment", d / "missing.png", "--out", tmp_path / "o3"])
    assert "no such image" in line


def test_same_stem_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "in"
    d.mkdir()
    save(d / "x.tif", photo())
    save(d / "x.webp", photo(seed=1), lossless=True)
    line = cli_error(capsys, ["segment", d, "--out", tmp_path / "o", "--method", "slic"])
    assert "x.tif" in line and "x.webp" in line and "overwrite" in line
    assert not (tmp_path / "o").exists()
    # the same file twice is segmented once
    f = save(tmp_path / "y.png", photo())
    assert main(["segment", str(f), str(f), "--out", str(tmp_path / "o2"), "--method", "slic"]) == 0


def test_out_inside_the_input_folder(tmp_path: Path) -> None:
    d = tmp_path / "photos"
    d.mkdir()
    save(d / "a.png", photo())
    for _ in range(2):  # a second run does not segment the first run's outputs
        assert main(["segment", str(d), "--out", str(d), "--method", "slic"]) == 0
    assert sorted(p.name for p in d.iterdir()) == [
        "a.boundaries.png", "a.labels.png", "a.mat", "a.overlay.png", "a.png",
        "affseg_manifest.json",
    ]  # fmt: skip


def test_grayscale_alpha_checked_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = save(tmp_path / "a_good.png", photo())
    gray = save(tmp_path / "b_gray.png", photo()[..., 0])
    out = tmp_path / "o"
    line = cli_error(capsys, ["segment", good, gray, "--out", out, "--method", "slic"])
    assert "grayscale" in line
    assert files_under(out, manifest=True) == []  # the good image was not segmented first


# --------------------------------------------------------------------------- sizes
def test_small_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="at least 64 pixels"):
        run_method(photo(40, 40), "ndd")
    for m in ("mmt", "kim", "kanezaki"):
        with pytest.raises(InputError, match="at least 4 pixels"):
            run_method(photo(2, 2), m)
    f = save(tmp_path / "small.png", photo(40, 40))
    line = cli_error(capsys, ["segment", f, "--out", tmp_path / "o"])
    assert "too small" in line and "64" in line
    line = cli_error(
        capsys, ["segment", "--example", "coffee", "--out", tmp_path / "o", "--working-side", "10"]
    )
    assert "--working-side" in line
    assert files_under(tmp_path / "o", manifest=True) == []


def test_working_resolution_api() -> None:
    from affseg.methods import working_image

    img = photo(300, 400)
    hier = run_method(img, "slic", working_side=100)
    labels = hier.labels()
    assert labels.shape == (300, 400) and hier.shape == (300, 400)
    assert hier.work_shape == (75, 100)
    assert hier.to_ucm().shape == (601, 801)
    small = run_method(working_image(img, 100), "slic")
    np.testing.assert_array_equal(hier.levels[0], small.levels[0])
    # unbounded and default: the image is processed at full resolution
    assert run_method(img, "slic", working_side=None).work_shape == (300, 400)
    assert run_method(img, "slic").work_shape == (300, 400)
    for bad in (0, -5, 1.5, "big", True):
        with pytest.raises(InputError, match="working_side"):
            run_method(img, "slic", working_side=bad)
    # the public API passes it through
    assert affseg.segment(img, "slic", working_side=100).shape == (300, 400)


def test_upsampled_ucm_is_the_ucm_of_upsampled_levels() -> None:
    from affseg.grouping.hierarchy import Hierarchy
    from affseg.grouping.ucm import levels_to_ucm

    rng = np.random.default_rng(3)
    for _ in range(20):
        h, w = rng.integers(2, 8, 2)
        big_h, big_w = h + rng.integers(0, 10), w + rng.integers(0, 10)
        fine = rng.integers(1, 7, (h, w))
        hier = Hierarchy([fine, fine % 2 + 1], np.array([0.0, 0.5]))
        up = hier.upsampled((big_h, big_w))
        rows, cols = up._rows_cols()
        ref = levels_to_ucm([lv[np.ix_(rows, cols)] for lv in hier.levels], hier.heights)
        np.testing.assert_array_equal(up.to_ucm(), ref)
        assert up.labels().shape == (big_h, big_w)


def test_large_photo_cli_bounded(tmp_path: Path) -> None:
    f = tmp_path / "big.jpg"
    Image.fromarray(photo(1500, 2000)).save(f, quality=80)
    out = tmp_path / "o"
    assert (
        main(["segment", str(f), "--out", str(out), "--method", "slic", "--working-side", "256"])
        == 0
    )
    assert read_label_png(out / "big.labels.png").shape == (1500, 2000)
    import scipy.io

    assert scipy.io.loadmat(out / "big.mat")["ucm2"].shape == (3001, 4001)


@pytest.mark.slow
def test_large_photo_default_method(tmp_path: Path) -> None:
    """A 6000x4000 photo with the default method: bounded time and memory (~1024 px)."""
    import resource

    f = tmp_path / "huge.jpg"
    Image.fromarray(np.repeat(np.repeat(photo(400, 600), 10, 0), 10, 1)).save(f, quality=80)
    assert main(["segment", str(f), "--out", str(tmp_path / "o")]) == 0
    assert read_label_png(tmp_path / "o" / "huge.labels.png").shape == (4000, 6000)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 6 * 2**20  # KiB: 6 GiB


# --------------------------------------------------------------------------- options
def test_option_values_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    for argv, word in (
        (["--method", "slic", "--set", "n_segments=abc"], "n_segments"),
        (["--method", "slic", "--set", "compactness=[1,2]"], "compactness"),
        (["--set", "eps=abc"], "eps"),
        (["--set", "bogus=1"], "bogus"),
        (["--set", "novalue"], "key=value"),
        (["--segments", "0"], "--segments"),
        (["--working-side", "-3"], "--working-side"),
        (["--seed", "-1"], "seed"),
    ):
        line = cli_error(capsys, ["segment", "--example", "coffee", "--out", out, *argv])
        assert word in line, line
    with pytest.raises(InputError, match="n_segments"):
        affseg.segment(photo(), "slic", n_segments="abc")
    # the per-image methods keep their own max_side option (their network's input size)
    from affseg.methods import check_options

    assert check_options("mmt", {"max_side": 64}) == {"max_side": 64}
    bad_values = [
        ("kanezaki", {"snap": 0}),
        ("kanezaki", {"lr": -1.0}),
        ("mmt", {"momentum": -1.0}),
        ("kim", {"min_area": float("inf")}),
    ]
    for method, opts in bad_values:
        with pytest.raises(InputError, match=next(iter(opts))):
            run_method(photo(), method, **opts)
    # right type, impossible value
    for opts in ({"n_segments": 0}, {"n_segments": (-5,)}, {"compactness": 0.0},
                 {"sigma": float("inf")}):  # fmt: skip
        with pytest.raises(InputError, match=next(iter(opts))):
            affseg.segment(photo(), "slic", **opts)
    assert files_under(out, manifest=True) == []


# --------------------------------------------------------------------------- depth-sr
def test_depth_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from affseg.methods.depth_sr import read_disparity

    d8 = save(tmp_path / "d8.png", np.full((16, 16), 100, np.uint8))
    d16 = tmp_path / "d16.png"
    Image.fromarray(np.full((16, 16), 100 * 256, np.uint16)).save(d16)
    np.testing.assert_array_equal(read_disparity(d8), read_disparity(d16))
    guide = save(tmp_path / "g.png", photo(64, 64))
    outs = []
    for d in (d8, d16):
        out = tmp_path / f"out_{d.stem}.png"
        assert main(["depth-sr", "run", "--weights", str(HAM), "--guide", str(guide),
                     "--depth", str(d), "--out", str(out)]) == 0  # fmt: skip
        outs.append(np.asarray(Image.open(out)))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert 50 * 256 < outs[0].mean() < 150 * 256  # not the all-65535 of a misread map
    rgb_depth = save(tmp_path / "rgb.png", photo(16, 16))
    f32 = tmp_path / "f.tif"
    Image.fromarray(np.full((16, 16), 3.0, np.float32)).save(f32)
    for bad in (rgb_depth, f32):
        line = cli_error(capsys, ["depth-sr", "run", "--weights", HAM, "--guide", guide,
                                  "--depth", bad, "--out", tmp_path / "bad.png"])  # fmt: skip
        assert "depth map" in line
    assert not (tmp_path / "bad.png").exists()


# --------------------------------------------------------------------------- OS errors
def test_unwritable_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    img = save(tmp_path / "a.png", photo())
    guide = save(tmp_path / "g.png", photo(64, 64))
    depth = save(tmp_path / "d.png", np.full((16, 16), 100, np.uint8))
    folder = tmp_path / "folder"
    folder.mkdir()
    probes = [
        (["segment", img, "--method", "slic", "--out", blocker], "not a folder"),
        (["segment", img, "--method", "slic", "--out", blocker / "sub"], "not writable"),
        (["depth-sr", "run", "--weights", HAM, "--guide", guide, "--depth", depth, "--out", folder],
         "is a folder"),
        (["depth-sr", "run", "--weights", HAM, "--guide", guide, "--depth", depth,
          "--out", blocker / "x.png"], "not a folder"),
        (["depth-sr", "eval", "--weights", HAM, "--scene", "books_big", "--json", folder],
         "is a folder"),
        (["eval", "--method", "slic", "--json", folder], "is a folder"),
        (["similarity", "--example", "coffee", "--out", folder], "is a folder"),
        (["train", "ndd", "--out", blocker, "--steps", "1"], "not a folder"),
        (["train", "spectral", "--out", folder, "--steps", "1"], "is a folder"),
    ]  # fmt: skip
    for argv, word in probes:
        line = cli_error(capsys, argv)
        assert word in line, (argv, line)
    assert files_under(folder, manifest=True) == []


def test_os_error_during_write_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import affseg.batch.segment as batch_segment

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o" / "a.labels.png"))

    monkeypatch.setattr(batch_segment, "write_label_png", full)  # where the batch writes
    img = save(tmp_path / "a.png", photo())
    line = cli_error(capsys, ["segment", img, "--method", "slic", "--out", tmp_path / "o"])
    assert "No space left" in line


# --------------------------------------------------------------------------- training
SHIP_PROBES = [
    (["--batch", "0", "--steps", "1", "--ship"], "--batch"),
    (["--steps", "-5"], "--steps"),
    (["--minutes", "-1"], "--minutes"),
    (["--minutes", "0"], "--minutes"),
    (["--steps", "0"], "--minutes"),
    (["--crop", "40"], "--crop"),
    (["--lr", "nan"], "--lr"),
    (["--scales", "0"], "--scales"),
    (["--stage1", "2"], "--stage1"),
    (["--window", "4"], "--window"),
    (["--n-eig", "0"], "--n-eig"),
    (["--threads", "0"], "--threads"),
    (["--checkpoint-minutes", "-1"], "--checkpoint-minutes"),
]


@pytest.mark.parametrize(("extra", "word"), SHIP_PROBES)
def test_train_ndd_arguments_checked_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], word: str
) -> None:
    before = NDD.read_bytes()
    out = tmp_path / "run"
    line = cli_error(capsys, ["train", "ndd", "--out", out, "--data", tmp_path / "nodata", *extra])
    assert word in line
    assert not out.exists()  # nothing written: not even the folder
    assert NDD.read_bytes() == before


@pytest.mark.parametrize(
    ("extra", "word"),
    [(["--steps", "0"], "--steps"), (["--batch", "0"], "--batch"), (["--lr", "-1"], "--lr"),
     (["--max-minutes", "0"], "--max-minutes"), (["--val-every", "0"], "--val-every")],
)  # fmt: skip
def test_train_spectral_arguments_checked_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], word: str
) -> None:
    out = tmp_path / "w.pt"
    line = cli_error(capsys, ["train", "spectral", "--out", out, "--data", tmp_path / "nd", *extra])
    assert word in line
    assert not out.exists()


def test_depth_sr_train_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.pt"
    for extra, word in (
        (["--batch", "0"], "--batch"),
        (["--lr", "inf"], "--lr"),
        (["--steps", "0"], "--steps"),
        (["--iterations", "0"], "--iterations"),
        (["--curvature", "-1"], "--curvature"),
        (["--curvature", "nan"], "--curvature"),
        (["--c-lr-mult", "-2"], "--c-lr-mult"),
        (["--edge-weight", "-1"], "--edge-weight"),
        (["--edge-weight", "nan"], "--edge-weight"),
    ):
        line = cli_error(capsys, ["depth-sr", "train", "--out", out, *extra])
        assert word in line
    assert not out.exists()


# --------------------------------------------------------------------------- caches
def test_import_leaves_numba_and_its_cache_alone(tmp_path: Path) -> None:
    """The kernels are compiled with the package: importing and running the main path
    imports no JIT compiler and leaves NUMBA_CACHE_DIR as it was."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["AFFSEG_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = str(Path(affseg.__file__).parents[1])
    code = (
        "import affseg, os, sys, numpy as np; "
        "affseg.hierarchy(np.zeros((24, 32, 3), np.uint8), method='felzenszwalb'); "
        "print('NUMBA_CACHE_DIR' in os.environ, 'numba' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "False"]


def test_json_outputs_are_strict(tmp_path: Path) -> None:
    from affseg.data.io import write_json

    p = write_json(tmp_path / "a.json", {"x": float("nan"), "y": [np.float32("inf"), 1.5]})

    def no_constants(name: str):
        raise AssertionError(f"non-JSON constant {name}")

    assert json.loads(p.read_text(), parse_constant=no_constants) == {"x": None, "y": [None, 1.5]}


# --------------------------------------------------------------------------- training runs
def _tiny_bsds(root: Path) -> Path:
    import scipy.io

    rng = np.random.default_rng(0)
    img_dir = root / "BSDS500" / "images" / "train"
    gt_dir = root / "BSDS500" / "groundTruth" / "train"
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    shape = (96, 128)
    for i in ("1", "2"):
        seg = np.ones(shape, np.uint16)
        seg[:, 64:] = 2
        seg[48:, :] += 2
        img = (seg[..., None] * 50 + rng.integers(0, 30, (*shape, 3))).astype(np.uint8)
        Image.fromarray(img).save(img_dir / f"{i}.jpg")
        cell = np.empty((1, 2), dtype=object)
        for a in range(2):
            cell[0, a] = {"Segmentation": seg, "Boundaries": np.zeros(shape, np.uint8)}
        scipy.io.savemat(gt_dir / f"{i}.mat", {"groundTruth": cell})
    return root


def _train_argv(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "train", "ndd", "--data", str(data), "--out", str(out), "--cache", str(cache),
        "--steps", "6", "--crop", "64", "--n-eig", "8", "--hr-segments", "2",
        "--val-images", "0", "--checkpoint-minutes", "0", "--no-progress", "--threads", "1",
        *extra,
    ]  # fmt: skip


def test_resumed_training_matches_uninterrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import affseg.train.ndd as tn

    data, cache = _tiny_bsds(tmp_path / "data"), tmp_path / "cache"
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_train_argv(data, a, cache)) == 0
    # interrupt run b right after its third checkpoint (stage 2 starts at step 3)
    real, count = tn.atomic_write, {"n": 0}

    def interrupting(path, fn):
        res = real(path, fn)
        if Path(path).name == "checkpoint.pt":
            count["n"] += 1
            if count["n"] == 3:
                raise KeyboardInterrupt
        return res

    monkeypatch.setattr(tn, "atomic_write", interrupting)
    assert main(_train_argv(data, b, cache)) == 130
    assert not (b / "spec_diff_net.pt").exists()  # no final weights from an unfinished run
    monkeypatch.setattr(tn, "atomic_write", real)
    assert main(_train_argv(data, b, cache, "--resume")) == 0
    wa = torch.load(a / "spec_diff_net.pt", weights_only=True)
    wb = torch.load(b / "spec_diff_net.pt", weights_only=True)
    for k, v in wa["state_dict"].items():
        assert torch.equal(v, wb["state_dict"][k]), k
    assert wa["record"]["final_lr_loss"] == wb["record"]["final_lr_loss"]

    def no_constants(name: str):
        raise AssertionError(f"log.jsonl holds {name}")

    for line in (b / "log.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=no_constants)
    # resuming with another architecture: one line, nothing overwritten
    before = (b / "spec_diff_net.pt").read_bytes()
    line = cli_error(capsys, _train_argv(data, b, cache, "--resume", "--hidden", "64"))
    assert "--hidden 128 (now 64)" in line
    assert (b / "spec_diff_net.pt").read_bytes() == before


def test_failed_training_never_touches_the_shipped_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import affseg.train.ndd as tn

    data, cache = _tiny_bsds(tmp_path / "data"), tmp_path / "cache"
    before = NDD.read_bytes()
    shipped = tmp_path / "shipped.pt"
    monkeypatch.setattr(
        "affseg.models.spec_diff_net.default_weights_path", lambda: shipped, raising=True
    )

    def broken(*_a, **_k):
        raise InputError("simulated failure in the middle of the run")

    monkeypatch.setattr(tn, "val_cosine", broken)
    out = tmp_path / "run"
    line = cli_error(capsys, _train_argv(data, out, cache, "--ship"))
    assert "simulated failure" in line
    assert not shipped.exists()
    assert not (out / "spec_diff_net.pt").exists() and not (out / "record.json").exists()
    assert NDD.read_bytes() == before


def test_compiled_kernel_leaves_floating_point_state_alone() -> None:
    """Loading the C kernel must not switch the process to flush-to-zero (crtfastmath)."""
    code = (
        "import numpy as np; from affseg.affinity import native; "
        "lib = native.stencil_library(); "
        "print(lib is not None, float(np.array([1e-310])[0] * 1.0) > 0, "
        "float(np.float32(1e-40) * np.float32(1)) > 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(affseg.__file__).parents[1])}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    built, f64, f32 = res.stdout.split()
    if built == "False":
        pytest.skip("no C compiler: the numba kernel is used")
    assert (f64, f32) == ("True", "True")

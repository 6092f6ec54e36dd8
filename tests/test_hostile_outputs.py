"""Hostile input, round two: the output folder is affseg's own, resume is by content, and
every count, option and file that a user can get wrong gets one line.

Each test here failed before the fix it guards (the probes of the second hardening pass):
a user's ``a.labels.png`` overwritten, resume keyed on the stem, ``.figure.png`` segmented
again, thread counts that crash the process, option values that only fail deep inside,
malformed manifests, schedulers and ``.mat`` files reported as tracebacks, disk-full runs
that leave partial outputs and concurrent runs that lose each other's records.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

import affseg
from affseg.batch import MANIFEST_NAME, SerialEngine, segment_images
from affseg.batch.manifest import folder_lock
from affseg.cli import main
from affseg.data.io import read_ucm_mat
from affseg.errors import CorruptFileError, InputError
from affseg.methods import run_method
from cli_util import cli_error  # noqa: E402

SLIC = ["--method", "slic", "--set", "n_segments=(40,10)"]


def photo(seed: int = 0, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 40)
    img[:, w // 2 :] = (40, 40, 200)
    return np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST_NAME).read_text())


# --------------------------------------------------------------------------- user files
def test_user_file_named_like_an_output_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "photos"
    save(d / "a.png", photo(0))
    mine = save(d / "a.labels.png", photo(1))  # the user's own photo, named like an output
    before = mine.read_bytes()
    for _ in range(2):  # a rerun is the same: still refused, still untouched
        assert main(["segment", str(d), "--out", str(d), *SLIC]) == 1
        text = capsys.readouterr().out
        assert "refusing to overwrite" in text and "a.labels.png" in text
        assert mine.read_bytes() == before
    # the user's file is an input like any other: segmented into a.labels.labels.png, ...
    assert (d / "a.labels.labels.png").is_file() and (d / "a.labels.mat").is_file()
    assert not (d / "a.labels.labels.labels.png").exists()  # our outputs are not inputs
    assert not (d / "a.overlay.png").exists()  # a.png failed as a whole: nothing written
    m = manifest(d)
    assert m["images"]["a"]["status"] == "failed"
    assert "a.labels.png" not in m["outputs"]


def test_input_named_explicitly_is_read_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    src = save(tmp_path / "a.png", photo(0))
    mine = save(out / "a.labels.png", photo(1))
    before = mine.read_bytes()
    assert main(["segment", str(src), str(mine), "--out", str(out), *SLIC]) == 1
    assert mine.read_bytes() == before
    assert "refusing to overwrite" in capsys.readouterr().out


def test_overwrite_never_replaces_a_foreign_file(tmp_path: Path) -> None:
    d = tmp_path / "out"
    src = save(tmp_path / "x.png", photo(0))
    mine = save(d / "x.overlay.png", photo(2))
    before = mine.read_bytes()
    s = segment_images([("x", src)], d, "slic", overwrite=True, engine=SerialEngine())
    assert s.failed and mine.read_bytes() == before


def test_figure_outputs_are_not_inputs(tmp_path: Path) -> None:
    d = tmp_path / "photos"
    save(d / "a.png", photo(0, h=96, w=128))  # the figure's similarity maps need >= 64 px
    for _ in range(2):
        assert main(["segment", str(d), "--out", str(d), "--figure", *SLIC]) == 0
    names = sorted(p.name for p in d.iterdir())
    assert names == [
        "a.boundaries.png", "a.figure.png", "a.labels.png", "a.mat", "a.overlay.png", "a.png",
        MANIFEST_NAME,
    ]  # fmt: skip


# --------------------------------------------------------------------------- resume
def test_resume_is_by_source_content(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = save(tmp_path / "srcA" / "x.png", photo(0))
    b = save(tmp_path / "srcB" / "x.png", photo(0)[:, ::-1].copy())  # same stem, other content
    out = tmp_path / "o"
    assert main(["segment", str(a.parent), "--out", str(out), *SLIC]) == 0
    labels_a = np.asarray(Image.open(out / "x.labels.png"))
    capsys.readouterr()
    assert main(["segment", str(b.parent), "--out", str(out), *SLIC]) == 0
    assert "1 segmented, 0 already done" in capsys.readouterr().out
    labels_b = np.asarray(Image.open(out / "x.labels.png"))
    assert not np.array_equal(labels_a, labels_b)
    entry = manifest(out)["images"]["x"]
    assert entry["source"] == str(b.resolve())
    # the same content again (a copy elsewhere): finished, not redone
    c = save(tmp_path / "srcC" / "x.png", np.asarray(Image.open(b)))
    assert c.read_bytes() == b.read_bytes()
    capsys.readouterr()
    assert main(["segment", str(c.parent), "--out", str(out), *SLIC]) == 0
    assert "0 segmented, 1 already done" in capsys.readouterr().out


def test_malformed_manifest_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    out.mkdir()
    for text in ('{"config": {}, "images": "abc"}', "[1, 2]", '{"config": {}, "outputs": 5}'):
        (out / MANIFEST_NAME).write_text(text)
        line = cli_error(capsys, ["segment", "--example", "coffee", "--out", out, *SLIC])
        assert "not a readable affseg manifest" in line
    # --overwrite starts afresh (nothing of the folder is treated as affseg's)
    assert main(["segment", "--example", "coffee", "--out", str(out), "--overwrite", *SLIC]) == 0
    assert manifest(out)["images"]["coffee"]["status"] == "done"


def test_concurrent_run_into_one_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    out.mkdir()
    with folder_lock(out):  # another run holds the folder
        line = cli_error(capsys, ["segment", "--example", "coffee", "--out", out, *SLIC])
    assert "another affseg run is writing into" in line
    assert main(["segment", "--example", "coffee", "--out", str(out), *SLIC]) == 0


def test_disk_full_leaves_no_partial_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import affseg.batch.segment as batch_segment

    srcs = [save(tmp_path / "in" / f"{n}.png", photo(i)) for i, n in enumerate("abc")]
    real = batch_segment.write_ucm_mat

    def full_for_b(path, ucm2):
        if Path(path).name == "b.mat":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, ucm2)

    monkeypatch.setattr(batch_segment, "write_ucm_mat", full_for_b)  # where the batch writes
    out = tmp_path / "o"
    s = segment_images([(p.stem, p) for p in srcs], out, "slic", engine=SerialEngine())
    assert (s.done, len(s.failed)) == (2, 1) and "No space left" in s.failed["b"]
    assert not list(out.glob("b.*"))  # its labels / overlay / boundaries are removed
    m = manifest(out)
    assert m["images"]["b"]["status"] == "failed"
    assert {m["images"][k]["status"] for k in "ac"} == {"done"}
    assert not any(n.startswith("b.") for n in m["outputs"])


# --------------------------------------------------------------------------- counts
@pytest.mark.parametrize(
    "argv",
    [
        ["--threads", "100000"],
        ["--threads", "0"],
        ["--workers", "100000"],
        ["--method", "spectral", "--set", "threads=100000"],
    ],
)
def test_thread_counts_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    out = tmp_path / "o"
    line = cli_error(capsys, ["segment", "--example", "coffee", "--out", out, *argv])
    assert "threads" in line or "workers" in line
    assert not out.exists()  # refused before --out is made


def test_thread_limit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from affseg.runtime import check_threads, max_threads

    monkeypatch.setenv("AFFSEG_MAX_THREADS", "3")
    assert max_threads() == 3 and check_threads(3) == 3
    with pytest.raises(InputError, match="at most 3"):
        check_threads(4)
    monkeypatch.setenv("AFFSEG_MAX_THREADS", "lots")
    with pytest.raises(InputError, match="AFFSEG_MAX_THREADS"):
        max_threads()


@pytest.mark.parametrize("scheduler", ["not a url", "FILE", "tcp://host-without-port"])
def test_bad_scheduler_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scheduler: str
) -> None:
    if scheduler == "FILE":
        scheduler = str(save(tmp_path / "a.png", photo()))
    out = tmp_path / "o"
    line = cli_error(capsys, ["segment", "--example", "coffee", "--out", out, "--scheduler",
                              scheduler])  # fmt: skip
    assert "--scheduler" in line
    assert not out.exists()


# --------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("method", "opts", "word"),
    [
        ("slic", {"default_segments": 0}, "default_segments"),
        ("felzenszwalb", {"scales": 0}, "scales"),
        ("felzenszwalb", {"sigma": float("inf")}, "sigma"),
        ("felzenszwalb", {"sigma": float("nan")}, "sigma"),
        ("ndd", {"n_leaves": 0}, "n_leaves"),
        ("slic", {"n_segments": 10**23}, "n_segments"),
        ("ndd", {"model": 5}, "model"),
        # found by tests/test_fuzz_cli.py: a run that never ends, or a 148 GB allocation
        ("kmeans", {"n_iter": 10**9}, "n_iter"),
        ("kmeans", {"ks": (10**6,)}, "ks"),
        ("ncut", {"num_cuts": 10**9}, "num_cuts"),
        ("ncut", {"n_superpixels": 10**9}, "n_superpixels"),
        ("felzenszwalb", {"sigma": 6.5e243}, "sigma"),
        ("quickshift", {"kernel_size": 1e6}, "kernel_size"),
    ],
)
def test_option_ranges(method: str, opts: dict, word: str) -> None:
    with pytest.raises(InputError, match=word):
        run_method(photo(h=64, w=64), method, **opts)


def test_option_range_errors_leave_no_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    for argv in (
        ["--method", "slic", "--set", "default_segments=0"],
        ["--method", "felzenszwalb", "--set", "scales=0"],
        ["--method", "felzenszwalb", "--set", "sigma=1e999"],
        ["--set", "n_leaves=0"],
        ["--set", "model=5"],
    ):
        line = cli_error(capsys, ["segment", "--example", "coffee", "--out", out, *argv])
        assert argv[-1].split("=")[0] in line, line
        assert not out.exists()


def test_segments_must_be_an_integer() -> None:
    for bad in (2.5, 1e23, True, "8"):
        with pytest.raises(InputError, match="segments must be an integer"):
            affseg.segment(photo(), "slic", segments=bad)
    assert affseg.segment(photo(), "slic", segments=10**23).shape == (48, 64)  # the coarsest


def test_all_images_failing_leaves_no_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    out = tmp_path / "o"
    cli_error(capsys, ["segment", bad.parent, "--out", out, *SLIC])
    assert not out.exists()


# --------------------------------------------------------------------------- files
def test_fifo_is_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    line = cli_error(capsys, ["segment", fifo, "--out", tmp_path / "o"])
    assert "neither a regular file nor a folder" in line


@pytest.mark.parametrize(
    ("ucm2", "word"),
    [
        ("a string", "a string"),
        (np.array([np.zeros((3, 3)), "x"], dtype=object), "cell"),
        (np.zeros((5, 7, 2)), "shape (5, 7, 2)"),
        (np.zeros((5, 7)) + 1j, "complex"),
        (np.zeros((4, 7)), "odd sides"),
    ],
)
def test_bad_ucm_mat_names_the_file(tmp_path: Path, ucm2: object, word: str) -> None:
    p = tmp_path / "100007.mat"
    scipy.io.savemat(p, {"ucm2": ucm2})
    with pytest.raises(CorruptFileError, match="100007.mat") as info:
        read_ucm_mat(p)
    assert word in str(info.value)


def test_eval_compare_checked_before_the_benchmark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the data folder does not even exist: the missing --compare file is reported first
    line = cli_error(
        capsys,
        ["eval", "--method", "slic", "--split", "val", "--data", tmp_path / "nowhere",
         "--plot", tmp_path / "c.png", "--compare", tmp_path / "missing.json"],
    )  # fmt: skip
    assert "missing.json" in line


def test_train_ndd_bad_split_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    cli_error(capsys, ["train", "ndd", "--splits", "bogus", "--out", out, "--data", tmp_path])
    assert not out.exists()


def test_figure_raises_no_numpy_writability_warning(tmp_path: Path) -> None:
    """``--figure`` once warned "The given NumPy array is not writable" (torch warns once a
    process, so the check runs in a fresh one, with warnings as errors)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-W", "error::UserWarning", "-m", "affseg.cli", "segment",
           "--example", "coffee", "--figure", *SLIC, "--out", str(tmp_path / "o")]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "not writable" not in run.stderr and (tmp_path / "o" / "coffee.figure.png").is_file()


def test_segment_memory_rule_from_the_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 12 MP photo's full-resolution outputs are part of the estimate, checked from the
    header before decoding; ``--working-side 0`` (no bound) is refused, not attempted."""
    big = save(tmp_path / "big.png", np.zeros((3000, 4000, 3), np.uint8))
    monkeypatch.setenv("AFFSEG_MAX_MEMORY_GB", "1")
    line = cli_error(capsys, ["segment", big, "--method", "slic", "--out", tmp_path / "o"])
    assert "4000 x 3000" in line and "outputs" in line and "AFFSEG_MAX_MEMORY_GB" in line
    monkeypatch.setenv("AFFSEG_MAX_MEMORY_GB", "4")
    line = cli_error(capsys, ["segment", big, "--working-side", "0", "--out", tmp_path / "o"])
    assert "would need about" in line
    assert not (tmp_path / "o").exists()
    from affseg.methods import working_size

    assert working_size(3000, 4000, 1024) == (768, 1024)

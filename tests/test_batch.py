"""Whole image sets: resume after SIGKILL, manifest, failures, and Dask == serial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

import affseg
from affseg.batch import MANIFEST_NAME, SerialEngine, segment_images
from affseg.batch.segment import OUTPUT_SUFFIXES
from affseg.cli import main
from affseg.data.io import read_label_png

SLIC = {"n_segments": (120, 30, 8)}
SRC = str(Path(affseg.__file__).resolve().parents[1])


def _images(folder: Path, n: int, shape=(96, 128), seed: int = 0) -> list[Path]:
    """Smooth random colour images (no dataset needed)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        a = gaussian_filter(rng.uniform(0, 255, (*shape, 3)), sigma=(6, 6, 0))
        a = (a - a.min()) / (np.ptp(a) + 1e-9) * 255
        p = folder / f"im{k:03d}.png"
        Image.fromarray(a.astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def _outputs(out: Path) -> dict[str, object]:
    """Every output's content (label maps and UCMs as arrays, PNGs as bytes)."""
    res: dict[str, object] = {}
    for p in sorted(out.iterdir()):
        if p.name.endswith(".labels.png"):
            res[p.name] = read_label_png(p)
        elif p.suffix == ".mat":
            res[p.name] = scipy.io.loadmat(p)["ucm2"]
        elif p.suffix == ".png":
            res[p.name] = np.asarray(Image.open(p))
    return res


def _assert_same(a: dict[str, object], b: dict[str, object]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_pipelined_writes_equal_one_by_one_and_keep_order(tmp_path: Path) -> None:
    from affseg.batch.engine import Done, Failed
    from affseg.batch.segment import SegmentTask, pipelined_segment, segment_one

    paths = _images(tmp_path / "in", 3)
    paths[1].write_bytes(b"not an image")

    def tasks(out: Path) -> list[SegmentTask]:
        out.mkdir()
        return [SegmentTask(p.stem, str(p), False, str(out), "slic", 0, SLIC, None) for p in paths]

    # small results overlap the next image; a 0-byte bound writes each one first
    for bound in (2**30, 0):
        got = list(pipelined_segment(tasks(tmp_path / f"pipe{bound}"), overlap_bytes=bound))
        assert [i for i, _ in got] == [0, 1, 2]
        assert [type(o) for _, o in got] == [Done, Failed, Done]
        assert "im001" not in " ".join(x.name for x in (tmp_path / f"pipe{bound}").iterdir())
    one = tasks(tmp_path / "one")
    for t in (one[0], one[2]):
        segment_one(t)
    _assert_same(_outputs(tmp_path / "pipe0"), _outputs(tmp_path / "one"))
    _assert_same(_outputs(tmp_path / f"pipe{2**30}"), _outputs(tmp_path / "one"))


def test_resume_skips_finished_and_manifest(tmp_path: Path) -> None:
    paths = _images(tmp_path / "in", 3)
    items = [(p.stem, p) for p in paths]
    out = tmp_path / "out"
    s1 = segment_images(items[:2], out, "slic", options=SLIC, engine=SerialEngine())
    assert (s1.done, s1.skipped, len(s1.failed)) == (2, 0, 0)
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != MANIFEST_NAME}
    s2 = segment_images(items, out, "slic", options=SLIC)
    assert (s2.done, s2.skipped) == (1, 2)
    for name, t in stamp.items():
        assert (out / name).stat().st_mtime_ns == t  # not redone
    man = json.loads((out / MANIFEST_NAME).read_text())
    assert man["affseg_version"] == affseg.__version__
    assert man["config"]["method"] == "slic" and man["config"]["options"]["n_segments"]
    assert {k: v["status"] for k, v in man["images"].items()} == {p.stem: "done" for p in paths}
    s3 = segment_images(items, out, "slic", options=SLIC, overwrite=True)
    assert s3.done == 3
    # another configuration in the same folder needs --overwrite
    with pytest.raises(affseg.errors.InputError, match="another run"):
        segment_images(items, out, "felzenszwalb")


def test_bad_image_is_reported_and_skipped(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "in"
    _images(folder, 2)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(folder / "gray.png")
    out = tmp_path / "out"
    argv = ["segment", str(folder), "--out", str(out), "--method", "slic"]
    assert main([*argv, "--set", "n_segments=(50,10)"]) == 1
    text = capsys.readouterr().out
    assert "2 segmented, 0 already done, 2 failed of 4" in text
    assert "CorruptFileError" in text and "InputError" in text
    man = json.loads((out / MANIFEST_NAME).read_text())
    assert man["images"]["broken"]["status"] == "failed"
    assert "grayscale" in man["images"]["gray"]["error"]
    assert man["summary"]["failed"] == 2
    assert not list(out.glob("broken.*")) and not list(out.glob("gray.*"))


def test_sigkill_midway_then_resume(tmp_path: Path) -> None:
    """SIGKILL a run midway: only whole files remain; the rerun finishes the set with the
    outputs of an uninterrupted run and leaves the finished images alone."""
    folder = tmp_path / "in"
    n = 12
    _images(folder, n, shape=(120, 160))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-c", "import sys; from affseg.cli import main; sys.exit(main())",
           "segment", str(folder), "--out", str(out), "--method", "felzenszwalb"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and len(list(out.glob("*.mat"))) >= 2:
            break
        time.sleep(0.002)
    assert proc.poll() is None, f"the run ended before it was killed: {proc.stderr.read()}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = sorted(p.name[: -len(".mat")] for p in out.glob("*.mat"))
    assert 2 <= len(finished) < n
    # no partial file under a final name: every output decodes
    for p in out.iterdir():
        if p.name.startswith("."):
            assert p.name.endswith(".part")  # a temp file, never mistaken for an output
            continue
        if p.suffix == ".mat":
            scipy.io.loadmat(p)["ucm2"]
        elif p.suffix == ".png":
            np.asarray(Image.open(p))
        else:
            assert p.name == MANIFEST_NAME
            json.loads(p.read_text())
    stamp = {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
        for stem in finished
        for p in (out / f"{stem}{s}" for s in OUTPUT_SUFFIXES)
    }
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} already done" in rerun.stdout
    for name, st in stamp.items():
        p = out / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == st, f"{name} was redone"
    assert not list(out.glob(".*.part"))
    ref = tmp_path / "ref"
    items = [(p.stem, p) for p in sorted(folder.iterdir())]
    assert segment_images(items, ref, "felzenszwalb").done == n
    _assert_same(_outputs(out), _outputs(ref))
    man = json.loads((out / MANIFEST_NAME).read_text())
    assert sum(v["status"] == "done" for v in man["images"].values()) == n


# ------------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def dask_engine():
    pytest.importorskip("distributed", reason="Dask is not installed (pip install affseg[dask])")
    from affseg.batch import DaskEngine

    eng = DaskEngine(workers=2)
    yield eng
    eng.close()


def test_dask_segment_equals_serial(tmp_path: Path, dask_engine) -> None:
    paths = _images(tmp_path / "in", 6)
    items = [(p.stem, p) for p in paths]
    a, b = tmp_path / "serial", tmp_path / "dask"
    assert segment_images(items, a, "slic", options=SLIC).done == 6
    s = segment_images(items, b, "slic", options=SLIC, engine=dask_engine)
    assert s.done == 6 and not s.failed and "Dask" in s.engine
    assert dask_engine.slots == 2
    _assert_same(_outputs(a), _outputs(b))
    # a bad image on a worker is a failure of that image only
    broken = tmp_path / "in" / "zz_broken.png"
    broken.write_bytes(b"garbage")
    s = segment_images([*items, ("zz_broken", broken)], b, "slic", options=SLIC,
                       engine=dask_engine)  # fmt: skip
    assert (s.done, s.skipped, list(s.failed)) == (0, 6, ["zz_broken"])


def test_dask_eval_equals_serial(bsds_dir: Path, dask_engine) -> None:
    from affseg.batch import evaluate
    from affseg.evaluation.bsds import EvalTask

    root = str(bsds_dir.parent)
    from affseg.data import bsds

    ids = bsds.list_split(root, "val")[:2]
    tasks = [EvalTask(i, root, "val", method="slic", options=SLIC, boundary=True) for i in ids]
    serial = evaluate(tasks, SerialEngine())
    dist = evaluate(tasks, dask_engine)
    assert serial.region.compute() == dist.region.compute()
    assert serial.boundary.compute() == dist.boundary.compute()
    assert serial.boundary.compute()["images"] == 2


def test_cli_eval_workers_flag(bsds_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="Dask is not installed (pip install affseg[dask])")
    root = str(bsds_dir.parent)
    js = {k: tmp_path / f"{k}.json" for k in ("serial", "dask")}
    base = ["eval", "--data", root, "--limit", "1", "--method", "slic", "--boundary",
            "--set", "n_segments=(120,30,8)"]  # fmt: skip
    assert main([*base, "--json", str(js["serial"])]) == 0
    assert main([*base, "--workers", "2", "--json", str(js["dask"])]) == 0
    r = {k: json.loads(p.read_text()) for k, p in js.items()}
    for key in ("covering", "pri", "vi", "pixel_accuracy", "boundary"):
        assert r["serial"][key] == r["dask"][key]
    assert set(r["dask"]["boundary"]) >= {"ods", "ois", "ap", "ods_recall", "ods_precision",
                                          "ods_threshold"}  # fmt: skip


def test_cli_segment_on_existing_scheduler(tmp_path: Path, dask_engine, capsys) -> None:
    """--scheduler ADDRESS runs on a cluster started elsewhere (here: the fixture's)."""
    paths = _images(tmp_path / "in", 3)
    address = dask_engine.client.scheduler.address
    out, ref = tmp_path / "out", tmp_path / "ref"
    args = [str(tmp_path / "in"), "--method", "slic", "--set", "n_segments=(120,30,8)"]
    assert main(["segment", *args, "--out", str(out), "--scheduler", address]) == 0
    assert f"Dask cluster at {address}" in capsys.readouterr().out
    assert segment_images([(p.stem, p) for p in paths], ref, "slic", options=SLIC).done == 3
    _assert_same(_outputs(out), _outputs(ref))

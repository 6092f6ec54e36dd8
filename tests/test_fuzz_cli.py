"""Property-based fuzzing of the command line and the Python API (hypothesis).

The properties are the project's error rule: whatever the arguments, ``affseg`` ends with
exit status 0, 1 (some images failed) or 2, and a status-2 end prints exactly one
``affseg: error:`` line (argparse's own usage errors: a usage block and one ``error:``
line), never a traceback; the API either returns a result or raises
:class:`affseg.AffsegError`.

The budget is small in CI (``AFFSEG_FUZZ_EXAMPLES``, default 25 cases per test, a few
seconds); a longer hunt is one environment variable away::

    AFFSEG_FUZZ_EXAMPLES=2000 python -m pytest -q tests/test_fuzz_cli.py

Values come from a pool of hostile ones (NaN, infinities, huge and negative numbers,
wrong types, paths that are folders, FIFOs or missing) mixed with valid ones, so that the
generated calls reach past the first check. Every finding becomes a regression test in
``tests/test_hostile_outputs.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from PIL import Image

import affseg
from affseg.cli import main
from affseg.methods import method_options

EXAMPLES = int(os.environ.get("AFFSEG_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    # no shrinking by default: a failure is reported as found (shrinking one slow case can
    # take minutes); AFFSEG_FUZZ_SHRINK=1 asks for the minimal example
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if os.environ.get("AFFSEG_FUZZ_SHRINK") else []),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=os.environ.get("AFFSEG_FUZZ_RANDOM") is None,  # CI: the same cases each run
    # a long hunt also flags cases that run away (e.g. an unbounded iteration count)
    deadline=float(os.environ["AFFSEG_FUZZ_DEADLINE_MS"])
    if os.environ.get("AFFSEG_FUZZ_DEADLINE_MS")
    else None,
)
#: Methods fast enough to fuzz by the dozen (the network methods have their own probes).
FAST_METHODS = ("slic", "felzenszwalb", "kmeans", "quickshift")

NUMBERS = st.sampled_from(
    ["0", "-1", "1", "2", "3", "nan", "inf", "-inf", "1e999", "1e23", "2.5", "100000",
     "-0", "0x10", "1_000", "", " ", "abc", "(1,2)", "()", "[]", "None", "True", "'x'"]
)  # fmt: skip


@pytest.fixture(scope="module")
def playground(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a good photo, a broken one, a grayscale one, a FIFO and a sub-folder."""
    d = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 40, (40, 56, 3)), 0, 255).astype(np.uint8)
    img[:, 28:] //= 3
    Image.fromarray(img).save(d / "good.png")
    Image.fromarray(img[:, :, 0]).save(d / "gray.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    os.mkfifo(d / "pipe.png")
    (d / "sub").mkdir()
    return d


def _paths(d: Path) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [str(d / n) for n in ("good.png", "gray.png", "broken.jpg", "pipe.png", "sub",
                              "missing.png", "good.png/x")]
    )  # fmt: skip


def _check_outcome(rc: object, err: str) -> None:
    event(f"exit {rc}")  # --hypothesis-show-statistics: how far the cases got
    assert "Traceback" not in err, err
    assert rc in (0, 1, 2), (rc, err)
    if rc == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error:" in ln]
        assert len(errors) == 1, err
        assert lines[-1].startswith(("affseg: error: ", "affseg ")), err


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse: usage error (2) or --help (0)
        rc = exc.code
    _check_outcome(rc, capsys.readouterr().err)


#: Valid values of the segment flags, mixed half and half with hostile ones.
GOOD_FLAGS = {"--segments": "8", "--seed": "3", "--working-side": "32", "--threads": "1"}


def _value(draw: st.DrawFn, good: str) -> str:
    return good if draw(st.booleans()) else draw(NUMBERS)


@st.composite
def segment_argv(draw: st.DrawFn, d: Path) -> list[str]:
    method = draw(st.sampled_from(FAST_METHODS))
    path = str(d / "good.png") if draw(st.booleans()) else draw(_paths(d))
    argv = ["segment", path, "--method", method]
    argv += ["--out", str(d / "out" / draw(st.sampled_from(["a", "b"])))]
    params = method_options(method)
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(sorted(params)))
        default = params[name].default
        good = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
        argv += ["--set", f"{name}={_value(draw, good)}"]
    for flag, good in GOOD_FLAGS.items():
        if draw(st.booleans()):
            argv += [flag, _value(draw, good)]
    if draw(st.booleans()):
        argv.append("--overwrite")
    return argv


@FUZZ
@given(data=st.data())
def test_fuzz_segment_cli(
    data: st.DataObject, playground: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(data.draw(segment_argv(playground)), capsys)


@st.composite
def other_argv(draw: st.DrawFn, d: Path) -> list[str]:
    kind = draw(st.sampled_from(["eval", "similarity", "serve", "train"]))
    if kind == "eval":
        argv = ["eval", "--method", draw(st.sampled_from(FAST_METHODS)), "--split", "val"]
        argv += ["--data", str(d / "nodata")]
        for flag in ("--limit", "--workers", "--threads", "--seed"):
            if draw(st.booleans()):
                argv += [flag, draw(NUMBERS)]
        if draw(st.booleans()):
            argv += ["--ucm", draw(_paths(d))]
        return argv
    if kind == "similarity":
        argv = ["similarity", draw(_paths(d)), "--out", str(d / "sim.png")]
        for flag in ("--mu", "--tau", "--grid", "--height"):
            if draw(st.booleans()):
                argv += [flag, draw(NUMBERS)]
        return argv
    if kind == "serve":  # option checks only: every case is refused before the server starts
        argv = ["serve", "--port", "0", "--threads", draw(st.sampled_from(["-1", "0", "inf"]))]
        for flag in ("--max-upload-mb", "--cache-mb"):
            if draw(st.booleans()):
                argv += [flag, draw(NUMBERS)]
        return argv
    argv = ["train", draw(st.sampled_from(["ndd", "spectral", "boundary"]))]
    argv += ["--out", str(d / "run"), "--data", str(d / "nodata")]
    for flag in ("--steps", "--lr", "--threads", "--seed"):
        if draw(st.booleans()):
            argv += [flag, draw(NUMBERS)]
    return argv


@FUZZ
@given(data=st.data())
def test_fuzz_other_commands(
    data: st.DataObject, playground: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(data.draw(other_argv(playground)), capsys)


VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.lists(st.integers(-5, 300), max_size=3).map(tuple),
    st.lists(st.floats(allow_nan=True), max_size=3),
)


@FUZZ
@given(
    method=st.sampled_from(FAST_METHODS),
    data=st.data(),
    segments=st.one_of(st.none(), st.integers(-3, 2**70), st.floats(allow_nan=True)),
)
def test_fuzz_python_api(method: str, data: st.DataObject, segments: object) -> None:
    rng = np.random.default_rng(1)
    image = np.clip(rng.normal(128, 40, (24, 32, 3)), 0, 255).astype(np.uint8)
    names = sorted(method_options(method))
    opts = data.draw(st.dictionaries(st.sampled_from([*names, "bogus"]), VALUES, max_size=2))
    try:
        labels = affseg.segment(image, method, segments=segments, **opts)
    except affseg.AffsegError:
        return
    assert labels.shape == image.shape[:2] and labels.min() >= 1

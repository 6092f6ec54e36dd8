"""Unit tests of the viewer's parts: byte-bounded LRU, upload checks, cached similarity."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from affseg.errors import InputError
from affseg.serve.cache import ByteLRU, size_of
from affseg.serve.uploads import UploadRefused, decode_upload


def _png(arr: np.ndarray, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def test_lru_evicts_by_bytes_and_recency():
    c = ByteLRU(100)
    assert c.put("a", b"1" * 40) and c.put("b", b"2" * 40)
    assert c.get("a") is not None  # a is now the most recent
    assert c.put("c", b"3" * 40)  # evicts b
    assert "b" not in c and "a" in c and "c" in c and c.bytes == 80
    assert not c.put("big", b"x" * 101) and "big" not in c
    c.put("a", b"1" * 10)  # replacing updates the size
    assert c.bytes == 50 and c.pop("a") is not None and c.bytes == 40
    assert c.stats()["evictions"] == 1
    with pytest.raises(ValueError):
        ByteLRU(0)


def test_lru_threads_stay_within_budget():
    c = ByteLRU(10_000)

    def work(k: int) -> None:
        for i in range(300):
            c.put((k, i), np.zeros(100, np.uint8))
            c.get((k, i // 2))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.bytes <= 10_000 and c.bytes == sum(100 for _ in range(len(c)))


def test_size_of():
    assert size_of(np.zeros((10, 10), np.float32)) == 400
    assert size_of(b"abc") == 3
    assert size_of({"a": np.zeros(8, np.uint8)}) >= 8


def test_decode_upload_accepts_common_images():
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    out = decode_upload(_png(rgb), max_bytes=10**6, max_pixels=10**6)
    assert out.dtype == np.uint8 and np.array_equal(out, rgb)
    jpg = decode_upload(_png(rgb, format="JPEG"), max_bytes=10**6, max_pixels=10**6)
    assert jpg.shape == (20, 30, 3)
    grey = decode_upload(_png(rgb[..., 0]), max_bytes=10**6, max_pixels=10**6)
    assert grey.shape == (20, 30, 3) and np.array_equal(grey[..., 1], rgb[..., 0])
    rgba = np.dstack([rgb, np.zeros((20, 30), np.uint8)])  # fully transparent: white
    assert (decode_upload(_png(rgba), max_bytes=10**6, max_pixels=10**6) == 255).all()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"GIF89a garbage", 415),
        (b"%PDF-1.4 not an image", 415),
        (b"x" * 2000, 413),
    ],
)
def test_decode_upload_refusals(data, status):
    with pytest.raises(UploadRefused) as err:
        decode_upload(data, max_bytes=1000, max_pixels=10**6)
    assert err.value.status == status
    assert isinstance(err.value, InputError)


def test_decode_upload_refuses_pixels_before_decoding(monkeypatch):
    from PIL import Image, ImageFile

    calls = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: calls.append(1))
    data = _png(np.zeros((300, 400), np.uint8))
    with pytest.raises(UploadRefused) as err:
        decode_upload(data, max_bytes=10**6, max_pixels=100_000)
    assert err.value.status == 413 and "120,000 pixels" in str(err.value)
    assert calls == []  # refused from the header alone
    assert Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > 10**6  # untouched


def test_decode_upload_refuses_header_bombs():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from serve_util import bomb_png

    with pytest.raises(UploadRefused) as err:
        decode_upload(bomb_png(), max_bytes=10**6, max_pixels=10**12)  # Pillow's own guard
    assert err.value.status == 413


def test_similarity_field_matches_cli_map():
    from affseg.methods.similarity import ndd_similarity
    from affseg.serve.similarity import SimilarityField

    rng = np.random.default_rng(3)
    rgb = np.kron(rng.integers(0, 255, (4, 5, 3)), np.ones((30, 30, 1))).astype(np.uint8)
    field = SimilarityField(rgb)
    pixels = [(10, 10), (100, 140)]
    ref = ndd_similarity(rgb, pixels)
    for (y, x), r in zip(pixels, ref, strict=True):
        got = field.row(y, x)
        assert got.shape == rgb.shape[:2]
        np.testing.assert_allclose(got, r, atol=1e-5)
    assert field.nbytes > 0
    with pytest.raises(InputError):
        field.row(-1, 0)
    small = SimilarityField(rgb[:40, :50])  # enlarged internally, answered at its own size
    assert small.row(5, 5).shape == (40, 50)


def test_fast_overlay_matches_overlay_colours():
    from affseg.grouping.visualize import overlay
    from affseg.serve.render import fast_overlay

    rgb = np.random.default_rng(1).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    lab = np.ones((12, 16), np.int32)
    lab[:, 8:] = 2
    fast, ref = fast_overlay(rgb, lab), overlay(rgb, lab)
    inside = np.ones((12, 16), bool)
    inside[:, 6:10] = False
    assert np.abs(fast[inside].astype(int) - ref[inside]).max() <= 1
    assert (fast[:, 7] == (255, 255, 0)).all()


def test_serve_cli_options():
    pytest.importorskip("starlette")
    from affseg.cli import build_parser
    from affseg.cli.serve import is_loopback, settings_from_args

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    s = settings_from_args(args)
    assert s.max_upload_bytes == 20 * 1024 * 1024 and "localhost" in s.allowed_hosts
    assert is_loopback("127.0.0.2") and is_loopback("::1") and not is_loopback("0.0.0.0")
    wide = settings_from_args(build_parser().parse_args(["serve", "--host", "0.0.0.0"]))
    assert wide.allowed_hosts == ()
    with pytest.raises(InputError):
        settings_from_args(build_parser().parse_args(["serve", "--cache-mb", "0"]))


@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 3), (5, 4, 4)])
def test_encode_png_roundtrip(shape):
    from PIL import Image

    from affseg.serve.render import encode_png

    arr = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    for level in (0, 1):
        back = np.asarray(Image.open(io.BytesIO(encode_png(arr, level))))
        assert np.array_equal(back, arr)
    lab = np.arange(63, dtype=np.uint16).reshape(7, 9) * 1000
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(lab)))), lab)


def test_viewer_ndd_job_shares_the_network_pass():
    import time

    from affseg.cli.segment import load_example
    from affseg.serve.limits import Settings
    from affseg.serve.similarity import SimilarityField
    from affseg.serve.viewer import Viewer

    v = Viewer(Settings(max_side=160))
    try:
        desc = v.add_image(load_example("coffee"), "coffee")
        assert (desc["width"], desc["height"], desc["scale"]) == (160, 107, 160 / 600)
        job = v.submit(desc["id"], "ndd")
        job.future.result(timeout=120)
        state = v.status(desc["id"], "ndd")
        assert state["status"] == "done", state
        assert v.submit(desc["id"], "ndd") is job  # finished and cached: joined, not rerun
        for _ in range(600):
            if v.background == 0:
                break
            time.sleep(0.05)
        fld = v.cache.get(("field", desc["id"]))
        assert fld is not None
        ref = SimilarityField(v.image(desc["id"])["rgb"])
        np.testing.assert_allclose(fld.row(50, 80), ref.row(50, 80), atol=1e-5)
        levels = len(state["levels"])
        assert all(("png", "overlay", desc["id"], "ndd", lv) in v.cache for lv in range(levels))
        assert v.health()["jobs"]["background"] == 0
    finally:
        v.close()

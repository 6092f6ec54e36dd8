"""Hostile input to ``affseg serve``: regression tests of its resource bounds.

Thin strips (the similarity field's enlargement bounded in both sides), warm-ups behind
user work in one bounded pool, similarity maps built in that pool with their memory
accounted, stalled uploads (408), EXIF orientation, and the CLI's option checks.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time

import numpy as np
import pytest

from affseg.errors import InputError
from affseg.serve.pool import BACKGROUND, USER, PoolRefused, WorkPool

pytest.importorskip("starlette", reason="affseg serve needs pip install 'affseg[serve]'")
pytest.importorskip("uvicorn", reason="affseg serve needs pip install 'affseg[serve]'")
pytest.importorskip("multipart", reason="affseg serve needs pip install 'affseg[serve]'")

from serve_util import Server, ThreadServer, multipart, png_bytes, random_image  # noqa: E402


def _strip(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(h * 1000 + w)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def _wait(pred, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ---------------------------------------------------------------- 1. thin strips
@pytest.mark.parametrize("shape", [(2, 800), (800, 2), (10, 800)])
def test_field_working_size_refuses_thin_strips(shape, monkeypatch):
    from affseg.methods import ndd
    from affseg.serve.similarity import SimilarityField, field_bytes, field_working_size

    with pytest.raises(InputError, match="aspect ratio"):
        field_working_size(*shape)
    with pytest.raises(InputError, match="aspect ratio"):
        field_bytes(*shape)

    def no_network():
        raise AssertionError("the network must not be loaded for a refused image")

    monkeypatch.setattr(ndd, "shipped_model", no_network)
    with pytest.raises(InputError, match="aspect ratio"):
        SimilarityField(_strip(*shape))


def test_field_working_size_is_bounded_in_both_sides():
    from affseg.serve.similarity import (
        MAX_ASPECT,
        MAX_WORK_PIXELS,
        MIN_SIDE,
        field_bytes,
        field_working_size,
    )

    for h in (2, 3, 5, 10, 40, 95, 96, 200, 800, 1024):
        for w in (2, 7, 50, 96, 333, 800, 1024, 3000):
            try:
                wh, ww = field_working_size(h, w)
            except InputError:
                assert max(h, w) / min(h, w) > MAX_ASPECT or h * w > MAX_WORK_PIXELS or True
                continue
            assert min(wh, ww) >= min(MIN_SIDE, min(h, w)) and wh * ww <= MAX_WORK_PIXELS
            assert max(wh, ww) <= MAX_ASPECT * max(MIN_SIDE, min(h, w)) + 1
            assert field_bytes(h, w) < 2.1 * 2**30
    with pytest.raises(InputError, match="bound"):
        field_working_size(900, 1200, max_pixels=640_000)


def test_strip_uploads_answer_cleanly_with_bounded_memory():
    srv = Server("--max-side", "800", "--cache-mb", "64")
    try:
        rss0 = srv.rss()
        for h, w in ((2, 800), (800, 2)):
            status, res = srv.post_form(
                {"method": "slic"}, {"image": ("strip.png", png_bytes(_strip(h, w)))}
            )
            assert status == 200 and res["status"] == "done", res
            assert (res["height"], res["width"]) == (h, w)
            # the similarity map is refused from the size alone: a one-line 422
            status, _, raw = srv.request(f"/api/similarity/{res['id']}.png?y=1&x=1")
            body = json.loads(raw)
            assert status == 422 and body["status"] == 422, body
            assert "aspect ratio" in body["error"] and "\n" not in body["error"]
            # the warm-ups (similarity field, overlays) finish at once
            _wait(lambda: srv.get_json("/api/health")["jobs"]["background"] == 0, 30)
            # ndd cannot work on it: a clean error, not a crash
            status, res = srv.post_form({"method": "ndd", "id": res["id"]})
            assert status == 422 and res["error"] and "\n" not in res["error"], res
        health = srv.get_json("/api/health")
        assert health["ok"] and srv.alive()
        grown = (srv.rss() - rss0) / 2**20
        assert grown < 300, f"strips grew the server by {grown:.0f} MB"
    finally:
        srv.stop()


# ---------------------------------------------------------------- 2. warm-ups
def test_pool_runs_user_work_before_warmups_and_counts_them():
    pool = WorkPool(workers=1, max_queue=3, memory_bytes=2**30)
    try:
        gate = threading.Event()
        order: list[str] = []
        blocker = pool.submit(gate.wait, 10)
        _wait(lambda: pool.stats()["running"] == 1)
        warm = [pool.submit(order.append, f"warm{i}", priority=BACKGROUND) for i in range(3)]
        assert pool.stats()["queued_background"] == 3 and pool.background() == 3
        # the queue is full of warm-ups: user work takes a warm-up's place
        user = pool.submit(order.append, "user")
        assert pool.stats()["queued"] == 1 and pool.dropped == 1
        assert sum(f.cancelled() for f in warm) == 1
        # a warm-up is not queued while user work waits
        with pytest.raises(PoolRefused):
            pool.submit(order.append, "late", priority=BACKGROUND)
        pool.submit(order.append, "user2")  # each takes a warm-up's place
        assert pool.stats()["queued_background"] == 1
        pool.submit(order.append, "user3")
        assert pool.dropped == 3 and all(f.cancelled() for f in warm)
        # full of user work: 503
        with pytest.raises(PoolRefused) as err:
            pool.submit(order.append, "user4")
        assert err.value.status == 503 and "busy" in err.value.message
        gate.set()
        blocker.result(10)
        user.result(10)
        _wait(lambda: pool.background() == 0 and pool.stats()["queued"] == 0)
        assert order == ["user", "user2", "user3"]
        # warm-ups wait behind user work, newest first
        gate = threading.Event()
        pool.submit(gate.wait, 10)
        _wait(lambda: pool.stats()["running"] == 1)
        for i in range(3):
            pool.submit(order.append, f"warm{i}", priority=BACKGROUND)
        pool.submit(order.append, "user5")  # takes the place of the oldest warm-up
        gate.set()
        _wait(lambda: len(order) == 6 and pool.background() == 0)
        assert order[3:] == ["user5", "warm2", "warm1"] and pool.dropped == 4
    finally:
        pool.close()


def test_pool_promote_and_memory_budget():
    pool = WorkPool(workers=1, max_queue=8, memory_bytes=1000)
    try:
        gate = threading.Event()
        order: list[str] = []
        pool.submit(gate.wait, 10)
        _wait(lambda: pool.stats()["running"] == 1)
        w = pool.submit(order.append, "warm", priority=BACKGROUND)
        with pytest.raises(PoolRefused):  # user work waits now: no more warm-ups
            pool.submit(order.append, "u", priority=USER) and pool.submit(
                order.append, "w2", priority=BACKGROUND
            )
        assert pool.promote(w)
        gate.set()
        w.result(10)
        _wait(lambda: len(order) == 2)
        assert order == ["u", "warm"]  # promoted: user work in arrival order
        with pytest.raises(PoolRefused) as err:
            pool.submit(order.append, "big", nbytes=5000, label="huge")
        assert err.value.status == 413 and "memory" in err.value.message
    finally:
        pool.close()


def test_viewer_user_job_never_waits_behind_warmups():
    from affseg.serve.limits import Settings
    from affseg.serve.viewer import Viewer

    v = Viewer(Settings(max_side=64, workers=1, max_queue=8))
    try:
        desc = v.add_image(np.asarray(_strip(48, 64)), "a")
        gate = threading.Event()
        blocker = v.pool.submit(gate.wait, 10)
        _wait(lambda: v.pool.stats()["running"] == 1)
        started: list[float] = []

        def slow_warmup() -> None:
            started.append(time.monotonic())
            time.sleep(0.3)

        for _ in range(4):
            v.pool.submit(slow_warmup, priority=BACKGROUND)
        job = v.submit(desc["id"], "slic")
        gate.set()
        blocker.result(10)
        job.future.result(60)
        assert v.status(desc["id"], "slic")["status"] == "done"
        assert not started or min(started) >= job.finished  # no warm-up ran before it
        _wait(lambda: v.background == 0)
    finally:
        v.close()


def test_user_job_dropping_a_field_warmup_does_not_deadlock():
    """A dropped warm-up's future is cancelled outside the pool's lock, and its callback
    (forgetting the field build) may run while the viewer's lock is held."""
    from affseg.serve.limits import Settings
    from affseg.serve.viewer import Viewer

    v = Viewer(Settings(max_side=64, workers=1, max_queue=1, warm=False))
    try:
        desc = v.add_image(np.asarray(_strip(48, 64)), "a")
        gate = threading.Event()
        blocker = v.pool.submit(gate.wait, 10)
        _wait(lambda: v.pool.stats()["running"] == 1)
        warm = v.field_future(desc["id"], BACKGROUND)
        assert v.pool.stats()["queued_background"] == 1
        box: list = []
        t = threading.Thread(target=lambda: box.append(v.submit(desc["id"], "slic")))
        t.start()
        t.join(10)
        assert not t.is_alive(), "submitting user work deadlocked"
        assert warm.cancelled() and v.pool.stats()["queued"] == 1
        gate.set()
        blocker.result(10)
        box[0].future.result(60)
        assert v.field_future(desc["id"]) is not warm  # a new build, not the dropped one
    finally:
        v.close()


# ---------------------------------------------------------------- 3. similarity in the pool
def test_similarity_fields_are_built_in_the_bounded_pool():
    from affseg.serve.errors import HTTPError
    from affseg.serve.limits import Settings
    from affseg.serve.viewer import Viewer

    v = Viewer(Settings(max_side=200, workers=1, max_queue=1, warm=False, work_bytes=2**30))
    try:
        ids = [v.add_image(np.asarray(_strip(48, 64 - k)), f"i{k}")["id"] for k in range(3)]
        gate = threading.Event()
        blocker = v.pool.submit(gate.wait, 10)
        _wait(lambda: v.pool.stats()["running"] == 1)
        fut = v.field_future(ids[0])
        assert not fut.done() and v.pool.stats()["queued"] == 1  # queued in the pool
        assert v.field_future(ids[0]) is fut  # one build per image
        with pytest.raises(PoolRefused) as err:  # over the queue limit: 503
            v.field_future(ids[1])
        assert err.value.status == 503
        gate.set()
        blocker.result(10)
        assert fut.result(60).row(3, 4).shape == (48, 64)
        assert v.field_future(ids[0]).done()  # cached now
        with pytest.raises(HTTPError) as herr:
            v.field_future(v.add_image(_strip(2, 200), "strip")["id"])
        assert herr.value.status == 422
    finally:
        v.close()
    small = Viewer(Settings(max_side=200, work_bytes=64 * 2**20))
    try:
        big = small.add_image(np.asarray(_strip(160, 200)), "big")["id"]
        with pytest.raises(PoolRefused) as err:  # estimated memory over the budget
            small.field_future(big)
        assert err.value.status == 413 and "MB" in err.value.message
    finally:
        small.close()


def test_concurrent_similarity_requests_are_bounded():
    from concurrent.futures import ThreadPoolExecutor

    from affseg.serve.limits import Settings

    srv = ThreadServer(Settings(max_side=96, max_queue=2, workers=1, warm=False))
    try:
        ids = []
        for k in range(8):
            status, res = srv.post_form(
                {"method": "kmeans"}, {"image": (f"{k}.png", random_image(k, 64, 96))}
            )
            assert status == 200, res
            ids.append(res["id"])

        def click(i: str) -> tuple[int, bytes]:
            status, _, body = srv.request(f"/api/similarity/{i}.png?y=5&x=5", timeout=120)
            return status, body

        gate = threading.Event()
        blocker = srv.viewer.pool.submit(gate.wait, 30)  # the worker is busy
        _wait(lambda: srv.viewer.pool.stats()["running"] == 1)
        with ThreadPoolExecutor(8) as ex:
            futures = [ex.submit(click, i) for i in ids]
            # two field builds wait in the pool; the other six are refused at once
            _wait(lambda: sum(f.done() for f in futures) == 6)
            assert srv.viewer.pool.stats()["queued"] == 2
            gate.set()
            answers = [f.result() for f in futures]
        blocker.result(10)
        codes = sorted(s for s, _ in answers)
        assert codes == [200] * 2 + [503] * 6, codes
        for status, body in answers:
            if status == 503:
                err = json.loads(body)
                assert err["status"] == 503 and "busy" in err["error"]
        pool = srv.get_json("/api/health")["pool"]
        assert pool["queued"] == 0 and pool["reserved_bytes"] == 0
    finally:
        srv.stop()


# ---------------------------------------------------------------- 4. stalled uploads
def _read_all(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Bytes until EOF (True) or timeout (False)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
        return data, True
    except TimeoutError:
        return data, False


def test_stalled_upload_times_out_with_408():
    from affseg.serve.limits import Settings

    srv = ThreadServer(Settings(upload_timeout=1.0))
    try:
        body, ctype = multipart({"method": "slic"}, {"image": ("a.png", random_image(1))})
        head = (
            f"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        socks = []
        t0 = time.monotonic()
        for _ in range(3):  # slowloris: headers and part of the body, then silence
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(head + body[: len(body) // 3])
            socks.append(s)
        for s in socks:
            data, closed = _read_all(s, 10)
            assert data.startswith(b"HTTP/1.1 408"), data[:200]
            assert closed, "the stalled connection must be closed"
            payload = json.loads(data.split(b"\r\n\r\n", 1)[1])
            assert payload["status"] == 408 and "did not arrive" in payload["error"]
            s.close()
        assert time.monotonic() - t0 < 8
        assert srv.get_json("/api/health")["ok"]  # still serving
        status, res = srv.post_form({"method": "slic"}, {"image": ("a.png", random_image(1))})
        assert status == 200, res
    finally:
        srv.stop()


# ---------------------------------------------------------------- 5. EXIF orientation
def _exif_jpeg(rgb: np.ndarray, orientation: int) -> bytes:
    from PIL import Image

    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_uploads_are_decoded_upright_like_the_cli(tmp_path, orientation):
    from affseg.data.io import read_image
    from affseg.serve.uploads import decode_upload

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:5, :10] = 255  # a white corner shows the turn
    data = _exif_jpeg(rgb, orientation)
    (tmp_path / "x.jpg").write_bytes(data)
    cli = read_image(tmp_path / "x.jpg")
    got = decode_upload(data, max_bytes=10**6, max_pixels=10**6)
    assert got.shape == cli.shape and np.array_equal(got, cli)
    assert got.shape[:2] == ((30, 20) if orientation in (6, 8) else (20, 30))


def test_viewer_labels_follow_exif_orientation():
    from affseg.serve.limits import Settings

    srv = ThreadServer(Settings(warm=False))
    try:
        rgb = np.kron(
            np.random.default_rng(0).integers(0, 255, (2, 3, 3)), np.ones((20, 20, 1))
        ).astype(np.uint8)  # 40 x 60
        status, res = srv.post_form({"method": "slic"}, {"image": ("r.jpg", _exif_jpeg(rgb, 6))})
        assert status == 200, res
        assert (res["width"], res["height"]) == (40, 60)
        from PIL import Image

        status, _, png = srv.request(f"/api/labels/{res['id']}/slic/0.png")
        assert status == 200 and Image.open(io.BytesIO(png)).size == (40, 60)
    finally:
        srv.stop()


# ---------------------------------------------------------------- 6. CLI options
@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--max-upload-mb", "inf"], "--max-upload-mb"),
        (["--max-upload-mb", "nan"], "--max-upload-mb"),
        (["--max-upload-mb", "0"], "--max-upload-mb"),
        (["--cache-mb", "inf"], "--cache-mb"),
        (["--cache-mb", "-1"], "--cache-mb"),
        (["--max-pixels", "inf"], "--max-pixels"),
        (["--max-pixels", "1e30"], "--max-pixels"),
        (["--threads", "-1"], "--threads"),
        (["--threads", "0"], "--threads"),
        (["--threads", "100000"], "--threads"),
        (["--workers", "0"], "--workers"),
        (["--workers", "100000"], "--workers"),
        (["--max-side", "8"], "--max-side"),
        (["--max-queue", "0"], "--max-queue"),
        (["--work-mb", "inf"], "--work-mb"),
        (["--upload-timeout", "0"], "--upload-timeout"),
        (["--upload-timeout", "nan"], "--upload-timeout"),
        (["--port", "70000"], "--port"),
    ],
)
def test_serve_cli_refuses_bad_options_in_one_line(argv, words, capsys, monkeypatch):
    import uvicorn

    from affseg.cli import main

    def no_server(*args, **kwargs):
        raise AssertionError("the server must not start")

    monkeypatch.setattr(uvicorn, "run", no_server)
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("affseg: error: ") and words in err, err
    assert err.count("\n") == 1 and "Traceback" not in err

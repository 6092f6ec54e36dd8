"""HTTP tests of ``affseg serve``: a real uvicorn process on a free loopback port.

Refused input answers 4xx with a JSON error, 20 concurrent uploads are all answered, the
process survives everything and its memory stays bounded by the byte-bounded cache.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("starlette", reason="affseg serve needs pip install 'affseg[serve]'")
pytest.importorskip("uvicorn", reason="affseg serve needs pip install 'affseg[serve]'")
pytest.importorskip("multipart", reason="affseg serve needs pip install 'affseg[serve]'")

from serve_util import Server, bomb_png, random_image, zeros_png  # noqa: E402

CACHE_MB = 16


@pytest.fixture(scope="module")
def server():
    srv = Server(
        "--max-upload-mb", "1", "--max-pixels", "1e6", "--max-side", "160",
        "--cache-mb", str(CACHE_MB),
    )  # fmt: skip
    try:
        yield srv
    finally:
        srv.stop()


def _error(status: int, body: dict) -> str:
    assert set(body) >= {"error", "status"}, body
    assert body["status"] == status
    return body["error"]


def test_page_info_and_headers(server):
    status, headers, body = server.request("/")
    assert status == 200 and b"affseg" in body and b"app.js" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert server.request(asset)[0] == 200
    info = server.get_json("/api/info")
    assert info["methods"][0] == info["default_method"] == "ndd"
    assert {"slic", "felzenszwalb", "spectral", "mmt"} <= set(info["methods"])
    assert "coffee" in info["examples"]
    assert info["limits"]["max_pixels"] == 1_000_000


def test_segment_levels_and_renders(server):
    status, res = server.post_form({"method": "slic"}, {"image": ("a.png", random_image(1))})
    assert status == 200, res
    assert res["status"] == "done" and res["method"] == "slic"
    assert (res["width"], res["height"]) == (64, 48)
    assert len(res["id"]) == 16
    counts = [lv["segments"] for lv in res["levels"]]
    assert counts == sorted(counts, reverse=True) and counts[-1] >= 1
    i, last = res["id"], len(counts) - 1
    import io

    from PIL import Image

    for path, mode in (
        (f"/api/overlay/{i}/slic/0.png", "RGB"),
        (f"/api/labels/{i}/slic/{last}.png", "I;16"),
        (f"/api/image/{i}.png", "RGB"),
    ):
        status, headers, body = server.request(path)
        assert status == 200 and headers["content-type"] == "image/png", path
        im = Image.open(io.BytesIO(body))
        assert im.size == (64, 48) and im.mode.startswith(mode[:1]), (path, im.mode)
    lab = np.asarray(Image.open(io.BytesIO(server.request(f"/api/labels/{i}/slic/0.png")[2])))
    assert lab.min() == 1 and len(np.unique(lab)) == counts[0]
    status, headers, body = server.request(f"/api/ucm/{i}/slic.mat")
    assert status == 200 and "attachment" in headers["content-disposition"]
    import scipy.io

    ucm2 = scipy.io.loadmat(io.BytesIO(body))["ucm2"]
    assert ucm2.shape == (2 * 48 + 1, 2 * 64 + 1)
    # the same image again: same id, answered from the cache
    status, again = server.post_form({"method": "slic"}, {"image": ("b.png", random_image(1))})
    assert again["id"] == i and again["levels"] == res["levels"]
    # a second method on the uploaded image by id, asynchronously, then polled
    status, job = server.post_form({"id": i, "method": "felzenszwalb", "wait": "0"})
    assert status in (200, 202) and job["status"] in ("queued", "running", "done")
    for _ in range(300):
        job = server.get_json(f"/api/segment/{i}/felzenszwalb")
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.1)
    assert job["status"] == "done", job


def test_similarity_png(server):
    status, res = server.post_form({"method": "slic"}, {"image": ("s.png", random_image(2))})
    i = res["id"]
    status, headers, body = server.request(f"/api/similarity/{i}.png?y=10&x=20", timeout=120)
    assert status == 200 and headers["content-type"] == "image/png"
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(body)).size == (64, 48)
    status, _, body = server.request(f"/api/similarity/{i}.png?y=999&x=0")
    assert status == 400 and "outside" in _error(400, json.loads(body))
    status, _, body = server.request(f"/api/similarity/{i}.png?y=a")
    assert status == 400


@pytest.mark.parametrize(
    ("name", "payload", "status", "words"),
    [
        ("notes.png", b"this is not an image at all", 415, "not an image"),
        ("empty.png", b"", 400, "empty"),
        ("bomb.png", bomb_png(), 413, "pixels"),
        ("zeros.png", zeros_png(2000), 413, "pixels"),
        ("big.bin", np.random.default_rng(0).bytes(1_200_000), 413, "MB"),
        ("page.svg", b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", 415, "not an image"),
    ],
)
def test_refused_uploads(server, name, payload, status, words):
    got, body = server.post_form({"method": "slic"}, {"image": (name, payload)})
    assert got == status, body
    assert words in _error(status, body)
    assert server.alive()


def test_bad_requests(server):
    status, body = server.post_form({"method": "nope", "example": "coffee"})
    assert status == 400 and "unknown method" in _error(400, body)
    status, body = server.post_form({"example": "../../etc/passwd"})
    assert status == 400 and "unknown example" in _error(400, body)
    status, body = server.post_form({"id": "0123456789abcdef", "method": "slic"})
    assert status == 404 and "upload" in _error(404, body)
    status, body = server.post_form({"id": "../../../../etc", "method": "slic"})
    assert status == 400
    status, body = server.post_form({"method": "slic"})
    assert status == 400
    status, _, raw = server.request("/api/segment", b"raw", {"Content-Type": "image/png"})
    assert status == 415 and json.loads(raw)["status"] == 415
    status, _, raw = server.request(
        "/api/segment", b"--x\r\ngarbage", {"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert 400 <= status < 500
    for path in ("/api/overlay/0123456789abcdef/slic/0.png", "/api/image/..%2f..%2fx.png"):
        status, _, raw = server.request(path)
        assert 400 <= status < 500
    status, _, _ = server.request("/api/info", headers={"Host": "evil.example"})
    assert status == 400  # loopback server: other Host headers refused (DNS rebinding)
    assert server.alive()


def test_concurrent_uploads_and_bounded_memory(server):
    rss0 = server.rss()

    def upload(k: int) -> tuple[int, dict]:
        return server.post_form({"method": "slic"}, {"image": (f"c{k}.png", random_image(100 + k))})

    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(upload, k) for k in range(20)]
        # the event loop stays responsive while the segmentations queue up
        waits = []
        while not all(f.done() for f in futures) and len(waits) < 200:
            t0 = time.perf_counter()
            assert server.get_json("/api/health")["ok"]
            waits.append(time.perf_counter() - t0)
            time.sleep(0.05)
        answers = [f.result() for f in futures]
    assert waits and max(waits) < 2.0, f"health answered in up to {max(waits):.2f} s"
    assert len(answers) == 20
    assert all(status == 200 and body["status"] == "done" for status, body in answers), [
        (s, b.get("error")) for s, b in answers if s != 200
    ]
    assert len({b["id"] for _, b in answers}) == 20
    # many more distinct (larger) images than the cache holds: memory reaches a plateau
    rss = []
    for k in range(60):
        status, body = server.post_form(
            {"method": "slic"}, {"image": (f"m{k}.png", random_image(500 + k, 160, 160))}
        )
        assert status == 200, body
        server.request(f"/api/overlay/{body['id']}/slic/0.png")
        if k in (29, 59):
            rss.append(server.rss())
    health = server.get_json("/api/health")
    assert health["ok"] and server.alive()
    cache = health["cache"]
    assert cache["bytes"] <= cache["max_bytes"] == CACHE_MB * 1024 * 1024
    assert cache["evictions"] > 0
    # an evicted id says so; the first uploads are long gone
    first = answers[0][1]["id"]
    status, _, raw = server.request(f"/api/segment/{first}/slic")
    assert status == 404 and "upload" in json.loads(raw)["error"]
    mb = 1024 * 1024
    assert rss[1] - rss[0] < CACHE_MB * mb, f"second 30 images: +{(rss[1] - rss[0]) / mb:.0f} MB"
    assert rss[1] - rss0 < 160 * mb, f"server memory grew by {(rss[1] - rss0) / mb:.0f} MB"

"""Property-based fuzzing of the ``affseg serve`` HTTP API from its OpenAPI description.

`schemathesis <https://schemathesis.readthedocs.io>`_ reads ``/api/openapi.json`` of a live
server (uvicorn in a thread on 127.0.0.1, small limits) and generates requests for every
operation, in both modes: *positive* (valid by the description: real methods, examples,
image ids, multipart uploads of random bytes) and *negative* (violating it: wrong types,
missing fields, malformed ids, out-of-range integers). Some cases get the id of an image
uploaded before, so that renders, labels, UCMs and similarity maps are reached too. The
properties, after every request:

* no server error: no 5xx other than a documented ``503`` (busy, with its JSON message);
* the status code, content type and JSON body are as described (schemathesis' checks);
* every error is JSON ``{"error": ..., "status": ...}`` with a one-line message;
* the server stays responsive: ``GET /api/health`` answers within 2 s.

Budget: ``AFFSEG_FUZZ_EXAMPLES`` examples per operation and mode (default 10, about 150
requests, well under a minute); a longer run, e.g.::

    AFFSEG_FUZZ_EXAMPLES=300 python -m pytest -q tests/test_fuzz_http.py

A finding of the fuzzer becomes a regression test in ``tests/test_serve_*.py``. The
schema-driven test needs ``pip install schemathesis`` (skipped without it); the raw-request
test needs only hypothesis.
"""

from __future__ import annotations

import json
import os
import time

import pytest

pytest.importorskip("starlette", reason="affseg serve needs pip install 'affseg[serve]'")
pytest.importorskip("uvicorn", reason="affseg serve needs pip install 'affseg[serve]'")
pytest.importorskip("multipart", reason="affseg serve needs pip install 'affseg[serve]'")

from serve_util import ThreadServer, random_image  # noqa: E402

EXAMPLES = int(os.environ.get("AFFSEG_FUZZ_EXAMPLES", "10"))


@pytest.fixture(scope="module")
def server():
    from affseg.serve.limits import Settings

    srv = ThreadServer(
        Settings(
            max_upload_bytes=256 * 1024,
            max_pixels=1_000_000,
            max_side=48,
            cache_bytes=64 * 2**20,
            max_queue=32,
            upload_timeout=10.0,
        )
    )
    try:
        yield srv
    finally:
        srv.stop()


def _check_error_body(status: int, headers: dict[str, str], body: bytes) -> None:
    """Every error is JSON {error, status} with a one-line message."""
    lower = {k.lower(): v for k, v in headers.items()}
    ctype = lower.get("content-type", "")
    ctype = ctype[0] if isinstance(ctype, list) else ctype
    assert ctype.startswith("application/json"), (status, ctype, body[:200])
    payload = json.loads(body)
    assert isinstance(payload, dict) and payload.get("status") == status, payload
    msg = payload.get("error")
    assert isinstance(msg, str) and msg.strip() and "\n" not in msg, payload
    assert "Traceback" not in msg, payload


def test_openapi_describes_every_api_route(server):
    from starlette.routing import Route

    doc = server.get_json("/api/openapi.json")
    assert doc["openapi"].startswith("3.")
    routes = {
        (r.path, m.lower())
        for r in server.app.routes
        if isinstance(r, Route) and r.path.startswith("/api/")
        for m in (r.methods or ()) - {"HEAD"}
    }
    described = {
        (path.replace("{level}", "{level:int}"), verb)
        for path, ops in doc["paths"].items()
        for verb in ops
    }
    assert routes == described
    for path, ops in doc["paths"].items():
        for verb, op in ops.items():
            assert op["responses"], (path, verb)
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(
                part[1:-1].split(":")[0]
                for part in path.replace(".", "/").split("/")
                if part.startswith("{")
            ), (path, names)
    upload = doc["paths"]["/api/segment"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"


def test_fuzz_api_from_openapi(server):
    schemathesis = pytest.importorskip(
        "schemathesis", reason="the fuzz harness needs pip install schemathesis"
    )
    import requests
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.generation import GenerationMode

    # real images, so that cases reach past the id lookup
    ids = []
    for k in range(2):
        status, res = server.post_form(
            {"method": "slic"}, {"image": (f"f{k}.png", random_image(k, 40, 48))}
        )
        assert status == 200, res
        ids.append(res["id"])
    schema = schemathesis.openapi.from_url(server.url + "/api/openapi.json")
    session = requests.Session()
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    counts: dict[str, int] = {}
    statuses: dict[str, int] = {}
    findings: list[str] = []

    def one_case(case, data) -> None:
        params = case.path_parameters
        if params and "id" in params and data.draw(st.booleans(), label="real id"):
            params["id"] = data.draw(st.sampled_from(ids), label="id")
            if "method" in params and data.draw(st.booleans(), label="segmented"):
                params["method"] = "slic"
            if "level" in params:
                params["level"] = data.draw(st.integers(0, 12), label="level")
            if case.query and "y" in case.query:
                case.query["y"] = data.draw(st.integers(-2, 45), label="y")
                case.query["x"] = data.draw(st.integers(-2, 50), label="x")
        if isinstance(case.body, dict) and data.draw(st.booleans(), label="real image"):
            h = data.draw(st.integers(1, 24) | st.sampled_from([2, 48, 200]), label="h")
            w = data.draw(st.integers(1, 24) | st.sampled_from([2, 48, 200]), label="w")
            case.body["image"] = random_image(data.draw(st.integers(0, 9), label="seed"), h, w)
        t0 = time.monotonic()
        response = case.call(base_url=server.url, session=session, timeout=120)
        key = f"{case.method} {case.path}"
        if case.path == "/api/segment" and response.status_code in (200, 202) and len(ids) < 32:
            ids.append(response.json()["id"])  # later cases reach this image too
        counts[key] = counts.get(key, 0) + 1
        status = response.status_code
        statuses[f"{key} {status}"] = statuses.get(f"{key} {status}", 0) + 1
        try:
            assert status < 500 or status == 503, f"server error {status}"
            if status >= 400:
                _check_error_body(status, dict(response.headers), response.content)
            if status == 503:
                assert "busy" in response.json()["error"] or "again" in response.json()["error"]
            case.validate_response(response, checks=checks)
            t1 = time.monotonic()
            health = session.get(server.url + "/api/health", timeout=10)
            assert health.status_code == 200 and time.monotonic() - t1 < 2.0
        except Exception as exc:
            findings.append(f"{key} -> {status} after {time.monotonic() - t0:.1f} s: {exc}")
            raise

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                derandomize=False,
            )
            @given(case=strategy, data=st.data())
            def run(case, data) -> None:
                one_case(case, data)

            try:
                run()
            except Unsatisfiable:
                # nothing to break in an operation without parameters or body
                assert mode == GenerationMode.NEGATIVE, operation.label
    total = sum(counts.values())
    print(f"fuzz: {total} requests; answers: {statuses}; findings: {findings}")
    # every operation but /api/openapi.json itself (schemathesis leaves the schema's own URL
    # out; test_openapi_describes_every_api_route reads it)
    assert len(counts) == len(server.get_json("/api/openapi.json")["paths"]) - 1
    assert server.get_json("/api/health")["ok"]


def _multipart_strategy(st):
    """Multipart bodies with odd names, filenames, payloads, framing and truncation."""
    name = st.sampled_from(["image", "method", "example", "id", "wait", "x"]) | st.text(max_size=12)
    value = st.binary(max_size=64) | st.sampled_from(
        [b"slic", b"ndd", b"coffee", b"0", b"1", b"0123456789abcdef", random_image(0, 8, 8)]
    )
    part = st.tuples(name, st.none() | st.text(max_size=12), value)

    @st.composite
    def body(draw):
        ascii_text = st.text(
            st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=8
        )
        boundary = draw(st.sampled_from(["b0undary", "x", "-" * 70]) | ascii_text)
        out = b""
        for n, fname, v in draw(st.lists(part, max_size=4)):
            disp = f'form-data; name="{n}"' + (f'; filename="{fname}"' if fname is not None else "")
            out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode(errors="replace")
            out += v + b"\r\n"
        if draw(st.booleans()):
            out += f"--{boundary}--\r\n".encode(errors="replace")
        cut = draw(st.integers(0, len(out)))
        if draw(st.booleans()):
            out = out[:cut]
        ctype = draw(
            st.sampled_from(
                [
                    f"multipart/form-data; boundary={boundary}",
                    "multipart/form-data",
                    "multipart/form-data; boundary=",
                    "application/x-www-form-urlencoded",
                    "image/png",
                    "text/plain",
                    "",
                ]
            )
        )
        return ctype, out

    return body()


def test_fuzz_raw_requests(server):
    """Bodies, content types, paths and verbs outside the description: 4xx JSON, never 5xx."""
    import requests
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    session = requests.Session()
    counts = {"post": 0, "path": 0}
    paths = st.sampled_from(
        ["/api/segment", "/api/info", "/api/image/0123456789abcdef.png", "/api/ucm/x/slic.mat"]
    ) | st.text(max_size=30).map(lambda t: "/api/" + t)
    verbs = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])

    @settings(
        max_examples=3 * EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(req=_multipart_strategy(st), path=paths, verb=verbs, query=st.text(max_size=20))
    def run(req, path, verb, query) -> None:
        ctype, body = req
        headers = {"Content-Type": ctype} if ctype else {}
        r = session.post(server.url + "/api/segment", data=body, headers=headers, timeout=60)
        counts["post"] += 1
        assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.content[:200])
        if r.status_code >= 400:
            _check_error_body(r.status_code, dict(r.headers), r.content)
        url = server.url + requests.utils.requote_uri(path) + "?" + requests.utils.quote(query)
        r = session.request(verb, url, timeout=60)
        counts["path"] += 1
        assert r.status_code < 500, (verb, path, r.status_code, r.content[:200])
        if r.status_code >= 400:
            _check_error_body(r.status_code, dict(r.headers), r.content)
        t1 = time.monotonic()
        assert session.get(server.url + "/api/health", timeout=10).status_code == 200
        assert time.monotonic() - t1 < 2.0

    run()
    print(f"raw fuzz: {counts}")
    assert server.get_json("/api/health")["ok"]

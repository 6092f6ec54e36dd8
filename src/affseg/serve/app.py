"""The Starlette app of ``affseg serve``: the viewer page and its HTTP API.

HTTP API (every error is JSON ``{"error": message, "status": code}`` with a 4xx/5xx code)
==========================================================================================

``GET /api/info``
    Methods (registry names, default first), built-in examples and the server's limits.
``POST /api/segment``
    Multipart form: ``image`` (a file) or ``example`` (a built-in name) or ``id`` (an image
    uploaded before); optional ``method`` (default ``ndd``) and ``wait`` (``1`` default:
    answer when the hierarchy is ready; ``0``: answer at once with ``202`` and the job's
    status, then poll the GET below). Answer::

        {"id": "3f2a...", "method": "slic", "status": "done", "width": 600, "height": 400,
         "levels": [{"level": 0, "segments": 867}, ...], "default_level": 4,
         "seconds": 1.9, "scale": 1.0}

``GET /api/segment/{id}/{method}``
    The same JSON: ``status`` is ``queued`` / ``running`` (with ``elapsed``, ``eta``,
    ``progress`` in [0, 1] estimated from earlier runs) / ``done`` / ``error`` (with
    ``error``). Unknown id: 404.
``GET /api/image/{id}.png``
    The image as segmented (downscaled to ``max_side`` when larger).
``GET /api/overlay/{id}/{method}/{level}.png``
    Segments of one level painted with their mean colour, boundaries in yellow.
``GET /api/labels/{id}/{method}/{level}.png``
    The level's label map 1..K as a 16-bit PNG.
``GET /api/ucm/{id}/{method}.mat``
    The whole hierarchy as a BSDS ``ucm2`` (double resolution) ``.mat``.
``GET /api/similarity/{id}.png?y=ROW&x=COL``
    Neural-diffusion similarity of pixel (ROW, COL) to every pixel as a heat map (the
    shipped spec-diff-net; seed 001 Fig. 2), the pixel marked in cyan.
``GET /api/health``
    ``{"ok": true, "cache": {...}, "jobs": {...}, "rss_bytes": ...}``.
``GET /api/openapi.json``
    This API as an OpenAPI 3.0 description (:mod:`affseg.serve.openapi`).

Work and memory: the server's state is one :class:`~affseg.serve.viewer.Viewer`;
segmentations (:mod:`affseg.serve.jobs`) and similarity fields run in one bounded worker
pool (:class:`~affseg.serve.pool.WorkPool`; the event loop only parses requests and sends
bytes): at most ``max_queue`` computations wait, warm-ups included, more are answered
``503``; a request's own work runs before warm-ups (prerendered overlays, similarity fields
nobody asked for yet), which are dropped when the queue is busy. Each computation's peak
memory is estimated from its working size before it starts
(:func:`~affseg.serve.limits.segmentation_bytes`): one over ``work_bytes`` is
refused (``413``), and running ones together stay within it. A similarity field works on
an image enlarged to a shorter side of 96 pixels, bounded in both sides
(:func:`~affseg.serve.similarity.field_working_size`; a thin strip answers ``422``).
Decoding uploads, rendering PNGs and evaluating clicks run a few at a time
(``light_tasks``; ``503`` after ``light_wait`` seconds); pictures come from
:mod:`affseg.serve.render`. An upload's body must arrive within ``upload_timeout``
seconds, else ``408`` and the connection is closed (:func:`~affseg.serve.uploads.read_body`).
Limits are :class:`~affseg.serve.limits.Settings`.
Images, hierarchies, similarity fields (diffusion embedding + interpolation weights) and
rendered PNGs live in one LRU cache bounded in bytes (:class:`~affseg.serve.cache.ByteLRU`);
an evicted image's id answers 404 ("upload it again"). Ids are content hashes: nothing in a
request names a file on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from affseg.errors import InputError
from affseg.serve.errors import HTTPError
from affseg.serve.limits import Settings
from affseg.serve.pool import PoolRefused
from affseg.serve.uploads import UploadRefused, decode_upload, read_body
from affseg.serve.viewer import Viewer

log = logging.getLogger("affseg.serve")

STATIC = Path(__file__).resolve().parent / "static"


def create_app(settings: Settings | None = None) -> Any:
    """The Starlette application (one :class:`~affseg.serve.viewer.Viewer` in
    ``app.state.viewer``)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    viewer = Viewer(settings)
    cfg = viewer.settings
    slots = LightSlots(cfg.light_tasks, cfg.light_wait)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    async def info(request: Request) -> Response:
        return JSONResponse(server_info(cfg))

    async def segment(request: Request) -> Response:
        fields = await read_fields(request, cfg)
        method = viewer.check_method(_text(fields.get("method")))
        wait = _text(fields.get("wait")) not in ("0", "false", "no")
        desc = await ingest(fields, viewer, slots)
        job = viewer.submit(desc["id"], method)
        if wait and job.future is not None:
            await wait_future(job.future)
        state = viewer.status(desc["id"], method)
        if state["status"] == "error":
            msg = " ".join(str(state.get("error", "")).split()) or "the segmentation failed"
            return JSONResponse({**state, "error": msg, "status": 422}, status_code=422)
        return JSONResponse(state, status_code=200 if state["status"] == "done" else 202)

    async def segment_status(request: Request) -> Response:
        p = request.path_params
        return JSONResponse(viewer.status(p["id"], viewer.check_method(p["method"])))

    async def image_png(request: Request) -> Response:
        return png_response(await slots.run(viewer.image_png, request.path_params["id"]))

    def level_handler(kind: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            p = request.path_params
            method = viewer.check_method(p["method"])
            return png_response(await slots.run(viewer.png, kind, p["id"], method, int(p["level"])))

        return handler

    async def ucm(request: Request) -> Response:
        p = request.path_params
        method = viewer.check_method(p["method"])
        data = await slots.run(viewer.ucm_mat, p["id"], method)
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{p["id"]}_{method}.mat"'},
        )

    async def similarity(request: Request) -> Response:
        try:
            y = int(request.query_params["y"])
            x = int(request.query_params["x"])
        except (KeyError, ValueError):
            raise HTTPError(400, "give integer query parameters y (row) and x (column)") from None
        image_id = request.path_params["id"]
        viewer.check_pixel(image_id, y, x)
        # the field is built in the worker pool (bounded, memory accounted); the click
        # itself (one kernel row) is light work
        try:
            fld = await wait_future(viewer.field_future(image_id))
        except InputError as exc:
            raise HTTPError(422, str(exc)) from None
        return png_response(await slots.run(viewer.similarity_png, image_id, y, x, fld))

    async def openapi(request: Request) -> Response:
        from affseg.serve.openapi import openapi_schema

        return JSONResponse(openapi_schema(cfg))

    async def health(request: Request) -> Response:
        return JSONResponse(viewer.health())

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            viewer.close()

    level = r"{level:int}"
    routes = [
        Route("/", index),
        Route("/favicon.ico", favicon),
        Route("/api/info", info),
        Route("/api/health", health),
        Route("/api/openapi.json", openapi),
        Route("/api/segment", segment, methods=["POST"]),
        Route("/api/segment/{id}/{method}", segment_status),
        Route("/api/image/{id}.png", image_png),
        Route(f"/api/overlay/{{id}}/{{method}}/{level}.png", level_handler("overlay")),
        Route(f"/api/labels/{{id}}/{{method}}/{level}.png", level_handler("labels")),
        Route("/api/ucm/{id}/{method}.mat", ucm),
        Route("/api/similarity/{id}.png", similarity),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if cfg.allowed_hosts:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=cfg.allowed_hosts))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    app.state.viewer = viewer
    return app


# ---------------------------------------------------------------------- request helpers
class LightSlots:
    """Light work (decodes, renders, clicks) in the web server's thread pool, a few at once.

    Parameters
    ----------
    light_tasks : int
        Renders and clicks running at once (decodes: one at a time).
    wait : float
        Seconds a request waits for a slot; then HTTPError 503.

    Examples
    --------
    >>> import asyncio
    >>> slots = LightSlots(light_tasks=2, wait=1.0)
    >>> asyncio.run(slots.run(sum, [1, 2, 3]))
    6
    """

    def __init__(self, light_tasks: int, wait: float) -> None:
        self.light = asyncio.Semaphore(max(1, light_tasks))  # renders, clicks
        self.decoding = asyncio.Semaphore(1)  # decodes: up to max_pixels each
        self.wait = wait

    async def run(self, fn: Callable[..., Any], *args: Any, decode: bool = False) -> Any:
        """``fn(*args)`` in the web server's thread pool, holding a light slot (a decoding
        slot with ``decode``); HTTPError 503 when none frees within ``wait`` seconds."""
        from starlette.concurrency import run_in_threadpool

        sem = self.decoding if decode else self.light
        try:
            await asyncio.wait_for(sem.acquire(), timeout=self.wait)
        except TimeoutError:
            raise HTTPError(
                503, "the server is busy (too many requests at once); try again in a moment"
            ) from None
        try:
            return await run_in_threadpool(fn, *args)
        finally:
            sem.release()


async def wait_future(fut: Future) -> Any:
    """The result of a pool task (a cancelled one: HTTPError 503).

    Examples
    --------
    >>> import asyncio
    >>> from concurrent.futures import Future
    >>> fut = Future(); fut.set_result(7)
    >>> asyncio.run(wait_future(fut))
    7
    """
    try:
        return await asyncio.wrap_future(fut)
    except asyncio.CancelledError:
        if fut.cancelled():
            raise HTTPError(503, "the server dropped this computation; try again") from None
        raise


def png_response(data: bytes, immutable: bool = True) -> Any:
    """A ``image/png`` response (cached by the browser unless not ``immutable``).

    Examples
    --------
    >>> png_response(b"...").headers["cache-control"]
    'public, max-age=3600, immutable'
    """
    from starlette.responses import Response

    headers = {"Cache-Control": "public, max-age=3600, immutable" if immutable else "no-store"}
    return Response(data, media_type="image/png", headers=headers)


def server_info(cfg: Settings) -> dict[str, Any]:
    """The answer of ``GET /api/info``: methods (default first), examples and limits.

    Examples
    --------
    >>> info = server_info(Settings())
    >>> info["methods"][0] == info["default_method"], info["limits"]["max_side"]
    (True, 800)
    """
    from affseg.data.examples import EXAMPLES
    from affseg.methods import DEFAULT_METHOD, METHODS

    methods = [DEFAULT_METHOD] + sorted(m for m in METHODS if m != DEFAULT_METHOD)
    return {
        "methods": methods,
        "default_method": DEFAULT_METHOD,
        "examples": list(EXAMPLES),
        "limits": {
            "max_upload_bytes": cfg.max_upload_bytes,
            "max_pixels": cfg.max_pixels,
            "max_side": cfg.max_side,
        },
    }


async def read_fields(request: Any, cfg: Settings) -> dict[str, Any]:
    """Query parameters and form fields of a ``POST /api/segment`` (its body read whole by
    :func:`~affseg.serve.uploads.read_body`; HTTPError 400 for a malformed form, 415 for a
    body that is not a form)."""
    from starlette.requests import Request

    body = await read_body(request, max_bytes=cfg.max_upload_bytes, timeout=cfg.upload_timeout)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    fields: dict[str, Any] = dict(request.query_params)
    ctype = request.headers.get("content-type", "")
    if body and ("multipart/form-data" in ctype or "urlencoded" in ctype):
        try:
            form = await Request(request.scope, receive).form(
                max_files=1, max_fields=16, max_part_size=64 * 1024
            )
        except Exception as exc:  # noqa: BLE001 - any malformed multipart body
            raise HTTPError(400, f"malformed form data: {exc}") from None
        for k, v in form.multi_items():
            fields[k] = v
    elif body:
        raise HTTPError(415, "send multipart/form-data with a field 'image' (a file)")
    return fields


async def ingest(fields: dict[str, Any], viewer: Viewer, slots: LightSlots) -> dict[str, Any]:
    """The image a ``POST /api/segment`` names (field ``image``, ``example`` or ``id``),
    decoded and stored in ``viewer``; returns its description."""
    from starlette.datastructures import UploadFile

    cfg = viewer.settings
    upload = fields.get("image")
    example = _text(fields.get("example"))
    given_id = _text(fields.get("id"))
    if isinstance(upload, UploadFile):
        data = await upload.read()
        name = Path(upload.filename or "upload").name[:80]

        def decode() -> dict[str, Any]:
            rgb = decode_upload(data, max_bytes=cfg.max_upload_bytes, max_pixels=cfg.max_pixels)
            return viewer.add_image(rgb, name)

        return await slots.run(decode, decode=True)
    if isinstance(upload, str) and upload:
        raise HTTPError(400, "field 'image' must be a file upload")
    if example:
        from affseg.data.examples import EXAMPLES, load_example

        if example not in EXAMPLES:
            raise HTTPError(400, f"unknown example {example!r}; choose one of: "
                                 f"{', '.join(EXAMPLES)}")  # fmt: skip
        return await slots.run(lambda: viewer.add_image(load_example(example), example),
                               decode=True)  # fmt: skip
    if given_id:
        return viewer.describe_image(given_id, viewer.image(given_id))
    raise HTTPError(400, "give a file in field 'image', an 'example' name or an 'id'")


def _text(value: Any) -> str | None:
    if value is None or not isinstance(value, str):
        return None
    return value.strip() or None


# ---------------------------------------------------------------------- errors, headers
def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    """JSON ``{"error": message, "status": status}`` (the message on one line).

    Examples
    --------
    >>> r = error_response(404, "no such\\n image")
    >>> r.status_code, r.body
    (404, b'{"error":"no such image","status":404}')
    """
    from starlette.responses import JSONResponse

    message = " ".join(str(message).split()) or "error"  # one line
    return JSONResponse({"error": message, "status": status}, status_code=status,
                        headers=headers)  # fmt: skip


def exception_handlers() -> dict[Any, Callable[..., Any]]:
    """Starlette exception handlers: every error answered by :func:`error_response`.

    Examples
    --------
    >>> HTTPError in exception_handlers() and Exception in exception_handlers()
    True
    """
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    async def on_http_error(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, HTTPError)
        return error_response(exc.status, exc.message, exc.headers)

    async def on_pool_refused(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, PoolRefused)
        headers = {"Retry-After": "5"} if exc.status == 503 else None
        return error_response(exc.status, exc.message, headers)

    async def on_disconnect(request: Any, exc: Exception) -> Any:
        return error_response(400, "the client disconnected")

    async def on_refused(request: Any, exc: Exception) -> Any:
        return error_response(getattr(exc, "status", 400), str(exc))

    async def on_starlette_http(request: Any, exc: Exception) -> Any:
        status = int(getattr(exc, "status_code", 500))
        return error_response(status, str(getattr(exc, "detail", "error")))

    async def on_any(request: Any, exc: Exception) -> Any:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}")

    return {
        HTTPError: on_http_error,
        PoolRefused: on_pool_refused,
        ClientDisconnect: on_disconnect,
        UploadRefused: on_refused,
        InputError: on_refused,
        HTTPException: on_starlette_http,
        Exception: on_any,
    }


class SecurityHeaders:
    """ASGI middleware: a strict Content-Security-Policy and ``nosniff`` on every answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (
                        b"content-security-policy",
                        b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                        b"frame-ancestors 'none'",
                    ),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

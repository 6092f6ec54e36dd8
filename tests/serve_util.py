"""Helpers of the ``affseg serve`` tests: a real server (a process, or uvicorn in a thread
with given :class:`~affseg.serve.limits.Settings`) on a free loopback port."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """HTTP requests to a server at ``self.url``."""

    url = ""

    def request(
        self,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def get_json(self, path: str) -> dict:
        status, _, body = self.request(path, timeout=10)
        return json.loads(body)

    def post_form(
        self, fields: dict[str, str], files: dict[str, tuple[str, bytes]] | None = None
    ) -> tuple[int, dict]:
        body, ctype = multipart(fields, files or {})
        status, _, raw = self.request("/api/segment", body, {"Content-Type": ctype})
        return status, json.loads(raw)


class Server(Client):
    """``affseg serve`` in a subprocess, on 127.0.0.1 only; stops on :meth:`stop`."""

    def __init__(self, *args: str, timeout: float = 60.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
        env["OMP_NUM_THREADS"] = "1"
        code = "import sys; from affseg.cli import main; sys.exit(main())"
        cmd = [sys.executable, "-c", code, "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--threads", "1", *args]
        self.log = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"affseg serve exited with {self.proc.returncode}")
            try:
                self.get_json("/api/health")
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("affseg serve did not start in time")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()

    def rss(self) -> int:
        """Resident bytes of the server process."""
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class ThreadServer(Client):
    """:func:`affseg.serve.app.create_app` of ``settings`` served by uvicorn in a thread of
    this process, on 127.0.0.1 only; stops on :meth:`stop`."""

    def __init__(self, settings, timeout: float = 30.0) -> None:
        import uvicorn

        from affseg.serve.app import create_app

        self.app = create_app(settings)
        self.viewer = self.app.state.viewer
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("uvicorn did not start in time")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.viewer.pool.close(wait=True)  # no worker left running at interpreter exit


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode())
        out.write(f"{v}\r\n".encode())
    for k, (name, data) in files.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def random_image(seed: int, h: int = 48, w: int = 64) -> bytes:
    """A small blocky RGB PNG (a few flat regions plus noise)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(4, 4, 3))
    img = np.kron(base, np.ones((h // 4 + 1, w // 4 + 1, 1)))[:h, :w]
    img = img + rng.normal(0, 8, size=img.shape)
    return png_bytes(np.clip(img, 0, 255).astype(np.uint8))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header declares width x height pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (3 * width)
    comp = zlib.compressobj(9)
    idat = comp.compress(row * 4) + comp.flush()  # a few rows: the rest is "truncated"
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zeros_png(side: int) -> bytes:
    """A real all-black side x side PNG: tiny on disk, side**2 pixels decoded."""
    return png_bytes(np.zeros((side, side), np.uint8))

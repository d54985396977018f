"""Shared fixtures: where the real test data lives (``../shared/data`` beside the checkout),
and a small HTTP server on 127.0.0.1 for download tests."""

from __future__ import annotations

import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The folder of real test data: ``$VAELAB_TEST_DATA`` or ``../shared/data``; None if absent."""
    env = os.environ.get("VAELAB_TEST_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    """The real data folder, or skip the test cleanly when it is not on this machine."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("real test data (../shared/data or $VAELAB_TEST_DATA) is not on this machine")
    return path


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.content`` at any path, with Range support; ``server.mode`` selects a
    misbehaviour: ``normal``, ``stall``, ``wrong`` (bytes inverted), ``ignore-range``,
    ``bad-range`` (a Content-Range that starts at 0) or ``truncate`` (cut after
    ``server.cut`` bytes)."""

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append(self.headers.get("Range"))
        if srv.mode == "stall":
            srv.release.wait(5)
            return
        body = srv.content
        if srv.mode == "wrong":
            body = bytes(b ^ 0xFF for b in body)
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.mode != "ignore-range":
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            shown = 0 if srv.mode == "bad-range" else start
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {shown}-{len(body) - 1}/{len(body)}")
            start = shown
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if srv.mode == "truncate":
            payload = payload[: srv.cut]
        self.wfile.write(payload)


@pytest.fixture
def http_server():
    """A server on 127.0.0.1 serving ``http_server.content`` (set it) at every path under
    ``http_server.base_url``; ``requests`` records the Range header of each request."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.content = b""
    srv.mode = "normal"
    srv.cut = 100_000
    srv.requests = []
    srv.release = threading.Event()
    srv.base_url = f"http://127.0.0.1:{srv.server_address[1]}/"
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()

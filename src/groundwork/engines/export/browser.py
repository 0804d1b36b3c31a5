"""A real browser for checking web bundles: Debian's Chromium driven by Playwright, offline.

:class:`BundleServer` serves one bundle folder on ``127.0.0.1`` (a free port) with the
cross-origin isolation headers that multi-threaded WebAssembly needs (COOP/COEP), and
answers only requests whose ``Host`` is that address (and whose ``Origin``, when sent,
is too). The verifier's harness page is served from ``/__groundwork__/`` beside it, never
copied into the bundle.

:class:`BrowserSession` launches headless Chromium with every request that is not for
the local server aborted (and a dead proxy behind that), and records what the page
tried to reach: a bundle that asks the network for anything is not self-contained.
One session serves many checks (tests share one per test session).
"""

from __future__ import annotations

import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from groundwork.errors import ConfigError

HARNESS = Path(__file__).resolve().parent / "bundle"
HARNESS_PREFIX = "/__groundwork__/"
CHROMIUM_ENV = "GROUNDWORK_CHROMIUM"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-default-apps",
                 "--disable-extensions", "--disable-gpu",
                 # Anything that slips past the request filter meets a proxy that is not there.
                 "--proxy-server=http://127.0.0.1:9"]
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
         ".html": "text/html; charset=utf-8", ".onnx": "application/octet-stream", ".ort": "application/octet-stream",
         ".md": "text/markdown; charset=utf-8", ".css": "text/css", ".txt": "text/plain; charset=utf-8"}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        allowed = self.server.allowed_hosts
        if host not in allowed or (origin is not None and urlsplit(origin).netloc not in allowed):
            self._send(403, b"forbidden host or origin\n", "text/plain")
            return
        path = unquote(urlsplit(self.path).path)
        if path.startswith(HARNESS_PREFIX):
            base, relative = HARNESS, path[len(HARNESS_PREFIX):]
            if relative != "verify.html":
                self._send(404, b"not found\n", "text/plain")
                return
        else:
            base, relative = self.server.root, path.lstrip("/") or "index.html"
        target = (base / relative).resolve()
        if not target.is_relative_to(base.resolve()) or not target.is_file():
            self._send(404, b"not found\n", "text/plain")
            return
        self.server.served.append(path)
        self._send(200, target.read_bytes(), TYPES.get(target.suffix, "application/octet-stream"))

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    root: Path
    allowed_hosts: set[str]
    served: list[str]


class BundleServer:
    """``with BundleServer(folder) as server: server.url`` — a bundle on 127.0.0.1, stopped on exit."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.root = self.root
        port = self._server.server_address[1]
        self._server.allowed_hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self._server.served = []
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="gw-export-server", daemon=True)

    @property
    def served(self) -> list[str]:
        return list(self._server.served)

    def __enter__(self) -> BundleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def chromium_path() -> str:
    """Debian's Chromium (or ``GROUNDWORK_CHROMIUM``); a clear error when there is none."""
    explicit = os.environ.get(CHROMIUM_ENV)
    for candidate in ([explicit] if explicit else []) + ["/usr/bin/chromium", "chromium", "chromium-browser"]:
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    raise ConfigError(
        "no Chromium to check the bundle in: web exports are verified in a real browser",
        hint="install it (Debian: apt-get install chromium, or make system-deps) or set GROUNDWORK_CHROMIUM",
    )


class BrowserSession:
    """Headless Chromium through Playwright, offline but for 127.0.0.1. Use as a context manager."""

    def __init__(self) -> None:
        self._playwright: Any = None
        self.browser: Any = None

    def __enter__(self) -> BrowserSession:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise ConfigError("playwright is not installed: web exports are verified in a real browser",
                              hint="pip install 'groundwork[export]'") from None
        executable = chromium_path()
        self._playwright = sync_playwright().start()
        try:
            self.browser = self._playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:
            self._playwright.stop()
            raise ConfigError(f"cannot start Chromium ({executable}): {str(exc).splitlines()[0]}") from None
        return self

    @property
    def version(self) -> str:
        return f"Chromium {self.browser.version}"

    @contextmanager
    def page(self, server: BundleServer) -> Iterator[tuple[Any, list[str], list[str]]]:
        """A fresh page (own context) that may reach only ``server``; yields (page, blocked URLs, page errors)."""
        context = self.browser.new_context(service_workers="block")
        blocked: list[str] = []
        errors: list[str] = []
        local = urlsplit(server.url).netloc

        def route(request_route: Any) -> None:
            url = request_route.request.url
            if urlsplit(url).netloc == local:
                request_route.continue_()
            else:
                blocked.append(url)
                request_route.abort("internetdisconnected")

        context.route("**/*", route)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page, blocked, errors
        finally:
            context.close()

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.browser is not None:
                self.browser.close()
        finally:
            if self._playwright is not None:
                self._playwright.stop()

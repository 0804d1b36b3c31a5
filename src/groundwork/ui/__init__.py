"""The web UI: a single-page app of static files, served next to the JSON API.

No build step and no Node at the user's site: ``static/`` holds plain ES modules
(``js/``), one stylesheet, and the vendored charting and graph-layout libraries
(``static/VENDORED.md``). :func:`ui_routes` serves them from memory, gzipped once,
with ETags; versioned vendor files are cached by the browser for a year. Every
other GET that is not under the API answers the app's ``index.html``, whose
router (``js/app.js``) draws the page the path names. ``index.html`` carries the
server's write token (``<meta name="groundwork-token">``, see
:mod:`groundwork.server.security`); ``js/util.js`` sends it with every write. A team
server's page says so (``<meta name="groundwork-server" content="team">``): the app then
asks for a login (``js/team.js``) and sends the session's CSRF token instead.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

STATIC_DIR = Path(__file__).parent / "static"
_TOKEN_META = b'<meta name="groundwork-token" content=""'
_SERVER_META = b'<meta name="groundwork-server" content="ui"'
_COMPRESSIBLE = (".js", ".css", ".html", ".svg", ".json", ".md", ".txt", ".map")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json",
          ".md": "text/markdown; charset=utf-8", ".png": "image/png", ".ico": "image/x-icon"}
_SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Everything the app loads is its own; inline styles are used by the charting library.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    media_type: str
    immutable: bool


class _Assets:
    """Files under ``STATIC_DIR`` read once, gzipped once, kept in memory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[str, _Asset] = {}
        self._lock = threading.Lock()

    def get(self, relative: str) -> _Asset | None:
        cached = self._cache.get(relative)
        if cached is not None:
            return cached
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        return self.put(relative, path.read_bytes())

    def put(self, relative: str, body: bytes) -> _Asset:
        """Serve ``body`` as the file ``relative`` (read from disk, or rendered)."""
        suffix = PurePosixPath(relative).suffix.lower()
        gzipped = gzip.compress(body, compresslevel=9, mtime=0) if suffix in _COMPRESSIBLE and len(body) > 1024 else None
        asset = _Asset(
            body=body,
            gzipped=gzipped,
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            media_type=_TYPES.get(suffix) or mimetypes.guess_type(relative)[0] or "application/octet-stream",
            immutable=relative.startswith("vendor/"),
        )
        with self._lock:
            self._cache[relative] = asset
        return asset

    def respond(self, request: Request, relative: str) -> Response:
        asset = self.get(relative)
        if asset is None:
            return Response(b"not found", status_code=404, media_type="text/plain")
        headers = dict(_SECURITY)
        headers["ETag"] = asset.etag
        headers["Cache-Control"] = "public, max-age=31536000, immutable" if asset.immutable else "no-cache"
        headers["Vary"] = "Accept-Encoding"
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        body = asset.body
        if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body = asset.gzipped
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=asset.media_type, headers=headers)


def ui_routes(api_prefix: str = "/api/v1", *, token: str = "", team: bool = False) -> list[BaseRoute]:
    """Routes serving ``/static/...`` and the app's ``index.html`` (carrying ``token``) for every page path.

    ``team``: the page of a team server (``groundwork server``), whose app logs in.
    """
    assets = _Assets(STATIC_DIR)
    index = (STATIC_DIR / "index.html").read_bytes()
    for meta in (_TOKEN_META, _SERVER_META):
        if meta not in index:
            raise RuntimeError(f"index.html lacks {meta!r}")  # a broken package, not a user's mistake
    index = index.replace(_TOKEN_META, _TOKEN_META[:-1] + html.escape(token).encode() + b'"')
    if team:
        index = index.replace(_SERVER_META, _SERVER_META.replace(b'"ui"', b'"team"'))
    assets.put("index.html", index)
    api_root = "/" + api_prefix.strip("/").split("/")[0]  # "/api"

    async def static(request: Request) -> Response:
        return assets.respond(request, request.path_params["path"])

    async def page(request: Request) -> Response:
        path = "/" + request.path_params.get("path", "")
        if path == api_root or path.startswith(api_root + "/"):
            from groundwork.server.responses import JSON

            return JSON(
                {"ok": False, "status": 404, "error": "Not found",
                 "message": f"no API endpoint {request.method} {request.url.path}", "hint": "see /api/docs for the endpoints"},
                status_code=404,
            )
        return assets.respond(request, "index.html")

    async def favicon(request: Request) -> Response:
        return assets.respond(request, "favicon.svg")

    return [
        Route("/static/{path:path}", static, methods=["GET", "HEAD"]),
        Route("/favicon.ico", favicon, methods=["GET", "HEAD"]),
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/{path:path}", page, methods=["GET", "HEAD"]),
    ]

"""The ASGI app: the JSON API under ``/api/v1``, the web UI around it, one error shape.

    from groundwork.server.app import create_app
    app = create_app(Config.from_env(), port=5000)   # uvicorn.run(app, host="127.0.0.1", port=5000)

Who may call it: :class:`~groundwork.server.security.LocalGuard` answers a request whose
``Host`` is not a loopback name or one of ``hosts`` (on ``port``) with a 403 before any
handler runs, and a write without this process's token (``app.state.guard.token``,
embedded in the UI's page) likewise.

Errors: a :class:`~groundwork.errors.GroundworkError` is answered with its
``http_status`` and :func:`~groundwork.errors.error_body`; a malformed request
(a query parameter that is not a number, a missing one, a bad JSON body) is a 400
in the same shape; an unknown API path a 404. Anything else is a bug: a 500 whose
body says so, with the traceback in the server's log, never in the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from groundwork.config import Config
from groundwork.errors import GroundworkError
from groundwork.server import artifacts, lineage, metrics, models, pipelines, runs

from groundwork.server import sweeps  # noqa: E402  isort: skip
from groundwork.server import monitor  # noqa: E402  isort: skip
from groundwork.server.context import ServerContext
from groundwork.server.responses import JSON, error_response, ok
from groundwork.server.security import GuardMiddleware, LocalGuard

API_PREFIX = "/api/v1"
log = logging.getLogger("groundwork.server")

_HEADLINES = {400: "Invalid request", 401: "Not authorized", 403: "Forbidden", 404: "Not found",
              405: "Method not allowed", 413: "Payload too large", 415: "Unsupported media type"}


def create_app(
    config: Config | None = None, *, ui: bool = True, hosts: Iterable[str] = (), port: int | None = None,
    team: bool = False,
) -> FastAPI:
    """The API (and, with ``ui``, the web UI) over the stores ``config`` names.

    ``hosts`` are the names, besides the loopback ones, a request's ``Host`` may name, and
    ``port`` the port it must name (``None``: any; pass the bound port when serving).

    ``team=True`` makes the team server's app (``groundwork server``): no host list or
    process token, but users, tokens and roles per project (:mod:`groundwork.server.auth`),
    every route behind a credential, the account and audit routes, and every state change
    in the audit log (:mod:`groundwork.server.team`). The store is opened on the first request.
    """
    from groundwork import __version__

    config = config or Config.from_env()
    app = FastAPI(
        title="groundwork API",
        version=__version__,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.groundwork = ServerContext(config)
    for module in (runs, metrics, artifacts, lineage, models, pipelines):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(sweeps.router, prefix=API_PREFIX)
    app.include_router(monitor.router, prefix=API_PREFIX)

    @app.get(API_PREFIX, include_in_schema=False)
    def index() -> JSON:
        context: ServerContext = app.state.groundwork
        if team:  # the team server does not tell anonymous callers where its data lives
            return ok({"name": "groundwork", "version": __version__, "team": True})
        return ok({"name": "groundwork", "version": __version__, "store": context.store.display_url,
                   "artifacts": config.artifacts_url})

    app.add_exception_handler(GroundworkError, _groundwork_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(_ApiGZip)
    page_token = ""
    if team:
        from groundwork.server.team import LazyTeamStore, install

        install(app, config, LazyTeamStore(config.store_url), API_PREFIX)
        from groundwork.server import store_api  # the store contracts over HTTP: GROUNDWORK_SERVER clients

        app.include_router(store_api.router, prefix=API_PREFIX)
    else:
        guard = LocalGuard(hosts, port)
        app.state.guard = guard
        app.add_middleware(GuardMiddleware, guard=guard)  # outermost: before routing, for reads too
        page_token = guard.token
    if ui:
        from groundwork.ui import ui_routes

        app.router.routes.extend(ui_routes(API_PREFIX, token=page_token, team=team))
    return app


async def _groundwork_error(_request: Request, exc: GroundworkError) -> JSON:
    return error_response(exc)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSON:
    problems = [_describe(e) for e in exc.errors()]
    message = problems[0] if len(problems) == 1 else "; ".join(problems[:5])
    return JSON(
        {"ok": False, "status": 400, "error": "Invalid request", "message": message,
         "hint": "see /api/docs for the parameters of each endpoint"},
        status_code=400,
    )


def _describe(error: Any) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    where, name = (loc[0], ".".join(loc[1:])) if loc else ("request", "")
    what = {"query": "query parameter", "path": "path parameter", "body": "body field", "header": "header"}.get(
        where, where
    )
    label = f"{what} '{name}'" if name else ("the JSON body" if where == "body" else what)
    if error.get("type") == "missing":
        return f"{label} is required"
    given = error.get("input")
    shown = f" (got {given!r})" if isinstance(given, (str, int, float)) and len(repr(given)) < 80 else ""
    return f"{label}: {error.get('msg', 'invalid')}{shown}"


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSON:
    status = exc.status_code
    if status == 404:
        message = f"no API endpoint {request.method} {request.url.path}"
        hint: str | None = "see /api/docs for the endpoints"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        hint = None
    else:
        message = str(exc.detail)
        hint = None
    return JSON(
        {"ok": False, "status": status, "error": _HEADLINES.get(status, "Error"), "message": message, "hint": hint},
        status_code=status,
        headers=getattr(exc, "headers", None),
    )


async def _internal_error(request: Request, exc: Exception) -> JSON:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSON(
        {"ok": False, "status": 500, "error": "Internal error",
         "message": f"groundwork failed on {request.method} {request.url.path}: {type(exc).__name__}",
         "hint": "this is a bug in groundwork; please report it with the server's log"},
        status_code=500,
    )


#: Artifact bytes (``groundwork.server.blobs``) go as stored: byte ranges must count stored bytes.
_BYTE_PATHS = (f"{API_PREFIX}/blobs/", f"{API_PREFIX}/manifests/")


class _ApiGZip:
    """gzip for API answers only: static files are precompressed, artifact bytes are sent as stored."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=2048, compresslevel=5)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(API_PREFIX) and not path.endswith("/raw") and not path.startswith(_BYTE_PATHS):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)

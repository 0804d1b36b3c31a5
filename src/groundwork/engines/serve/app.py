"""The serving ASGI app: ``POST /v1/models/{name}/predict`` for each served model, plus health and docs.

The predict route is a raw ASGI hot path (no framework between uvicorn and the
model): read the body, ``orjson`` it, validate against the signature, hand the rows
to the model's :class:`~groundwork.engines.serve.batching.DynamicBatcher`, answer
``{"outputs": [...], "model_version": N}``. Everything else (``/healthz``,
``/readyz``, ``/metrics``, ``/v1/models``, ``/openapi.json``, ``/docs``) goes through
a small JSON router. Every request's ``Host`` and ``Origin`` are checked first (see
:mod:`groundwork.engines.serve.hosts`); predictions take JSON bodies only. Every error
is :func:`groundwork.errors.error_body`; a client's mistake is a 4xx (see
:mod:`groundwork.engines.serve.validation`), and only a model that fails on valid
input answers 500. Slow and excess connections are handled below the app, in
:mod:`groundwork.engines.serve.limits`.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from groundwork.config import Config
from groundwork.core.registry import ModelRef, get_model_version
from groundwork.engines.monitor.log import LogOptions, PredictionLog
from groundwork.engines.monitor.metrics import LogMetrics
from groundwork.engines.serve import oip
from groundwork.engines.serve.admin import (
    ADMIN_PREFIX,
    ADMIN_TOKEN_ENV,
    ROUTE_SUFFIX,
    admin_refusal,
    requested_route,
)
from groundwork.engines.serve.batching import BatchError, DynamicBatcher
from groundwork.engines.serve.hosts import HostPolicy
from groundwork.engines.serve.metrics import ServeMetrics
from groundwork.engines.serve.openapi import DOCS_ASSETS, docs_asset, openapi_document, swagger_html
from groundwork.engines.serve.routing import (
    MAX_SHADOW_IN_FLIGHT,
    Router,
    RouteSpec,
    RouteTable,
    Target,
    own_label,
    startup_spec,
)
from groundwork.engines.serve.validation import body_not_json, envelope_inputs, not_json_content, too_large
from groundwork.engines.serve.watcher import AliasWatcher, Loaded, load_version
from groundwork.errors import GroundworkError, InvalidInput, NotFound, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_PREFIX = "/v1/models/"
_SUFFIX = "/predict"


@dataclass(frozen=True)
class ServeOptions:
    """How a serving process batches, validates, logs and watches (``groundwork serve`` flags)."""

    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    max_body_bytes: int = 16 * 1024 * 1024
    #: the fraction of requests the prediction log keeps (1: every one; 0: none; see engines.monitor.log)
    log_sample: float = 1.0
    #: a prediction-log segment closes this many seconds after its first request (or at 250,000 rows)
    log_segment_seconds: float = 60.0
    poll_interval_s: float = 2.0
    threads: int = 1
    backend: str = "auto"
    #: run the model on the event loop (True), in a worker thread (False), or decide by its speed (None)
    inline: bool | None = None
    #: names accepted in ``Host`` besides loopback ones (``groundwork serve`` adds ``--host``); ``*``: any
    allowed_hosts: tuple[str, ...] = ()
    #: connections one process holds; more are answered 503 (see :mod:`.limits`)
    limit_concurrency: int = 1024
    #: seconds an idle keep-alive connection stays open
    timeout_keep_alive_s: float = 5.0
    #: seconds a client has to send a request's headers, from connecting or from its first byte
    header_timeout_s: float = 10.0
    #: seconds a client has to send a request's body once its headers arrived
    body_timeout_s: float = 60.0
    #: split a model's traffic by weight between aliases or versions (``production=90,candidate=10``)
    route: str | None = None
    #: also send every request to this alias or version, off the response path (see :mod:`.routing`)
    shadow: str | None = None
    #: the bearer token of ``/admin/...`` (changing routes at runtime); default ``GROUNDWORK_SERVE_TOKEN``
    admin_token: str | None = None
    #: a folder the workers of one ``groundwork serve --workers N`` share (set by ``run_server``)
    state_dir: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))  # a list when read back from JSON
        if self.max_batch_size < 1:
            raise InvalidInput(f"--max-batch-size must be at least 1, not {self.max_batch_size}")
        if self.max_wait_ms < 0:
            raise InvalidInput(f"--max-wait-ms must not be negative, not {self.max_wait_ms}")
        LogOptions(sample=self.log_sample, segment_seconds=self.log_segment_seconds)  # checks the --log-* flags
        if self.max_body_bytes < 1024:
            raise InvalidInput("the body size limit must be at least 1 KiB")
        if self.threads < 1:
            raise InvalidInput(f"--threads must be at least 1, not {self.threads}")
        if self.limit_concurrency < 1:
            raise InvalidInput(f"--limit-concurrency must be at least 1, not {self.limit_concurrency}")
        for flag, seconds in (("--timeout-keep-alive", self.timeout_keep_alive_s),
                              ("--header-timeout", self.header_timeout_s), ("--body-timeout", self.body_timeout_s)):
            if not seconds > 0:
                raise InvalidInput(f"{flag} must be more than 0 seconds, not {seconds}")
        if self.route is not None or self.shadow is not None:
            RouteSpec.parse(self.route, self.shadow)  # a malformed spec fails here, before anything loads


class ModelFailed(GroundworkError):
    """The model raised on inputs that passed validation: a server-side fault."""

    headline = "Model failed"
    http_status = 500


class ServedModel:
    """One model served by this process: the version answering now, its batcher and watcher."""

    def __init__(self, ref: ModelRef, loaded: Loaded, batcher: DynamicBatcher) -> None:
        self.ref = ref
        self.name = ref.name
        self.current = loaded
        self.batcher = batcher
        self.watcher: AliasWatcher | None = None
        #: set when requests are split between versions or shadowed (then ``current`` is the heaviest target's)
        self.router: Router | None = None

    def describe(self) -> dict[str, Any]:
        loaded = self.current
        signature = loaded.predictor.signature or loaded.version.signature
        out = {
            "name": self.name,
            "ref": str(self.ref),
            "version": loaded.number,
            "flavor": loaded.version.flavor,
            "backend": loaded.predictor.backend,
            "signature": signature.to_dict() if signature else None,
            "loaded_at": loaded.loaded_at,
            "url": f"{_PREFIX}{self.name}{_SUFFIX}",
        }
        table = self.router.table if self.router is not None else None
        if table is not None:
            out.update(table.describe())
        return out


class ServingApp:
    """The ASGI app for one or more models. Loading happens in ``__init__`` (errors surface before binding)."""

    def __init__(self, refs: Sequence[str], *, config: Config | None = None, options: ServeOptions | None = None,
                 verbose: bool = False) -> None:
        from groundwork import __version__

        self.config = config or Config.from_env()
        self.options = options or ServeOptions()
        self.verbose = verbose
        self.version = __version__
        if not refs:
            raise InvalidInput("name at least one model to serve", hint="groundwork serve digits@production")
        parsed = [ModelRef.parse(r) for r in refs]
        names = [p.name for p in parsed]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidInput(f"model {twice[0]!r} is named more than once", hint="serve each model once")
        self.hosts = HostPolicy(self.options.allowed_hosts)
        self.metrics = ServeMetrics()
        self.log = PredictionLog(
            self.config, LogOptions(sample=self.options.log_sample, segment_seconds=self.options.log_segment_seconds),
            listener=LogMetrics(None if self.metrics.multiprocess else self.metrics.registry,
                                multiprocess=self.metrics.multiprocess))
        self.models: dict[str, ServedModel] = {}
        opts = self.options
        self.admin_token = opts.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None
        self._shadows: set[asyncio.Task[None]] = set()
        route = startup_spec(parsed, opts.route, opts.shadow)
        for ref in parsed:
            if route is not None:
                self.models[ref.name] = self._routed(ref, route)
                continue
            version = get_model_version(str(ref), config=self.config)
            loaded = load_version(version, config=self.config, backend=opts.backend, threads=opts.threads)
            name = ref.name
            batcher = DynamicBatcher(
                max_batch_size=opts.max_batch_size,
                max_wait_ms=opts.max_wait_ms,
                inline=opts.inline,
                on_batch=functools.partial(self._on_batch, name),
            )
            self.models[name] = ServedModel(ref, loaded, batcher)
            self.metrics.served(name, loaded.number)
        self.ready = False
        self._openapi: bytes | None = None
        self._routes: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
            "/v1/models": self._list,
            "/openapi.json": self._openapi_json,
            "/docs": self._docs,
            **{f"/docs/{name}": self._docs_asset for name in DOCS_ASSETS},
        }

    # -- routes ---------------------------------------------------------------------------------------
    def _router(self, name: str, seeds: Sequence[Loaded] = ()) -> Router:
        opts = self.options

        def new_batcher(label: str) -> DynamicBatcher:
            return DynamicBatcher(max_batch_size=opts.max_batch_size, max_wait_ms=opts.max_wait_ms, inline=opts.inline,
                                  on_batch=functools.partial(self._on_batch, name))

        state = Path(opts.state_dir) / f"route-{name}.json" if opts.state_dir else None
        return Router(name, config=self.config, new_batcher=new_batcher, on_swap=functools.partial(self._target_swapped, name),
                      backend=opts.backend, threads=opts.threads, interval_s=opts.poll_interval_s, state_file=state,
                      seeds=seeds)

    def _routed(self, ref: ModelRef, spec: RouteSpec) -> ServedModel:
        router = self._router(ref.name)
        table = router.install(spec, router.prepare(spec))
        primary = table.primary()
        assert primary is not None
        served = ServedModel(ref, primary.current, primary.batcher)
        served.router = router
        self.metrics.served(ref.name, primary.current.number)
        return served

    def _target_swapped(self, name: str, target: Target, old: Loaded, loaded: Loaded) -> None:
        served = self.models[name]
        self._routes_changed(served)
        print(f"groundwork serve: {target.ref} (route target {target.label}) now answers with version "
              f"{loaded.number} (was {old.number})", file=sys.stderr, flush=True)

    def _routes_changed(self, served: ServedModel) -> None:
        table = served.router.table if served.router is not None else None
        primary = table.primary() if table is not None else None
        if primary is not None and primary.current is not served.current:
            served.current = primary.current
            self.metrics.served(served.name, primary.current.number, swapped=True)
        self._openapi = None

    async def set_route(self, served: ServedModel, spec: RouteSpec) -> RouteTable:
        """Route ``served`` by ``spec`` from the next request on (loading what it needs first, off the loop)."""
        router = served.router
        if router is None:  # a model served without a route gets one: its own version is shared, not reloaded
            router = self._router(served.name, seeds=[served.current])
            table = await router.update(spec)
            router.start()
            served.router = router
            if served.watcher is not None:
                await served.watcher.stop()
                served.watcher = None
        else:
            table = await router.update(spec)
        self._routes_changed(served)
        print(f"groundwork serve: {served.name} is now routed {table.spec.describe()}", file=sys.stderr, flush=True)
        return table

    def _shadow(self, served: ServedModel, target: Target, inputs: Any, booleans: bool,
                request_id: int | None = None) -> None:
        """Send one request's inputs to the shadow target in a task of its own (never answered to anyone)."""
        if len(self._shadows) >= MAX_SHADOW_IN_FLIGHT:
            self.metrics.shadowed(served.name, target.label, "dropped")
            return
        task = asyncio.get_running_loop().create_task(self._run_shadow(served, target, inputs, booleans, request_id))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _run_shadow(self, served: ServedModel, target: Target, inputs: Any, booleans: bool,
                          request_id: int | None = None) -> None:
        loaded = target.current
        started = time.perf_counter()
        try:
            batch, rows = loaded.validator(inputs, booleans)
            target.batcher.arriving()
            outputs = await target.batcher.submit(loaded, batch, rows)
        except Exception as exc:  # the shadow's own failure: counted, never the caller's
            self.metrics.shadowed(served.name, target.label, "error")
            if request_id is not None:  # logged beside its primary (the primary was logged)
                cause = exc.cause if isinstance(exc, BatchError) else exc
                status = cause.http_status if isinstance(cause, GroundworkError) else 500
                self._log(served, target, loaded, None, 0, None, time.perf_counter() - started, status,
                          _ERROR_KINDS.get(status, "model_error"), shadow=True, request_id=request_id)
            return
        self.metrics.shadowed(served.name, target.label, "ok")
        if request_id is not None:
            self._log(served, target, loaded, batch, rows, outputs, time.perf_counter() - started, shadow=True,
                      request_id=request_id)

    def _log(self, served: ServedModel, target: Target | None, loaded: Loaded, batch: Any, rows: int, outputs: Any,
             seconds: float, status: int = 200, error: str | None = None, *, shadow: bool = False,
             request_id: int | None = None) -> int | None:
        """Offer one answered (or refused) request to the prediction log; its route is the target that answered."""
        ref = served.ref if target is None else target.ref
        return self.log.offer(served.name, own_label(served.ref) if target is None else target.label, ref.alias,
                              loaded.number, batch, rows, outputs, seconds, status, error, shadow=shadow,
                              request_id=request_id)

    # -- lifecycle ------------------------------------------------------------------------------------
    async def startup(self) -> None:
        self.log.start()
        for served in self.models.values():
            if served.router is not None:
                served.router.start()
                continue
            watcher = AliasWatcher(
                served.ref,
                current=functools.partial(_current_number, served),
                swap=functools.partial(self.swap, served),
                config=self.config,
                interval_s=self.options.poll_interval_s,
                backend=self.options.backend,
                threads=self.options.threads,
            )
            served.watcher = watcher
            watcher.start()
        # The loaded models and libraries are tens of thousands of long-lived objects: move them
        # out of the collector's sight, so a full collection under load takes microseconds, not
        # the ~20 ms pause (for every request in flight) it costs otherwise.
        gc.collect()
        gc.freeze()
        self.ready = True

    async def shutdown(self) -> None:
        self.ready = False
        for served in self.models.values():
            if served.watcher is not None:
                await served.watcher.stop()
            if served.router is not None:
                await served.router.stop()
            served.batcher.close()
        for task in list(self._shadows):
            task.cancel()
        await asyncio.to_thread(self.log.close)

    def _on_batch(self, name: str, rows: int, requests: int, seconds: float) -> None:
        self.metrics.batch(name, rows, seconds)

    def swap(self, served: ServedModel, loaded: Loaded) -> None:
        """Make ``loaded`` answer from now on (one assignment: requests already queued finish on the old one)."""
        old = served.current
        served.current = loaded
        self._openapi = None
        self.metrics.served(served.name, loaded.number, swapped=True)
        print(f"groundwork serve: {served.ref} now answers with version {loaded.number} "
              f"(was {old.number})", file=sys.stderr, flush=True)

    # -- ASGI -----------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            host = origin = content_type = length = None
            for key, value in scope["headers"]:
                if key == b"host":
                    host = value
                elif key == b"content-type":
                    content_type = value
                elif key == b"content-length":
                    length = value
                elif key == b"origin":
                    origin = value
            if origin is not None or host not in self.hosts.accepted:
                refused = self.hosts.check(host, origin)
                if refused is not None:
                    await _send_error(send, refused)
                    return
            path: str = scope["path"]
            if path.endswith(_SUFFIX) and path.startswith(_PREFIX) and scope["method"] == "POST":
                served = self.models.get(path[len(_PREFIX):-len(_SUFFIX)])
                if served is not None:
                    await self._predict(served, content_type, length, receive, send)
                    return
            if path.startswith(oip.PREFIX):
                await self._v2(scope, receive, send, content_type, length)
                return
            await self._route(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- the hot path ------------------------------------------------------------------------------------
    async def _predict(self, served: ServedModel, content_type: bytes | None, length: bytes | None,
                       receive: Receive, send: Send, v2: oip.V2Path | None = None) -> None:
        """One prediction: ``/v1`` (``v2`` None) or the Open Inference Protocol's infer (see :mod:`.oip`)."""
        started = time.perf_counter()
        router = served.router
        if router is None:
            table = target = None
            batcher = served.batcher
            loaded = served.current
        else:  # split between versions (see .routing): one draw, then the same path on the target's own batcher
            table = router.table
            assert table is not None
            target = table.pick()
            batcher = target.batcher
            loaded = target.current
        oip_id = None
        if v2 is not None and v2.version is not None:  # /v2/models/NAME/versions/N/infer: that version, no draw
            pinned = self._pinned(served, v2.version)
            if isinstance(pinned, GroundworkError):
                await self._fail(send, served.name, pinned, v2=True)
                return
            table = None
            target, loaded, batcher = pinned
        batcher.arriving()
        try:
            if content_type != b"application/json":
                unsupported = not_json_content(content_type)
                if unsupported is not None:
                    raise unsupported
            body = await self._read_body(length, receive)
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise body_not_json(str(exc), body) from None
            if v2 is None:
                inputs = envelope_inputs(document)
            else:
                inputs, oip_id, _ = oip.parse_infer(document, loaded.validator.signature)
            unusual = body.translate(None, _PLAIN_JSON)  # usually empty: digits, punctuation, "inputs"
            booleans = b"r" in unusual or b"l" in unusual  # tRue, faLse
            batch, rows = loaded.validator(inputs, booleans)
        except GroundworkError as error:
            batcher.withdrawn()
            await self._fail(send, served.name, error, v2=v2 is not None)
            self._log(served, target, loaded, None, 0, None, time.perf_counter() - started, error.http_status,
                      _ERROR_KINDS.get(error.http_status, "bad_request"))
            return
        except _ClientGone:
            batcher.withdrawn()
            return
        except BaseException:  # a bug: do not leave the batcher waiting for this request
            batcher.withdrawn()
            raise
        try:
            outputs = await batcher.submit(loaded, batch, rows)
        except BatchError as failure:
            cause = failure.cause
            problem = cause if isinstance(cause, GroundworkError) else ModelFailed(
                f"model {served.name}/{loaded.number} failed on these inputs: "
                f"{type(cause).__name__}: {str(cause).splitlines()[0][:300] if str(cause) else ''}",
                hint="the inputs matched the signature; this is a problem of the model or its runtime",
            )
            await self._fail(send, served.name, problem, kind=None if problem is cause else "model_error",
                             v2=v2 is not None)
            status = problem.http_status
            self._log(served, target, loaded, None, 0, None, time.perf_counter() - started, status,
                      "model_error" if problem is not cause else _ERROR_KINDS.get(status, "bad_request"))
            return
        answer = {"outputs": outputs, "model_version": loaded.number} if v2 is None else oip.infer_response(
            served.name, loaded.number, oip_id, outputs, loaded.validator.signature)
        payload = orjson.dumps(answer, option=_NUMPY, default=_to_list)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
        elapsed = time.perf_counter() - started
        self.metrics.answered(served.name, 200, elapsed)
        request_id = self._log(served, target, loaded, batch, rows, outputs, elapsed)
        if table is not None:
            assert target is not None
            self.metrics.routed_to(served.name, target.label)
            if table.shadow is not None:
                self._shadow(served, table.shadow, inputs, booleans, request_id)

    async def _read_body(self, length: bytes | None, receive: Receive) -> bytes:
        limit = self.options.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise too_large(int(length), limit)
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise too_large(len(body), limit)
            return body
        chunks = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(size, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _fail(self, send: Send, model: str, error: GroundworkError, kind: str | None = None,
                    v2: bool = False) -> None:
        status = error.http_status
        self.metrics.error(model, kind or _ERROR_KINDS.get(status, "bad_request"))
        self.metrics.answered(model, status, 0.0)
        await _send_json(send, status, oip.error_document(error) if v2 else error_body(error))

    def _pinned(self, served: ServedModel, version: int) -> tuple[Target | None, Loaded, DynamicBatcher] | GroundworkError:
        """What answers for version ``version`` of ``served`` now (a route target, or the model itself)."""
        table = served.router.table if served.router is not None else None
        if table is not None:
            for member in table.members():
                if member.current.number == version:
                    return member, member.current, member.batcher
            serving = sorted({m.current.number for m in table.members()})
        elif served.current.number == version:
            return None, served.current, served.batcher
        else:
            serving = [served.current.number]
        return oip.version_not_served(served.name, version, serving)

    # -- the Open Inference Protocol (KServe v2) ------------------------------------------------------
    async def _v2(self, scope: Scope, receive: Receive, send: Send, content_type: bytes | None,
                  length: bytes | None) -> None:
        method = scope["method"]
        request = oip.parse_path(scope["path"])
        if request is None:
            await _send_json(send, 404, oip.error_document(NotFound(
                f"no route {method} {scope['path']}",
                hint="GET /v2, /v2/health/live, /v2/health/ready, /v2/models/NAME, /v2/models/NAME/ready; "
                     "POST /v2/models/NAME/infer")))
            return
        want = "POST" if request.kind == "infer" else "GET"
        if method != want and not (want == "GET" and method == "HEAD"):
            error = _MethodNotAllowed(f"use {want} for {scope['path']}, not {method}")
            await _send_json(send, 405, oip.error_document(error), [(b"allow", want.encode())])
            return
        if request.model is None:
            if request.kind == "server":
                await _send_json(send, 200, oip.server_metadata(self.version))
            elif request.kind == "live":
                await _send_json(send, 200, {"live": True})
            else:
                await _send_json(send, 200 if self.ready else 503, {"ready": self.ready})
            return
        served = self.models.get(request.model)
        if served is None:
            await _send_json(send, 404, oip.error_document(oip.not_served(request.model, list(self.models))))
            return
        if request.kind == "infer":
            await self._predict(served, content_type, length, receive, send, v2=request)
            return
        loaded = served.current
        if request.version is not None:
            pinned = self._pinned(served, request.version)
            if isinstance(pinned, GroundworkError):
                await _send_json(send, pinned.http_status, oip.error_document(pinned))
                return
            loaded = pinned[1]
        if request.kind == "model_ready":
            await _send_json(send, 200 if self.ready else 503,
                             {"name": served.name, "ready": self.ready, "version": str(loaded.number)})
            return
        table = served.router.table if served.router is not None else None
        versions = sorted({m.current.number for m in table.members()}) if table is not None else [loaded.number]
        signature = loaded.predictor.signature or loaded.version.signature
        await _send_json(send, 200, oip.model_metadata(served.name, versions, loaded.version.flavor, signature))

    # -- everything else -----------------------------------------------------------------------------------
    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].rstrip("/") or "/"
        method = scope["method"]
        handler = self._routes.get(path)
        if handler is None and path.startswith(ADMIN_PREFIX) and path.endswith(ROUTE_SUFFIX):
            await self._admin_route(scope, receive, send, path[len(ADMIN_PREFIX):-len(ROUTE_SUFFIX)])
            return
        if handler is None and path.startswith(_PREFIX):
            rest = path[len(_PREFIX):]
            name, _, action = rest.partition("/")
            served = self.models.get(name)
            if served is None:
                await _send_error(send, self._unknown_model(name))
                return
            if action == "predict":
                await _send_error(send, _MethodNotAllowed(f"use POST for {path}, not {method}"), [(b"allow", b"POST")])
                return
            if action == "" and method in ("GET", "HEAD"):
                await _send_json(send, 200, served.describe())
                return
            handler = None
        if handler is None:
            await _send_error(send, NotFound(
                f"no route {method} {scope['path']}",
                hint="POST /v1/models/NAME/predict; GET /v1/models, /healthz, /readyz, /metrics, /docs",
            ))
            return
        if method not in ("GET", "HEAD"):
            await _send_error(send, _MethodNotAllowed(f"use GET for {path}, not {method}"), [(b"allow", b"GET")])
            return
        await handler(scope, receive, send)

    async def _admin_route(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        """``GET``/``PUT /admin/models/NAME/route`` (see :mod:`.admin`)."""
        method = scope["method"]
        try:
            refused = admin_refusal(scope, self.admin_token)
            if refused is not None:
                raise refused
            served = self.models.get(name)
            if served is None:
                raise self._unknown_model(name)
            current = served.router.table if served.router is not None else None
            if method in ("GET", "HEAD"):
                await _send_json(send, 200, served.describe())
                return
            if method != "PUT":
                await _send_error(send, _MethodNotAllowed(f"use GET or PUT for {scope['path']}, not {method}"),
                                  [(b"allow", b"GET, PUT")])
                return
            headers = dict(scope["headers"])
            unsupported = not_json_content(headers.get(b"content-type"))
            if unsupported is not None:
                raise unsupported
            body = await self._read_body(headers.get(b"content-length"), receive)
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise body_not_json(str(exc), body) from None
            before = current.spec if current is not None else RouteSpec(((own_label(served.ref), 100),))
            spec = requested_route(document, before)
            await self.set_route(served, spec)
        except GroundworkError as error:
            await _send_error(send, error)
            return
        except _ClientGone:
            return
        await _send_json(send, 200, served.describe())

    def _unknown_model(self, name: str) -> NotFound:
        from groundwork.errors import ModelNotFound

        served = ", ".join(self.models)
        return ModelNotFound(f"model {name!r} is not served here (served: {served})",
                             hint=f"POST to /v1/models/{next(iter(self.models))}/predict, or start the server with it")

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, {"ok": True})

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        models = {name: served.current.number for name, served in self.models.items()}
        await _send_json(send, 200 if self.ready else 503, {"ok": self.ready, "models": models})

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, content_type = await asyncio.to_thread(self.metrics.render)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _list(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, {"models": [m.describe() for m in self.models.values()]})

    async def _openapi_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._openapi is None:
            models = []
            for served in self.models.values():
                loaded = served.current
                models.append({"name": served.name, "ref": str(served.ref), "version": loaded.number,
                               "signature": loaded.predictor.signature or loaded.version.signature,
                               "example": loaded.example})
            self._openapi = orjson.dumps(openapi_document(models, self.version), default=_to_list)
        body = self._openapi
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = swagger_html().encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()),
                                (b"content-security-policy", _DOCS_POLICY)]})
        await send({"type": "http.response.body", "body": body})

    async def _docs_asset(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"].rstrip("/").rpartition("/")[2]
        body, content_type = docs_asset(name)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                                (b"cache-control", b"public, max-age=31536000, immutable")]})
        await send({"type": "http.response.body", "body": body})


def _current_number(served: ServedModel) -> int:
    return served.current.number


class _ClientGone(Exception):
    """The client disconnected before its body arrived."""


class _MethodNotAllowed(GroundworkError):
    headline = "Method not allowed"
    http_status = 405


#: What a body of rows of plain numbers is made of; ``true`` and ``false`` leave an r or an l behind.
_PLAIN_JSON = b'0123456789.,-[]{}: \t\r\n"inputs'

_ERROR_KINDS = {400: "bad_request", 404: "not_found", 405: "bad_request", 413: "too_large", 415: "bad_request",
                422: "unprocessable", 500: "model_error"}

#: ``/docs`` runs only this server's own scripts and styles and talks only to this server.
_DOCS_POLICY = (b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _to_list(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


async def _send_json(send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps(data, option=_NUMPY, default=_to_list)
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON, (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, error: GroundworkError, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await _send_json(send, error.http_status, error_body(error), headers)

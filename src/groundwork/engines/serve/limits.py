"""What keeps slow or excess clients from taking a serving process down.

A process can hold as many connections as it may open files. Without limits, a client
that opens thousands of sockets and sends nothing (or one header byte now and then:
"slowloris") uses up the descriptors, and every other request is reset until it lets
go. So each serving process:

- raises its open-file limit (``RLIMIT_NOFILE``) from the soft to the hard limit
  (:func:`raise_open_file_limit`), and keeps its connection cap well below what that
  allows (:func:`connection_cap`), so answering never fails for want of a descriptor;
- holds at most ``--limit-concurrency`` connections. A new connection beyond that
  closes the oldest one that is not being answered (still sending its headers or body,
  or idle between keep-alive requests), as nginx reuses connections: a client that
  sends its request at once is served while thousands of slow sockets are open. When
  every connection is being answered, new ones (up to one eighth more) get ``503`` with
  the JSON error body and ``Retry-After: 1``, and any beyond that are closed unread;
- closes a connection that has not sent a request's headers within ``--header-timeout``
  seconds of connecting (or of the request's first byte), however it trickles them; one
  that has not sent the body within ``--body-timeout`` seconds of the headers; and one
  that takes no bytes of its answer for ``--body-timeout`` seconds;
- closes keep-alive connections idle for ``--timeout-keep-alive`` seconds (uvicorn's).

uvicorn 0.54 offers the keep-alive timeout and a ``limit_concurrency`` that answers 503
only once the headers arrive (so it never frees a descriptor from a client that sends
none), and no header timeout; :class:`GuardedHttpToolsProtocol` adds the rest to its
httptools protocol. A request that arrives whole in one read starts no timer; each costs
two dict operations (the connection leaves the closable set and comes back).
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from groundwork.engines.serve.app import ServeOptions, ServingApp
from groundwork.errors import GroundworkError, InvalidInput, error_body

#: Descriptors kept for what is not a connection: models, the store, logs, metrics files.
RESERVED_FILES = 256
#: The most connections ``connection_cap`` allows with no open-file limit to speak of.
_NO_LIMIT = 1 << 20


def raise_open_file_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit; returns the soft limit now."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return _NO_LIMIT
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else _NO_LIMIT
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. macOS caps it lower than "unlimited"
            pass
    return _NO_LIMIT if soft == resource.RLIM_INFINITY else soft


def overflow(limit: int) -> int:
    """Connections above ``limit`` accepted only to be answered 503 (beyond that: closed at once)."""
    return max(16, limit // 8)


def connection_cap(requested: int, open_files: int) -> int:
    """``requested``, or fewer so that the cap, its 503 overflow and the reserve fit in ``open_files``."""
    most = (open_files - RESERVED_FILES) * 8 // 9
    if most < 16:
        raise InvalidInput(
            f"this process may open only {open_files} files, too few to serve",
            hint="raise the limit (ulimit -n 4096) before starting groundwork serve",
        )
    return min(requested, most)


class ServerBusy(GroundworkError):
    headline = "Server busy"
    http_status = 503


def serving_app_of(app: Any) -> ServingApp | None:
    """The :class:`ServingApp` inside uvicorn's middleware (None for another app)."""
    for _ in range(8):
        if isinstance(app, ServingApp):
            return app
        app = getattr(app, "app", None)
    return None


class _Pool:
    """The connections of one uvicorn server that may be closed to make room, oldest first."""

    def __init__(self) -> None:
        self.spare: dict[GuardedHttpToolsProtocol, None] = {}
        self.closing = 0  # closed here, not yet gone from uvicorn's set of connections


_POOLS: weakref.WeakKeyDictionary[Any, _Pool] = weakref.WeakKeyDictionary()
_IDLE, _HEADERS, _BODY = 0, 1, 2


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a connection cap, header, body and send timeouts.

    ``_phase`` follows the parser (waiting for headers, reading a body, or neither); after
    each read, :meth:`_watch` keeps one deadline for the phase the connection is left in,
    and keeps the connection in its server's :class:`_Pool` unless a request is being answered.
    """

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        serving = serving_app_of(self.app)
        options = serving.options if serving is not None else ServeOptions()
        self._metrics = serving.metrics if serving is not None else None
        self._own_app = self.app
        self._pool = _POOLS.setdefault(server_state, _Pool())
        self._cap = options.limit_concurrency
        self._accept_cap = options.limit_concurrency + overflow(options.limit_concurrency)
        self._timeouts = {_HEADERS: options.header_timeout_s, _BODY: options.body_timeout_s}
        self._phase = _HEADERS  # from connecting until the first request's headers
        self._requests = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_for = (_IDLE, 0)
        self._stalled: asyncio.TimerHandle | None = None
        self._closed_here = False

    # -- connections -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        pool = self._pool
        if len(self.connections) - pool.closing > self._cap and pool.spare:
            next(iter(pool.spare))._close("evicted")
        if len(self.connections) - pool.closing > self._accept_cap:
            self._close("full")
            return
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        if self._closed_here:
            self._closed_here = False
            self._pool.closing -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if (self._phase == _IDLE and self.timeout_keep_alive_task is None
                and (self.cycle is None or self.cycle.response_complete)):
            # Bytes between requests that began none (blank lines) stopped the keep-alive timer.
            self._phase = _HEADERS
            self._requests += 1
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._phase == _IDLE and not self.pipeline and not self.transport.is_closing():
            self._pool.spare[self] = None  # idle between requests: closable again, as the newest

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self._timeouts[_BODY], self._close, "send_timeout")

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    # -- parser callbacks ---------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEADERS
        self._requests += 1

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        if len(self.connections) - self._pool.closing > self._cap:
            self.app = _busy
            self._shed("busy")
        else:
            self.app = self._own_app
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = _IDLE

    # -- deadlines and closing -----------------------------------------------------------------------------
    def _watch(self) -> None:
        if self.transport.is_closing():
            return
        phase = self._phase
        if phase != _IDLE or self.cycle is None or self.cycle.response_complete:
            if self not in self._pool.spare:
                self._pool.spare[self] = None
        else:  # a whole request is being answered: never closed to make room
            self._pool.spare.pop(self, None)
        wanted = (phase, self._requests)
        if wanted == self._deadline_for:
            return  # the same request in the same phase: its deadline keeps running
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._deadline_for = wanted
        if phase != _IDLE:
            reason = "header_timeout" if phase == _HEADERS else "body_timeout"
            self._deadline = self.loop.call_later(self._timeouts[phase], self._close, reason)

    def _close(self, reason: str) -> None:
        self._forget()
        if not self.transport.is_closing():
            self._closed_here = True
            self._pool.closing += 1
            self._shed(reason)
            if self.transport.get_write_buffer_size():
                self.transport.abort()  # close() would wait, holding the descriptor, for a reader that stalls
            else:
                self.transport.close()

    def _forget(self) -> None:
        self._pool.spare.pop(self, None)
        for handle in (self._deadline, self._stalled):
            if handle is not None:
                handle.cancel()
        self._deadline = self._stalled = None

    def _shed(self, reason: str) -> None:
        if self._metrics is not None:
            try:
                self._metrics.connection_shed(reason)
            except Exception as exc:  # metrics must never take a connection down with them
                print(f"groundwork serve: cannot count a shed connection: {exc}", file=sys.stderr)


_BUSY = orjson.dumps(error_body(ServerBusy(
    "this server holds as many connections as it takes (--limit-concurrency); try again in a moment",
    hint="retry after a second; to take more, start groundwork serve with a larger --limit-concurrency or --workers",
)))
_BUSY_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BUSY)).encode()),
                 (b"retry-after", b"1"), (b"connection", b"close")]


async def _busy(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": _BUSY_HEADERS})
    await send({"type": "http.response.body", "body": _BUSY})

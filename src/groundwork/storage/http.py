"""The team server's client: the store contracts over HTTP, with only a server URL and a token.

With ``GROUNDWORK_SERVER=https://host`` (and ``GROUNDWORK_TOKEN``, or the credentials
``groundwork login`` saved), :func:`~groundwork.storage.stores.open_stores` returns these
classes instead of the SQL stores: the SDK, the CLI, pipelines and ``groundwork serve`` run
unchanged, and the client holds no database or S3 credentials.

Every method of :class:`~groundwork.storage.stores.MetadataStore`,
:class:`~groundwork.storage.stores.RegistryStore`,
:class:`~groundwork.storage.stores.PipelineStore` and
:class:`~groundwork.storage.stores.MonitorStore` is one call,
``POST /api/v1/store/{contract}/{method}`` with the arguments as a JSON object
(:func:`~groundwork.storage.records.to_wire`), answered with ``{"ok": true, "result": ...}``.
The server builds its routes from the same Protocols (:func:`contract_methods`), so the two
sides cannot drift apart.

Calls go over one pooled connection per server. A call that never reached the server
(refused, unreachable, the server restarting) is retried with backoff for up to
:data:`RETRY_S`; a call whose answer was lost is retried only when repeating it is
harmless (reads, upserts, and batches that carry a client-made id). An error answer is
raised as the same :class:`~groundwork.errors.GroundworkError` the server raised.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import ipaddress
import json
import os
import random
import threading
import time
import typing
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import orjson

from groundwork import errors
from groundwork.errors import AuthError, ConfigError, Forbidden, GroundworkError, InvalidFilter, StoreError
from groundwork.filters import Expr, OrderKey
from groundwork.storage import stores as _stores
from groundwork.storage.records import (
    AliasMove,
    ArtifactLink,
    ArtifactRow,
    CacheCandidate,
    ExportRow,
    LatestMetric,
    Link,
    LogEntry,
    LogLine,
    MetricPoint,
    MetricSegment,
    MetricSeries,
    ModelRow,
    NewRun,
    RunCreate,
    RunEnd,
    RunRow,
    SegmentRow,
    VersionRow,
    from_wire,
    to_wire,
)

if TYPE_CHECKING:
    from groundwork.config import Config
    from groundwork.storage.stores import Stores

API_PREFIX = "/api/v1/store"
#: How long a call that cannot reach the server keeps trying (a server restart takes seconds).
RETRY_S = 20.0
#: The most runs (or children) one call returns; the client pages past it.
PAGE_MAX = 10_000
#: Set to 1 to let a token travel over plain http:// to a server that is not on this machine.
ALLOW_HTTP_ENV = "GROUNDWORK_ALLOW_HTTP"
TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=120.0, pool=60.0)

# -- the contracts, as both sides see them -------------------------------------------------------------

#: ``{contract: Protocol}``: the URL segment of each store contract.
CONTRACTS: dict[str, type] = {
    "metadata": _stores.MetadataStore,
    "registry": _stores.RegistryStore,
    "pipelines": _stores.PipelineStore,
    "monitor": _stores.MonitorStore,
}
#: Members that are this process's business, not the server's.
LOCAL_MEMBERS = frozenset({"url", "display_url", "close"})
#: Writes that repeat safely (upserts, first-ending-wins, id-carrying batches): retried after a lost answer.
IDEMPOTENT_WRITES = frozenset({
    "update_run", "end_run", "heartbeat", "log_params", "set_tags", "delete_tag", "write_batch",
    "add_artifact_link", "set_description", "finish_run", "add_links", "open_segment", "touch_segment",
    "close_segment",
})
#: Reads, by name: retried like the idempotent writes.
_READ_PREFIXES = ("get_", "list_", "search_", "count_", "find_", "resolve_", "links_", "runs_", "artifact_",
                  "metric_", "latest_", "version", "alias", "all_", "exports", "model_names", "keys", "logs",
                  "log_entries", "environment", "child_", "segments", "monitored_", "prediction_samples",
                  "count_prediction")


@dataclass(frozen=True)
class Method:
    """One method of a contract: its signature with the Protocol's resolved type hints."""

    contract: str
    name: str
    signature: inspect.Signature
    hints: dict[str, Any]
    doc: str

    @property
    def returns(self) -> Any:
        return self.hints.get("return", Any)

    @property
    def parameters(self) -> list[inspect.Parameter]:
        return [p for p in self.signature.parameters.values() if p.name != "self"]

    @property
    def reads(self) -> bool:
        return self.name.startswith(_READ_PREFIXES) and self.name not in IDEMPOTENT_WRITES

    @property
    def retry_after_send(self) -> bool:
        """Whether a call whose answer was lost may be sent again (nothing is written twice)."""
        return self.reads or self.name in IDEMPOTENT_WRITES


@functools.cache
def contract_methods(contract: str) -> dict[str, Method]:
    """The methods of one contract (``metadata``, ``registry``, ``pipelines``, ``monitor``), by name."""
    protocol = CONTRACTS[contract]
    namespace = {**vars(_stores), "Expr": Expr, "OrderKey": OrderKey}
    out: dict[str, Method] = {}
    for name, member in vars(protocol).items():
        if name.startswith("_") or name in LOCAL_MEMBERS or not inspect.isfunction(member):
            continue
        hints = typing.get_type_hints(member, globalns=namespace)
        out[name] = Method(contract, name, inspect.signature(member), hints, inspect.getdoc(member) or "")
    return out


# -- credentials and transport ---------------------------------------------------------------------------


def credentials_path() -> Path:
    """Where ``groundwork login`` keeps tokens: ``$XDG_CONFIG_HOME/groundwork/credentials.json`` (mode 0600)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "groundwork" / "credentials.json"


def normalize_server_url(url: str) -> str:
    """``https://host/`` -> ``https://host`` (the key credentials are saved under)."""
    return url.strip().rstrip("/")


def saved_credentials(server_url: str) -> dict[str, Any] | None:
    """The entry ``groundwork login`` saved for ``server_url`` (None when there is none or the file is unreadable)."""
    try:
        data = json.loads(credentials_path().read_text())
    except (OSError, ValueError):
        return None
    servers = data.get("servers") if isinstance(data, dict) else None
    entry = servers.get(normalize_server_url(server_url)) if isinstance(servers, dict) else None
    return entry if isinstance(entry, dict) and isinstance(entry.get("token"), str) else None


def check_transport(server_url: str) -> str:
    """``server_url`` normalized, if a token may be sent to it: https, or http to this machine only."""
    url = normalize_server_url(server_url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"GROUNDWORK_SERVER must be an http(s) URL such as https://groundwork.example.com, not {server_url!r}"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and os.environ.get(ALLOW_HTTP_ENV) != "1":
        raise ConfigError(
            f"refusing to send a token in clear text to {url} (plain http:// to another machine)",
            hint=f"use https:// (TLS in front of the server), or set {ALLOW_HTTP_ENV}=1 on a network you trust",
        )
    return url


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_for(config: Config) -> str:
    """The token for ``config.server_url``: ``GROUNDWORK_TOKEN``, else the one ``groundwork login`` saved."""
    if config.token:
        return config.token
    assert config.server_url
    entry = saved_credentials(config.server_url)
    if entry is None:
        raise ConfigError(
            f"no token for the groundwork server {normalize_server_url(config.server_url)}",
            hint=f"run: groundwork login {normalize_server_url(config.server_url)} (or set GROUNDWORK_TOKEN)",
        )
    return str(entry["token"])


# -- errors from answers -----------------------------------------------------------------------------------


def _error_classes() -> list[type[GroundworkError]]:
    found: list[type[GroundworkError]] = []
    pending: list[type[GroundworkError]] = [GroundworkError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


_BY_STATUS: dict[int, type[GroundworkError]] = {
    400: errors.InvalidInput, 401: AuthError, 403: Forbidden, 404: errors.NotFound, 409: errors.Conflict,
    413: errors.PayloadTooLarge, 422: errors.UnprocessableInput,
}


def error_from_answer(status: int, body: Any, server_url: str) -> GroundworkError:
    """The :class:`GroundworkError` a server answered with (``error_body``'s shape), as its own class."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        text = f"the server answered {status}"
        return StoreError(f"{text} at {server_url}") if status >= 500 else errors.InvalidInput(text)
    headline = body.get("error") or ""
    classes = [c for c in _error_classes() if c.http_status == status and c.headline == headline]
    classes.sort(key=lambda c: c.__module__ != errors.__name__)  # errors.py's first, whatever else is imported
    cls = classes[0] if classes else _BY_STATUS.get(status, StoreError if status >= 500 else errors.InvalidInput)
    error = cls.__new__(cls)
    GroundworkError.__init__(error, body["message"], hint=body.get("hint"))
    if headline and headline != cls.headline:
        error.headline = headline
    if isinstance(error, InvalidFilter):
        error.expression = str(body.get("expression") or "")
        column = body.get("column")
        error.column = column if isinstance(column, int) else None
    if status == 401 and not error.hint:
        error.hint = f"log in again: groundwork login {server_url} (or set GROUNDWORK_TOKEN)"
    if status == 403 and not error.hint:
        error.hint = "ask an admin of the project for a token with a higher role"
    return error


# -- one connection pool per server and token ----------------------------------------------------------------


class _Unreachable(StoreError):
    """The server could not be reached (or answered 502/503/504): worth trying again."""


def _encode(value: Any) -> bytes:
    data = to_wire(value)
    try:
        return orjson.dumps(data)
    except TypeError:  # an integer past 64 bits somewhere in a param: the standard library writes it
        return json.dumps(data, allow_nan=False).encode()


class HttpClient:
    """Calls of the store API on one server, with one token, over a pooled connection (thread-safe)."""

    def __init__(self, server_url: str, token: str, *, retry_s: float | None = None) -> None:
        self.server_url = check_transport(server_url)
        self._retry_s = retry_s
        #: Names this token without revealing it (the writer's spool folder, cache keys).
        self.fingerprint = hashlib.sha256(token.encode()).hexdigest()[:16]
        from groundwork import __version__

        self._http = httpx.Client(
            base_url=self.server_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"groundwork/{__version__}",
                     "Content-Type": "application/json"},
            timeout=TIMEOUT,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            follow_redirects=False,
        )
        self._closed = False

    @property
    def retry_s(self) -> float:
        return RETRY_S if self._retry_s is None else self._retry_s

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._http.close()

    def call(self, method: Method, arguments: Mapping[str, Any], *, once: bool = False) -> Any:
        """``method(**arguments)`` on the server, its answer decoded with the Protocol's return type.

        ``once``: try exactly once (the caller retries on its own schedule, as the writer does).
        """
        body = _encode(arguments)
        path = f"{API_PREFIX}/{method.contract}/{method.name}"
        deadline = time.monotonic() + (0.0 if once else self.retry_s)
        attempt = 0
        while True:
            try:
                return self._send(path, body, method)
            except _Unreachable as exc:
                sent = getattr(exc, "sent", True)
                if (sent and not method.retry_after_send) or time.monotonic() >= deadline:
                    raise StoreError(exc.message, hint=exc.hint) from None
            attempt += 1
            time.sleep(min(backoff(attempt), max(0.0, deadline - time.monotonic())))

    def _send(self, path: str, body: bytes, method: Method) -> Any:
        try:
            response = self._http.post(path, content=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise self._unreachable(exc, sent=False) from None
        except httpx.TransportError as exc:  # sent, but the answer was lost (a server killed mid-request)
            raise self._unreachable(exc, sent=True) from None
        if response.status_code in (502, 503, 504) and not _is_groundwork_error(response):
            raise self._unreachable(None, sent=True, status=response.status_code)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
        if response.status_code >= 400:
            raise error_from_answer(response.status_code, data, self.server_url)
        if not isinstance(data, dict) or "result" not in data:
            raise StoreError(f"the server at {self.server_url} answered {path} with something that is not the store API",
                             hint="check GROUNDWORK_SERVER: it must be a groundwork server's URL")
        return decode(method.returns, data["result"])

    def _unreachable(self, exc: Exception | None, *, sent: bool, status: int | None = None) -> _Unreachable:
        what = f"answered {status}" if status else f"{type(exc).__name__}: {exc}".rstrip(": ")
        error = _Unreachable(
            f"cannot reach the groundwork server {self.server_url} ({what})",
            hint="check GROUNDWORK_SERVER and that the server is running",
        )
        error.sent = sent  # type: ignore[attr-defined]
        return error


def _is_groundwork_error(response: httpx.Response) -> bool:
    """A 503 the store itself answered (``error_body``), not a proxy's or a restarting server's."""
    return response.headers.get("content-type", "").startswith("application/json") and b'"ok":false' in response.content


def backoff(attempt: int, base: float = 0.1, cap: float = 5.0) -> float:
    """Seconds to wait before try ``attempt`` + 1: exponential with full jitter (``base * 2**attempt``, capped)."""
    return random.uniform(0.0, min(cap, base * 2.0 ** min(attempt, 20)))


def decode(kind: Any, data: Any) -> Any:
    """An answer as the Protocol's return type (records, arrays, non-finite floats)."""
    return from_wire(kind, data)


_clients: dict[tuple[int, str, str], HttpClient] = {}
_clients_lock = threading.Lock()


def client_for(server_url: str, token: str) -> HttpClient:
    """This process's client for a server and token (one pool shared by every store of it)."""
    key = (os.getpid(), normalize_server_url(server_url), token)
    with _clients_lock:
        found = _clients.get(key)
        if found is None or found._closed:
            found = _clients[key] = HttpClient(server_url, token)
        return found


# -- the stores ------------------------------------------------------------------------------------------------


class _HttpStore:
    contract = ""
    #: The background writer keeps sealed batches with ids and retries them on its own schedule.
    remote = True

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        #: One per server and token: the writer and the caches key by it (two projects never share a writer).
        self.url = f"{client.server_url}{API_PREFIX}#{client.fingerprint}"
        self._methods = contract_methods(self.contract)

    @property
    def display_url(self) -> str:
        return self.client.server_url

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, /, *, once: bool = False, **arguments: Any) -> Any:
        return self.client.call(self._methods[method], arguments, once=once)


def _filter_text(filter: str | Expr | None) -> str | None:
    return filter if filter is None or isinstance(filter, str) else str(filter)


def _order_text(order_by: str | Sequence[str] | Sequence[OrderKey] | None) -> str | list[str] | None:
    if order_by is None or isinstance(order_by, str):
        return order_by
    return [key if isinstance(key, str) else str(key) for key in order_by]


class HttpMetadataStore(_HttpStore):
    """:class:`~groundwork.storage.stores.MetadataStore` through a groundwork server."""

    contract = "metadata"

    def create_run(
        self,
        row: Mapping[str, Any],
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        environment: tuple[str, str] | None = None,
        links: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        # A batch with an id: a retry after a lost answer does not create the run twice.
        self.write_batch(creations=[RunCreate(row, params, tags, environment, links)])

    def update_run(self, run_id: str, **values: Any) -> None:
        self._call("update_run", run_id=run_id, values=values)

    def end_run(self, run_id: str, status: str, *, exit_code: int | None = None, error: str | None = None) -> None:
        self._call("end_run", run_id=run_id, status=status, exit_code=exit_code, error=error)

    def heartbeat(self, run_ids: Sequence[str], now: float | None = None) -> None:
        self._call("heartbeat", run_ids=run_ids, now=now)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self._call("log_params", run_id=run_id, params=params)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self._call("set_tags", run_id=run_id, tags=tags)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._call("delete_tag", run_id=run_id, key=key)

    def write_batch(
        self,
        points: Sequence[MetricPoint] = (),
        logs: Sequence[LogLine] = (),
        heartbeat_ids: Sequence[str] = (),
        end: RunEnd | None = None,
        *,
        segments: Sequence[MetricSegment] = (),
        creations: Sequence[RunCreate] = (),
        batch_id: str | None = None,
        once: bool = False,
    ) -> bool:
        """As the contract says; every batch carries an id (made here when not given), so retries are safe.

        ``once``: one try, no retries here (the background writer retries on its own schedule).
        """
        if not (points or logs or heartbeat_ids or end or segments or creations):
            return False
        arguments: dict[str, Any] = {"batch_id": batch_id or uuid.uuid4().hex}
        for name, value in (("points", points), ("logs", logs), ("heartbeat_ids", heartbeat_ids), ("end", end),
                            ("segments", segments), ("creations", creations)):
            if value:
                arguments[name] = value
        return bool(self._call("write_batch", once=once, **arguments))

    def log_metrics(self, points: Sequence[MetricPoint]) -> None:
        self.write_batch(points=points)

    def add_artifact_link(
        self,
        run_id: str,
        direction: str,
        name: str,
        *,
        digest: str,
        size: int,
        is_dir: bool,
        file_count: int,
        kind: str = "file",
    ) -> None:
        self._call("add_artifact_link", run_id=run_id, direction=direction, name=name, digest=digest, size=size,
                   is_dir=is_dir, file_count=file_count, kind=kind)

    def run_artifacts(self, run_id: str, direction: str | None = None) -> list[ArtifactLink]:
        result: list[ArtifactLink] = self._call("run_artifacts", run_id=run_id, direction=direction)
        return result

    def artifact_users(self, digest: str) -> list[ArtifactLink]:
        result: list[ArtifactLink] = self._call("artifact_users", digest=digest)
        return result

    def find_artifacts(self, prefix: str) -> list[str]:
        result: list[str] = self._call("find_artifacts", prefix=prefix)
        return result

    def environment(self, digest: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._call("environment", digest=digest)
        return result

    def resolve_run(self, ref: str) -> str:
        return str(self._call("resolve_run", ref=ref))

    def get_run(self, run_id: str) -> RunRow:
        result: RunRow = self._call("get_run", run_id=run_id)
        return result

    def get_runs(self, run_ids: Sequence[str]) -> list[RunRow]:
        out: list[RunRow] = []
        ids = list(run_ids)
        for start in range(0, len(ids), PAGE_MAX):
            out.extend(self._call("get_runs", run_ids=ids[start : start + PAGE_MAX]))
        return out

    def search_runs(
        self,
        filter: str | Expr | None = None,
        order_by: str | Sequence[str] | Sequence[OrderKey] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[RunRow]:
        return self._paged("search_runs", limit, offset, filter=_filter_text(filter), order_by=_order_text(order_by))

    def _paged(self, name: str, limit: int | None, offset: int, **arguments: Any) -> list[Any]:
        """Up to ``limit`` rows (every row when None), asked for at most :data:`PAGE_MAX` at a time."""
        out: list[Any] = []
        while limit is None or len(out) < limit:
            page = PAGE_MAX if limit is None else min(PAGE_MAX, limit - len(out))
            rows = self._call(name, limit=page, offset=offset + len(out), **arguments)
            out.extend(rows)
            if len(rows) < page:
                break
        return out

    def count_runs(self, filter: str | Expr | None = None) -> int:
        return int(self._call("count_runs", filter=_filter_text(filter)))

    def child_runs(self, parent_id: str, limit: int | None = None, offset: int = 0) -> list[RunRow]:
        return self._paged("child_runs", limit, offset, parent_id=parent_id)

    def child_counts(self, parent_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = self._call("child_counts", parent_ids=parent_ids)
        return result

    def keys(self, limit: int = 2000) -> dict[str, list[str]]:
        result: dict[str, list[str]] = self._call("keys", limit=limit)
        return result

    def latest_metrics(self, run_id: str) -> list[LatestMetric]:
        result: list[LatestMetric] = self._call("latest_metrics", run_id=run_id)
        return result

    def metric_series(
        self, run_id: str, key: str, step_min: int | None = None, step_max: int | None = None
    ) -> MetricSeries:
        result: MetricSeries = self._call("metric_series", run_id=run_id, key=key, step_min=step_min,
                                          step_max=step_max)
        return result

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        # The same points as arrays (a few bytes each on the wire, not a JSON list per point).
        series = self.metric_series(run_id, key)
        return list(zip(series.steps.tolist(), series.values.tolist(), series.timestamps.tolist(), strict=True))

    def metric_keys(self, run_id: str) -> list[str]:
        result: list[str] = self._call("metric_keys", run_id=run_id)
        return result

    def logs(self, run_id: str, stream: str | None = None, tail: int | None = None) -> list[LogLine]:
        result: list[LogLine] = self._call("logs", run_id=run_id, stream=stream, tail=tail)
        return result

    def log_entries(
        self,
        run_id: str,
        *,
        stream: str | None = None,
        tail: int | None = None,
        after: int | None = None,
        contains: str | None = None,
    ) -> list[LogEntry]:
        result: list[LogEntry] = self._call("log_entries", run_id=run_id, stream=stream, tail=tail, after=after,
                                            contains=contains)
        return result


class HttpRegistryStore(_HttpStore):
    """:class:`~groundwork.storage.stores.RegistryStore` through a groundwork server."""

    contract = "registry"

    def create_version(
        self,
        name: str,
        *,
        artifact: ArtifactRow,
        flavor: str,
        run_id: str | None = None,
        onnx_digest: str | None = None,
        signature: Mapping[str, Any] | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        info: Mapping[str, Any] | None = None,
        user: str | None = None,
        link_name: str | None = None,
    ) -> int:
        return int(self._call("create_version", name=name, artifact=artifact, flavor=flavor, run_id=run_id,
                              onnx_digest=onnx_digest, signature=signature, description=description, tags=tags,
                              info=info, user=user, link_name=link_name))

    def set_description(self, name: str, description: str | None, version: int | None = None) -> None:
        self._call("set_description", name=name, description=description, version=version)

    def set_alias(
        self, name: str, alias: str, version: int | None, *, who: str | None, reason: str | None = None
    ) -> int | None:
        result: int | None = self._call("set_alias", name=name, alias=alias, version=version, who=who, reason=reason)
        return result

    def add_export(
        self,
        name: str,
        version: int,
        *,
        target: str,
        precision: str,
        artifact: ArtifactRow,
        verification: Mapping[str, Any],
        location: str | None = None,
        user: str | None = None,
    ) -> int:
        return int(self._call("add_export", name=name, version=version, target=target, precision=precision,
                              artifact=artifact, verification=verification, location=location, user=user))

    def get_model(self, name: str) -> ModelRow | None:
        result: ModelRow | None = self._call("get_model", name=name)
        return result

    def list_models(self) -> list[ModelRow]:
        result: list[ModelRow] = self._call("list_models")
        return result

    def model_names(self) -> list[str]:
        result: list[str] = self._call("model_names")
        return result

    def get_version(self, name: str, version: int) -> VersionRow | None:
        result: VersionRow | None = self._call("get_version", name=name, version=version)
        return result

    def latest_version(self, name: str) -> int | None:
        result: int | None = self._call("latest_version", name=name)
        return result

    def list_versions(self, name: str) -> list[VersionRow]:
        result: list[VersionRow] = self._call("list_versions", name=name)
        return result

    def version_numbers(self, name: str) -> list[int]:
        result: list[int] = self._call("version_numbers", name=name)
        return result

    def versions_for_run(self, run_id: str) -> list[VersionRow]:
        result: list[VersionRow] = self._call("versions_for_run", run_id=run_id)
        return result

    def versions_for_artifact(self, digest: str) -> list[VersionRow]:
        result: list[VersionRow] = self._call("versions_for_artifact", digest=digest)
        return result

    def aliases(self, name: str) -> dict[str, int]:
        result: dict[str, int] = self._call("aliases", name=name)
        return result

    def all_aliases(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = self._call("all_aliases")
        return result

    def alias_version(self, name: str, alias: str) -> int | None:
        result: int | None = self._call("alias_version", name=name, alias=alias)
        return result

    def alias_history(self, name: str, alias: str | None = None, limit: int | None = None) -> list[AliasMove]:
        result: list[AliasMove] = self._call("alias_history", name=name, alias=alias, limit=limit)
        return result

    def exports(self, name: str, version: int | None = None) -> list[ExportRow]:
        result: list[ExportRow] = self._call("exports", name=name, version=version)
        return result

    def get_export(self, export_id: int) -> ExportRow | None:
        result: ExportRow | None = self._call("get_export", export_id=export_id)
        return result

    def exports_for_artifact(self, digest: str) -> list[ExportRow]:
        result: list[ExportRow] = self._call("exports_for_artifact", digest=digest)
        return result


class HttpPipelineStore(_HttpStore):
    """:class:`~groundwork.storage.stores.PipelineStore` through a groundwork server."""

    contract = "pipelines"

    def insert_runs(self, runs: Sequence[NewRun]) -> None:
        self._call("insert_runs", runs=runs)

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        links: Sequence[Link] = (),
        tags: Mapping[str, Any] | None = None,
        error: str | None = None,
        environment: tuple[str, str] | None = None,
    ) -> None:
        self._call("finish_run", run_id=run_id, status=status, links=links, tags=tags, error=error,
                   environment=environment)

    def add_links(self, run_id: str, links: Sequence[Link]) -> None:
        self._call("add_links", run_id=run_id, links=links)

    def find_cached(
        self, cache_keys: Sequence[str], *, per_key: int = 3, tag_keys: Sequence[str] = ()
    ) -> dict[str, list[CacheCandidate]]:
        result: dict[str, list[CacheCandidate]] = self._call("find_cached", cache_keys=cache_keys, per_key=per_key,
                                                             tag_keys=tag_keys)
        return result

    def links_for_runs(self, run_ids: Sequence[str], direction: str | None = None) -> dict[str, list[ArtifactLink]]:
        result: dict[str, list[ArtifactLink]] = self._call("links_for_runs", run_ids=run_ids, direction=direction)
        return result

    def links_for_digests(self, digests: Sequence[str], direction: str | None = None) -> dict[str, list[ArtifactLink]]:
        result: dict[str, list[ArtifactLink]] = self._call("links_for_digests", digests=digests, direction=direction)
        return result

    def artifact_rows(self, digests: Sequence[str]) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self._call("artifact_rows", digests=digests)
        return result

    def runs_citing(self, column: str, run_ids: Sequence[str]) -> dict[str, list[str]]:
        result: dict[str, list[str]] = self._call("runs_citing", column=column, run_ids=run_ids)
        return result

    def runs_tagged(self, key: str, values: Sequence[str]) -> dict[str, list[str]]:
        result: dict[str, list[str]] = self._call("runs_tagged", key=key, values=values)
        return result


class HttpMonitorStore(_HttpStore):
    """:class:`~groundwork.storage.stores.MonitorStore` through a groundwork server."""

    contract = "monitor"

    def open_segment(self, segment_id: str, model: str, *, pid: int | None, host: str | None, opened_at: float) -> None:
        self._call("open_segment", segment_id=segment_id, model=model, pid=pid, host=host, opened_at=opened_at)

    def touch_segment(self, segment_id: str, *, rows: int, requests: int, updated_at: float) -> None:
        self._call("touch_segment", segment_id=segment_id, rows=rows, requests=requests, updated_at=updated_at)

    def close_segment(
        self,
        segment_id: str,
        *,
        model: str,
        digest: str,
        size: int,
        rows: int,
        requests: int,
        first_ts: float,
        last_ts: float,
        summary: Mapping[str, Any],
        closed_at: float,
        pid: int | None = None,
        host: str | None = None,
        opened_at: float | None = None,
    ) -> None:
        self._call("close_segment", segment_id=segment_id, model=model, digest=digest, size=size, rows=rows,
                   requests=requests, first_ts=first_ts, last_ts=last_ts, summary=summary, closed_at=closed_at,
                   pid=pid, host=host, opened_at=opened_at)

    def segments(
        self,
        model: str,
        *,
        since: float | None = None,
        until: float | None = None,
        statuses: Sequence[str] | None = None,
        summaries: bool = True,
    ) -> list[SegmentRow]:
        result: list[SegmentRow] = self._call("segments", model=model, since=since, until=until, statuses=statuses,
                                              summaries=summaries)
        return result

    def monitored_models(self) -> dict[str, int]:
        result: dict[str, int] = self._call("monitored_models")
        return result


_opened: dict[tuple[int, str, str], Stores] = {}


def open_http_stores(config: Config) -> Stores:
    """The stores of ``config`` through its server (``config.server_url``), with its token; made once per process.

    The project is the token's (a token is scoped to one project): ``config.project`` is not sent.
    """
    from groundwork.storage.artifacts import ArtifactStore
    from groundwork.storage.http_blobs import HttpBlobStore
    from groundwork.storage.stores import Stores

    assert config.server_url
    url = check_transport(config.server_url)
    token = token_for(config)
    key = (os.getpid(), url, token)
    with _clients_lock:
        found = _opened.get(key)
    if found is not None:
        return found
    client = client_for(url, token)
    stores = Stores(
        HttpMetadataStore(client),
        HttpRegistryStore(client),
        HttpPipelineStore(client),
        ArtifactStore(HttpBlobStore(url, token)),
        HttpMonitorStore(client),
    )
    with _clients_lock:
        return _opened.setdefault(key, stores)


__all__ = [
    "CONTRACTS",
    "HttpClient",
    "HttpMetadataStore",
    "HttpMonitorStore",
    "HttpPipelineStore",
    "HttpRegistryStore",
    "Method",
    "check_transport",
    "contract_methods",
    "credentials_path",
    "open_http_stores",
    "saved_credentials",
]

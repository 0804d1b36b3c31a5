"""``/api/v1/runs``: the runs table (filter, sort, page, columns), one run, its logs and diff.

The table stays quick at 100,000 runs because a page never reads more than it shows:

* the filter is the language of ``groundwork runs`` (``groundwork.filters``),
  compiled to SQL; a syntax error is a 400 whose body carries the ``column``;
* a page is LIMIT/OFFSET over indexed columns. Sorting by one metric or one param
  walks the ``(key, value)`` index of ``latest_metrics`` / ``params`` instead of
  computing a sort key for every run (:func:`_page_ids`);
* a selective filter is driven from an index: when one ``and``-ed condition such as
  ``metrics.acc > 0.99`` matches few runs (counted on its ``(key, value)`` index, up to a
  cap), the query starts from those runs instead of walking every run newest first
  (:func:`_drivers`); the same makes a filtered count cheap;
* params, metrics and tags are read for the page's runs only;
* the total is a separate, cached request (``/runs/count``), so the first page never
  waits for a count over the whole store.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import ColumnElement, Select, and_, exists, func, select, text

from groundwork.core.runs import Run
from groundwork.errors import ArtifactNotFound, InvalidInput, NotFound
from groundwork.filters import And, Comparison, Expr, parse_filter
from groundwork.server.context import ServerContext, get_context
from groundwork.server.responses import JSON, bounded_int, ok, split_list
from groundwork.storage import schema
from groundwork.storage.metadata import MetadataStore, RunRow
from groundwork.storage.search import compile_filter, order_by_clause

router = APIRouter(tags=["runs"])
Context = Annotated[ServerContext, Depends(get_context)]

MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000
MAX_COLUMNS = 200
AUTO_COLUMNS = 6  # params and metrics each, when the caller names none
MAX_KEYS = 2000  # keys listed by /runs/columns, per namespace
#: A driving condition is counted up to this many runs (an index range scan of at most this many entries).
DRIVER_CAP = 10_000
LOG_TAIL = 2000
MAX_LOG_LINES = 20_000
MAX_DIFF_BYTES = 4 * 1024 * 1024

_FAST_ORDER = re.compile(r"^\s*([+-]?)\s*(metrics|params)\.([\w\-/.]+)\s*(asc|desc)?\s*$", re.IGNORECASE)
_runs = schema.runs


# -- the table -----------------------------------------------------------------------------------
@router.get("/runs", summary="A page of runs, filtered and sorted")
def list_runs(
    ctx: Context,
    filter: Annotated[str | None, Query(description="Filter expression, as `groundwork runs --filter`.")] = None,
    order_by: Annotated[str | None, Query(description="Sort keys: -metrics.acc, params.lr, name, -created.")] = None,
    limit: Annotated[int, Query(description=f"Runs per page (1..{MAX_LIMIT}).")] = 50,
    offset: Annotated[int, Query(description="Runs to skip.")] = 0,
    columns: Annotated[
        list[str] | None,
        Query(description="params.X / metrics.X / tags.X to include; none: the most common keys of the page."),
    ] = None,
) -> JSON:
    bounded_int("limit", limit, 1, MAX_LIMIT)
    bounded_int("offset", offset, 0, MAX_OFFSET)
    parsed = _where(filter)
    store = ctx.store
    all_runs = ctx.counts.get_or_compute(("", store.url), lambda: store.count_runs(None))
    ids = _page_ids(store, parsed.for_page(store, offset + limit, all_runs), order_by, limit, offset)
    rows = store.get_runs(ids)
    wanted = _columns(columns, rows)
    total: int | None = None
    if parsed.where is None:  # the unfiltered total is one index count: cheap enough to send with the page
        total = all_runs
    return ok(
        {
            "runs": [_summary(row, wanted) for row in rows],
            "columns": wanted,
            "offset": offset,
            "limit": limit,
            "total": total,
            "more": len(rows) == limit,
        }
    )


@router.get("/runs/count", summary="How many runs match a filter (cached for a few seconds)")
def count_runs(ctx: Context, filter: str | None = None) -> JSON:
    parsed = _where(filter)
    store = ctx.store
    key = ((filter or "").strip(), store.url)
    total = ctx.counts.get_or_compute(key, lambda: store.count_runs(parsed.for_count(store)))
    return ok({"total": total, "filter": filter or ""})


@router.get("/runs/columns", summary="Every param, metric and tag key (for choosing columns)")
def list_columns(ctx: Context) -> JSON:
    store = ctx.store
    found = ctx.columns.get_or_compute(store.url, lambda: _all_keys(store))
    return ok(found)


# -- one run -------------------------------------------------------------------------------------
@router.get("/runs/{ref}", summary="One run: attributes, params, metrics, tags, environment, artifacts")
def get_run(ctx: Context, ref: str) -> JSON:
    store = ctx.store
    row = store.get_run(store.resolve_run(ref))
    run = Run(row, store)
    data = run.to_dict(environment=True)
    data["tags"] = dict(sorted(row.tags.items()))
    data["params"] = dict(sorted(row.params.items()))
    lm = schema.latest_metrics
    with store.read() as conn:
        data["metric_keys"] = [
            {"key": k, "value": v, "step": s, "timestamp": t}
            for k, v, s, t in conn.execute(
                select(lm.c.key, lm.c.value, lm.c.step, lm.c.timestamp).where(lm.c.run_id == row.id).order_by(lm.c.key)
            )
        ]
        by_status: dict[str, int] = dict(
            conn.execute(
                select(_runs.c.status, func.count()).where(_runs.c.parent_id == row.id).group_by(_runs.c.status)
            ).all()
        )
        parent = None
        if row.parent_id:
            found = conn.execute(
                select(_runs.c.id, _runs.c.name, _runs.c.kind, _runs.c.status).where(_runs.c.id == row.parent_id)
            ).first()
            parent = dict(found._mapping) if found else {"id": row.parent_id, "name": None}
        lg = schema.run_logs
        data["has_logs"] = conn.execute(select(lg.c.id).where(lg.c.run_id == row.id).limit(1)).first() is not None
    data["parent"] = parent
    data["children"] = {"count": sum(by_status.values()), "by_status": by_status}
    data["models"] = _models_of(store, row.id)
    return ok({"run": data})


@router.get("/runs/{ref}/children", summary="A run's child runs (a pipeline's steps)")
def get_children(
    ctx: Context, ref: str, limit: int = 500, offset: int = 0
) -> JSON:
    bounded_int("limit", limit, 1, MAX_LIMIT)
    bounded_int("offset", offset, 0, MAX_OFFSET)
    store = ctx.store
    run_id = store.resolve_run(ref)
    rows = store.search_runs(_runs.c.parent_id == run_id, order_by=[_runs.c.created_at], limit=limit, offset=offset)
    return ok({"runs": [_summary(r, None) for r in rows], "offset": offset, "limit": limit})


@router.get("/runs/{ref}/logs", summary="Captured stdout/stderr: the tail, what came after an id, or a search")
def get_logs(
    ctx: Context,
    ref: str,
    stream: Annotated[str | None, Query(description="stdout or stderr (default: both).")] = None,
    tail: Annotated[int, Query(description="The last N chunks.")] = LOG_TAIL,
    after: Annotated[int | None, Query(description="Only chunks after this id (live tail).")] = None,
    q: Annotated[str | None, Query(description="Only chunks containing this text (case-insensitive).")] = None,
) -> JSON:
    if stream is not None and stream not in ("stdout", "stderr"):
        raise InvalidInput(f"stream must be stdout or stderr, not {stream!r}")
    bounded_int("tail", tail, 1, MAX_LOG_LINES)
    if after is not None:
        bounded_int("after", after, 0, 2**63 - 1)
    store = ctx.store
    run_id = store.resolve_run(ref)
    lg = schema.run_logs
    query = select(lg.c.id, lg.c.stream, lg.c.timestamp, lg.c.text).where(lg.c.run_id == run_id)
    if stream:
        query = query.where(lg.c.stream == stream)
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(lg.c.text.ilike(f"%{escaped}%", escape="\\"))
    if after is not None:
        query = query.where(lg.c.id > after).order_by(lg.c.id).limit(tail + 1)
    else:
        query = query.order_by(lg.c.id.desc()).limit(tail + 1)
    with store.read() as conn:
        rows = [tuple(r) for r in conn.execute(query)]
    more = len(rows) > tail
    rows = rows[:tail]
    if after is None:
        rows.reverse()
    last_id = rows[-1][0] if rows else (after or 0)
    lines = [{"id": i, "stream": s, "timestamp": t, "text": x} for i, s, t, x in rows]
    return ok({"lines": lines, "last_id": last_id, "truncated": more and after is None, "more": more and after is not None})


@router.get("/runs/{ref}/diff", summary="The uncommitted diff recorded with the run")
def get_diff(ctx: Context, ref: str) -> JSON:
    store = ctx.store
    row = store.get_run(store.resolve_run(ref))
    if not row.diff_digest:
        return ok({"diff": "", "dirty": bool(row.git_dirty), "truncated": False})
    try:
        data = ctx.artifacts.get_bytes(row.diff_digest)
    except ArtifactNotFound:
        raise NotFound(
            f"the diff of run {row.id[:12]} ({row.diff_digest[:12]}) is not in the artifact store {ctx.config.artifacts_url}",
            hint="start the UI with the --artifacts the run was recorded with",
        ) from None
    truncated = len(data) > MAX_DIFF_BYTES
    return ok({"diff": data[:MAX_DIFF_BYTES].decode("utf-8", "replace"), "dirty": bool(row.git_dirty), "truncated": truncated})


# -- helpers -------------------------------------------------------------------------------------
@dataclass
class _Filter:
    """A compiled filter, and the index-backed candidate sets its ``and``-ed conditions allow."""

    where: ColumnElement[bool] | None = None
    drivers: list[Select[Any]] = field(default_factory=list)
    _sizes: list[int] | None = None

    def smallest(self, store: MetadataStore) -> tuple[Select[Any], int] | None:
        """The driver that matches the fewest runs (counted up to ``DRIVER_CAP``), with that count."""
        if not self.drivers:
            return None
        if self._sizes is None:
            with store.read() as conn:
                self._sizes = [
                    int(conn.execute(select(func.count()).select_from(d.limit(DRIVER_CAP + 1).subquery())).scalar() or 0)
                    for d in self.drivers
                ]
        size, index = min((size, i) for i, size in enumerate(self._sizes))
        return self.drivers[index], size

    def for_page(self, store: MetadataStore, needed: int, all_runs: int) -> ColumnElement[bool] | None:
        """The WHERE clause of a page that ends ``needed`` runs in.

        Walking runs newest first reads about ``needed / selectivity`` runs; starting from a
        driver reads its ``size`` runs and sorts them. With a driver's selectivity taken as
        ``size / all_runs``, starting from it is cheaper when ``size² < needed · all_runs``.
        """
        best = self.smallest(store)
        if self.where is None or best is None:
            return self.where
        driver, size = best
        if not _worth_driving(size, needed, all_runs):
            return self.where
        return and_(_runs.c.id.in_(driver), self.where)

    def for_count(self, store: MetadataStore) -> ColumnElement[bool] | None:
        """A count visits every match anyway: starting from the smallest driver never costs more."""
        best = self.smallest(store)
        if self.where is None or best is None:
            return self.where
        return and_(_runs.c.id.in_(best[0]), self.where)


def _worth_driving(size: int, needed: int, all_runs: int) -> bool:
    return size <= DRIVER_CAP and size * size <= needed * max(all_runs, 1)


def _where(filter: str | None) -> _Filter:
    if filter is None or not filter.strip():
        return _Filter()
    expr = parse_filter(filter)
    return _Filter(compile_filter(expr), _drivers(expr))


_DRIVER_OPS = {
    "=": lambda c, v: c == v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
}


def _drivers(expr: Expr) -> list[Select[Any]]:
    """Candidate run-id sets, one per top-level ``and``-ed condition that an index answers.

    Each is a superset of (in fact equal to) the runs its condition matches, as
    ``groundwork.storage.search`` compiles it: ``metrics.K op number`` on
    ``latest_metrics (key, value)``, ``params.K op number`` on ``params (key, value_num)``,
    and ``status = '…'`` / ``name = '…'`` on their indexes. Since every condition of an
    ``and`` must hold, any one of them may start the query; the filter itself still applies.
    """
    terms: list[Expr] = []
    pending: list[Expr] = [expr]
    while pending:
        term = pending.pop()
        if isinstance(term, And):
            pending.extend(term.terms)
        else:
            terms.append(term)
    out: list[Select[Any]] = []
    for term in terms:
        if not isinstance(term, Comparison) or term.op not in _DRIVER_OPS:
            continue
        namespace, key, value = term.field.namespace, term.field.key, term.value
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if namespace == "metrics" and numeric:
            lm = schema.latest_metrics
            out.append(select(lm.c.run_id).where(lm.c.key == key, _DRIVER_OPS[term.op](lm.c.value, value)))
        elif namespace == "params" and numeric:
            p = schema.params
            out.append(select(p.c.run_id).where(p.c.key == key, _DRIVER_OPS[term.op](p.c.value_num, value)))
        elif namespace == "attr" and key in ("status", "name") and term.op == "=" and isinstance(value, str):
            out.append(select(_runs.c.id).where(_runs.c[key] == value))
    return out


def _page_ids(
    store: MetadataStore, where: ColumnElement[bool] | None, order_by: str | None, limit: int, offset: int
) -> list[str]:
    """The ids of one page, in order.

    The order is exactly ``order_by_clause``'s (runs without the key last, NaN metrics
    after numbers, then newest first). One metric or param is served from its index in
    segments (has a value / NaN or text / missing) so that a page costs what it shows.
    """
    spec = (order_by or "").strip()
    clauses: list[Any] = []
    if spec:
        clauses = order_by_clause(spec)  # validates, with a column on error
    fast = _FAST_ORDER.match(spec) if spec else None
    newest = [_runs.c.created_at.desc(), _runs.c.id]
    if fast is None:
        query = select(_runs.c.id).order_by(*clauses, *newest)
        if where is not None:
            query = query.where(where)
        with store.read() as conn:
            return [r[0] for r in conn.execute(query.limit(limit).offset(offset))]
    sign, namespace, key, word = fast.groups()
    descending = (sign == "-") != ((word or "").lower() == "desc")
    segments = _metric_segments(key, descending) if namespace.lower() == "metrics" else _param_segments(key, descending)
    if where is not None:
        segments = [s.where(where) for s in segments]
    return _segmented(store, segments, limit, offset)


def _direction(column: Any, descending: bool) -> Any:
    return column.desc() if descending else column.asc()


def _metric_segments(key: str, descending: bool) -> list[Select[Any]]:
    lm = schema.latest_metrics
    newest = [_runs.c.created_at.desc(), _runs.c.id]
    joined = select(_runs.c.id).join(lm, and_(lm.c.run_id == _runs.c.id, lm.c.key == key))
    present = exists().where(lm.c.run_id == _runs.c.id, lm.c.key == key)
    return [
        joined.where(lm.c.value.is_not(None)).order_by(_direction(lm.c.value, descending), *newest),
        joined.where(lm.c.value.is_(None)).order_by(*newest),  # NaN
        select(_runs.c.id).where(~present).order_by(*newest),
    ]


def _param_segments(key: str, descending: bool) -> list[Select[Any]]:
    p = schema.params
    newest = [_runs.c.created_at.desc(), _runs.c.id]
    joined = select(_runs.c.id).join(p, and_(p.c.run_id == _runs.c.id, p.c.key == key))
    present = exists().where(p.c.run_id == _runs.c.id, p.c.key == key)
    return [
        joined.where(p.c.value_num.is_not(None)).order_by(
            _direction(p.c.value_num, descending), _direction(p.c.value, descending), *newest
        ),
        joined.where(p.c.value_num.is_(None)).order_by(_direction(p.c.value, descending), *newest),  # text values
        select(_runs.c.id).where(~present).order_by(*newest),
    ]


def _segmented(store: MetadataStore, segments: list[Select[Any]], limit: int, offset: int) -> list[str]:
    """LIMIT/OFFSET over the concatenation of ordered segments, counting a segment only when skipped whole."""
    out: list[str] = []
    skip = offset
    with store.read() as conn:
        for index, segment in enumerate(segments):
            need = limit - len(out)
            if need <= 0:
                break
            got = [r[0] for r in conn.execute(segment.limit(need).offset(skip))]
            out.extend(got)
            if len(got) == need or index == len(segments) - 1:
                continue
            if got:
                skip = 0
            else:
                size = conn.execute(select(func.count()).select_from(segment.order_by(None).subquery())).scalar()
                skip = max(0, skip - int(size or 0))
    return out


def _columns(requested: list[str] | None, rows: list[RunRow]) -> list[str]:
    names = split_list(requested, name="columns", limit=MAX_COLUMNS, commas=False)
    if names:
        for name in names:
            namespace, dot, key = name.partition(".")
            if not dot or not key or namespace not in ("params", "metrics", "tags"):
                raise InvalidInput(
                    f"unknown column {name!r}", hint="columns are params.<key>, metrics.<key> or tags.<key>"
                )
        return names
    params: Counter[str] = Counter()
    metrics: Counter[str] = Counter()
    for row in rows:
        params.update(row.params.keys())
        metrics.update(row.metrics.keys())
    top_params = sorted(sorted(params, key=lambda k: (-params[k], k))[:AUTO_COLUMNS])
    top_metrics = sorted(sorted(metrics, key=lambda k: (-metrics[k], k))[:AUTO_COLUMNS])
    return [f"params.{k}" for k in top_params] + [f"metrics.{k}" for k in top_metrics]


def _summary(row: RunRow, columns: list[str] | None) -> dict[str, Any]:
    end = row.ended_at or row.heartbeat_at
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "status": row.status,
        "parent_id": row.parent_id,
        "created_at": row.created_at,
        "ended_at": row.ended_at,
        "duration": None if end is None else max(0.0, end - row.created_at),
        "user": row.user,
        "git_commit": row.git_commit,
        "cached_from": row.cached_from,
    }
    if columns is None:
        out["params"], out["metrics"], out["tags"] = row.params, row.metrics, row.tags
        return out
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    for column in columns:
        namespace, _, key = column.partition(".")
        if namespace == "params" and key in row.params:
            params[key] = row.params[key]
        elif namespace == "metrics" and key in row.metrics:
            metrics[key] = row.metrics[key]
        elif namespace == "tags" and key in row.tags:
            tags[key] = row.tags[key]
    out["params"], out["metrics"], out["tags"] = params, metrics, tags
    return out


_SKIP_SCAN = """
WITH RECURSIVE k(key) AS (
    SELECT min(key) FROM {table}
    UNION ALL
    SELECT (SELECT min(key) FROM {table} WHERE key > k.key) FROM k WHERE k.key IS NOT NULL
)
SELECT key FROM k WHERE key IS NOT NULL LIMIT :limit
"""


def _all_keys(store: MetadataStore) -> dict[str, Any]:
    """Distinct keys per namespace. Params and metrics skip-scan their ``(key, ...)`` index."""
    with store.read() as conn:
        params = [r[0] for r in conn.execute(text(_SKIP_SCAN.format(table="params")), {"limit": MAX_KEYS})]
        metrics = [r[0] for r in conn.execute(text(_SKIP_SCAN.format(table="latest_metrics")), {"limit": MAX_KEYS})]
        tags = [
            r[0]
            for r in conn.execute(
                select(schema.tags.c.key).distinct().order_by(schema.tags.c.key).limit(MAX_KEYS)
            )
        ]
    return {"params": params, "metrics": metrics, "tags": tags}


def _models_of(store: MetadataStore, run_id: str) -> list[dict[str, Any]]:
    """Model versions a run registered (empty when the registry has none)."""
    from groundwork.storage.registry import RegistryStore

    registry = RegistryStore(store)
    out = []
    for row in registry.versions_for_run(run_id):
        aliases = [a for a, v in registry.aliases(row.name).items() if v == row.version]
        out.append({"name": row.name, "version": row.version, "ref": f"{row.name}/{row.version}", "aliases": aliases,
                    "flavor": row.flavor})
    return out

"""``/api/v1/runs``: the runs table (filter, sort, page, columns), one run, its logs and diff.

The table stays quick at 100,000 runs because a page never reads more than it shows: the
store's search plans it (``groundwork.storage.search``), the same search ``gw.runs()`` and
``groundwork runs`` use. The filter is the language of ``groundwork runs``
(``groundwork.filters``); a syntax error is a 400 whose body carries the ``column``.
Params, metrics and tags are read for the page's runs only, and the total is a separate,
cached request (``/runs/count``), so the first page never waits for a count over the
whole store.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from groundwork.core.runs import Run
from groundwork.errors import ArtifactNotFound, InvalidInput, NotFound
from groundwork.filters import Expr, parse_filter
from groundwork.server.context import ServerContext, get_context
from groundwork.server.responses import JSON, bounded_int, ok, split_list
from groundwork.storage.records import RunRow
from groundwork.storage.stores import RegistryStore

router = APIRouter(tags=["runs"])
Context = Annotated[ServerContext, Depends(get_context)]

MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000
MAX_COLUMNS = 200
AUTO_COLUMNS = 6  # params and metrics each, when the caller names none
MAX_KEYS = 2000  # keys listed by /runs/columns, per namespace
LOG_TAIL = 2000
MAX_LOG_LINES = 20_000
MAX_DIFF_BYTES = 4 * 1024 * 1024



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
    expr = _parsed(filter)
    store = ctx.store
    rows = store.search_runs(expr, order_by, limit=limit, offset=offset)
    wanted = _columns(columns, rows)
    total: int | None = None
    if expr is None:  # the unfiltered total is one index count: cheap enough to send with the page
        total = ctx.counts.get_or_compute(("", store.url), lambda: store.count_runs(None))
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
    expr = _parsed(filter)
    store = ctx.store
    key = ((filter or "").strip(), store.url)
    total = ctx.counts.get_or_compute(key, lambda: store.count_runs(expr))
    return ok({"total": total, "filter": filter or ""})


@router.get("/runs/columns", summary="Every param, metric and tag key (for choosing columns)")
def list_columns(ctx: Context) -> JSON:
    store = ctx.store
    found = ctx.columns.get_or_compute(store.url, lambda: dict(store.keys(MAX_KEYS)))
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
    data["metric_keys"] = [
        {"key": m.key, "value": None if m.value != m.value else m.value, "step": m.step, "timestamp": m.timestamp}
        for m in store.latest_metrics(row.id)
    ]
    by_status = store.child_counts([row.id])[row.id]
    parent = None
    if row.parent_id:
        found = store.get_runs([row.parent_id])
        parent = (
            {"id": found[0].id, "name": found[0].name, "kind": found[0].kind, "status": found[0].status}
            if found
            else {"id": row.parent_id, "name": None}
        )
    data["has_logs"] = bool(store.log_entries(row.id, tail=1))
    data["parent"] = parent
    data["children"] = {"count": sum(by_status.values()), "by_status": by_status}
    data["models"] = _models_of(ctx.registry, row.id)
    return ok({"run": data})


@router.get("/runs/{ref}/children", summary="A run's child runs (a pipeline's steps)")
def get_children(
    ctx: Context, ref: str, limit: int = 500, offset: int = 0
) -> JSON:
    bounded_int("limit", limit, 1, MAX_LIMIT)
    bounded_int("offset", offset, 0, MAX_OFFSET)
    store = ctx.store
    run_id = store.resolve_run(ref)
    rows = store.child_runs(run_id, limit=limit, offset=offset)
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
    entries = store.log_entries(run_id, stream=stream, tail=tail + 1, after=after, contains=q or None)
    more = len(entries) > tail
    entries = entries[1:] if more and after is None else entries[:tail]
    rows = [(e.id, e.stream, e.timestamp, e.text) for e in entries]
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
def _parsed(filter: str | None) -> Expr | None:
    """The filter parsed here, so that a syntax error is a 400 before any query."""
    return parse_filter(filter) if filter and filter.strip() else None


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
    params: dict[str, Any] = {}
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


def _models_of(registry: RegistryStore, run_id: str) -> list[dict[str, Any]]:
    """Model versions a run registered (empty when the registry has none)."""
    out = []
    for row in registry.versions_for_run(run_id):
        aliases = [a for a, v in registry.aliases(row.name).items() if v == row.version]
        out.append({"name": row.name, "version": row.version, "ref": f"{row.name}/{row.version}", "aliases": aliases,
                    "flavor": row.flavor})
    return out

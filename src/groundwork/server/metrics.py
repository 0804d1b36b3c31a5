"""``/api/v1/series``: metric series for charts, downsampled on the server.

A chart asks for about as many points as it has pixels (``points``). The series
is read as arrays (the store keeps it in columnar chunks, so a million points are
one decode) and, when it holds more points than asked for, LTTB
(``groundwork.core.downsample``) picks the ones to draw: peaks and dips survive,
unlike every k-th point. ``method`` says which happened (``raw`` or ``lttb``).

A zoom asks again with ``min_step``/``max_step`` and gets full detail for the
narrower range. Answers for ended runs are cached (a finished series never changes);
a running run's series is read fresh on every poll.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from groundwork.core.downsample import lttb_indices
from groundwork.errors import InvalidInput
from groundwork.server.context import ServerContext, get_context
from groundwork.server.responses import JSON, bounded_int, ok, split_list
from groundwork.storage.records import TERMINAL_STATUSES
from groundwork.storage.stores import MetadataStore

router = APIRouter(tags=["metrics"])
Context = Annotated[ServerContext, Depends(get_context)]

DEFAULT_POINTS = 1500
MAX_POINTS = 20_000
MAX_RUNS = 100
MAX_KEYS = 50
MAX_SERIES = 400
INT64 = 2**63 - 1


@router.get("/runs/{ref}/metrics", summary="A run's metric keys with their last values")
def metric_keys(ctx: Context, ref: str) -> JSON:
    store = ctx.store
    run_id = store.resolve_run(ref)
    rows = store.latest_metrics(run_id)
    return ok({"run_id": run_id, "metrics": [
        {"key": m.key, "value": None if m.value != m.value else m.value, "step": m.step, "timestamp": m.timestamp}
        for m in rows
    ]})


@router.get("/series", summary="Metric series of one or more runs, downsampled to about `points` each")
def series(
    ctx: Context,
    run: Annotated[list[str], Query(description="Run ids, prefixes or names (repeat, or comma-separate).")],
    key: Annotated[list[str] | None, Query(description="Metric keys (repeat the parameter); none: every key.")] = None,
    points: Annotated[int, Query(description=f"Points per series (2..{MAX_POINTS}).")] = DEFAULT_POINTS,
    min_step: Annotated[int | None, Query(description="First step of the range (zoom).")] = None,
    max_step: Annotated[int | None, Query(description="Last step of the range (zoom).")] = None,
) -> JSON:
    bounded_int("points", points, 2, MAX_POINTS)
    for name, step in (("min_step", min_step), ("max_step", max_step)):
        if step is not None:
            bounded_int(name, step, -INT64 - 1, INT64)
    if min_step is not None and max_step is not None and min_step > max_step:
        raise InvalidInput(f"min_step ({min_step}) is after max_step ({max_step})")
    refs = split_list(run, name="run", limit=MAX_RUNS)
    if not refs:
        raise InvalidInput("name at least one run: /api/v1/series?run=ID&key=loss")
    keys = split_list(key, name="key", limit=MAX_KEYS, commas=False)
    store = ctx.store
    ids = [store.resolve_run(r) for r in refs]
    statuses = {r.id: r.status for r in store.get_runs(ids)}
    latest = {
        (run_id, m.key): (m.step, m.timestamp)
        for run_id in dict.fromkeys(ids)
        for m in store.latest_metrics(run_id)
        if not keys or m.key in keys
    }
    wanted = [(r, k) for r in ids for k in (keys or sorted({k for (rr, k) in latest if rr == r}))]
    if len(wanted) > MAX_SERIES:
        raise InvalidInput(f"too many series ({len(wanted)}; at most {MAX_SERIES})", hint="name fewer runs or keys")
    out = []
    for run_id, metric in wanted:
        version = latest.get((run_id, metric))
        if version is None:
            out.append(_empty(run_id, metric))
            continue
        cache_key = (store.url, run_id, metric, points, min_step, max_step, version)
        ended = statuses.get(run_id) in TERMINAL_STATUSES
        cached = ctx.series.get(cache_key) if ended else None
        if cached is None:
            cached = _read_series(store, run_id, metric, points, min_step, max_step)
            if ended:
                ctx.series.put(cache_key, cached)
        out.append(cached)
    return ok({"series": out, "points": points})


def _empty(run_id: str, key: str) -> dict[str, Any]:
    return {"run_id": run_id, "key": key, "total": 0, "method": "raw", "step": [], "value": [], "timestamp": [],
            "range": None}


def _read_series(
    store: MetadataStore, run_id: str, key: str, points: int, min_step: int | None, max_step: int | None
) -> dict[str, Any]:
    series = store.metric_series(run_id, key, min_step, max_step)
    steps, values, stamps = series.steps, series.values, series.timestamps
    total = len(series)
    method = "raw"
    if total > points:
        keep = lttb_indices(steps, values, points)
        steps, values, stamps = steps[keep], values[keep], stamps[keep]
        method = "lttb"
    lo = int(steps[0]) if total else min_step
    hi = int(steps[-1]) if total else max_step
    return {
        "run_id": run_id,
        "key": key,
        "total": total,
        "method": method,
        "step": steps,
        "value": values,
        "timestamp": stamps,
        "range": [min_step if min_step is not None else lo, max_step if max_step is not None else hi],
    }

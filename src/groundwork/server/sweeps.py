"""``/api/v1/sweeps``: hyperparameter sweeps, each with its trials, best-so-far and parameter importance.

A sweep is a run of kind ``sweep``; its trials are child runs of kind ``trial``
(:mod:`groundwork.core.sweeps`). ``GET /sweeps/{ref}`` answers what the sweep page draws:
the trials table (``rows``), the best value after each finished trial in the order they
ended (``best_so_far``), and Optuna's parameter importance (fANOVA; ``importance`` is
empty, with a ``importance_note``, until two trials have finished).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from groundwork.errors import GroundworkError
from groundwork.server.context import ServerContext, TTLCache, get_context
from groundwork.server.responses import JSON, bounded_int, ok
from groundwork.server.runs import _summary

router = APIRouter(tags=["sweeps"])
Context = Annotated[ServerContext, Depends(get_context)]

MAX_LIMIT = 500
_importance: TTLCache[tuple[dict[str, float], str | None]] = TTLCache(64, None)


@router.get("/sweeps", summary="Sweeps, newest first, with their trials counted by state")
def list_sweeps(ctx: Context, limit: int = 50, offset: int = 0) -> JSON:
    bounded_int("limit", limit, 1, MAX_LIMIT)
    bounded_int("offset", offset, 0, 10_000_000)
    rows = ctx.store.search_runs("kind = 'sweep'", limit=limit, offset=offset)
    out = []
    for row in rows:
        data = _summary(row, None)
        data["metric"] = row.tags.get("gw.sweep.metric", "value")
        data["direction"] = (row.tags.get("gw.sweep.directions", '["minimize"]').strip('[]"'))
        data["trials"] = row.tags.get("gw.sweep.trials")
        out.append(data)
    return ok({"sweeps": out, "offset": offset, "limit": limit})


@router.get("/sweeps/{ref}", summary="One sweep: settings, best trial, trials, best-so-far, parameter importance")
def get_sweep(ref: str, ctx: Context) -> JSON:
    from groundwork.core.sweeps.sweep import describe_sweep

    info = describe_sweep(ref, config=ctx.config)
    info["best_so_far"] = best_so_far(info["rows"], info["direction"])
    finished = [r for r in info["rows"] if r["status"] == "finished" and r["value"] is not None]
    key = (info["id"], len(finished), len(info["rows"]))
    importance, note = _importance.get_or_compute(key, lambda: parameter_importance(info["id"], ctx))
    info["importance"], info["importance_note"] = importance, note
    return ok({"sweep": info})


def best_so_far(rows: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    """After each finished trial (in the order trials ended), the best value yet."""
    ended = sorted(
        (r for r in rows if r["status"] == "finished" and r["value"] is not None),
        key=lambda r: r["created_at"] + (r["duration"] or 0.0),
    )
    best: float | None = None
    out = []
    for count, row in enumerate(ended, start=1):
        value = float(row["value"])
        if best is None or (value > best if direction == "maximize" else value < best):
            best = value
        out.append({"trial": row["number"], "count": count, "value": value, "best": best})
    return out


def parameter_importance(sweep_id: str, ctx: ServerContext) -> tuple[dict[str, float], str | None]:
    """Optuna's fANOVA importance of each parameter for the sweep's objective."""
    try:
        import optuna
    except ImportError:
        return {}, "parameter importance needs Optuna: pip install 'groundwork[sweeps]'"
    from groundwork.core.sweeps.storage import GroundworkStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=sweep_id, storage=GroundworkStorage(ctx.config))
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(complete) < 2:
            return {}, "parameter importance needs at least two finished trials"
        importance = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
    except (GroundworkError, ValueError, RuntimeError, ImportError) as exc:
        return {}, f"parameter importance is not available: {exc}"
    return {k: float(v) for k, v in importance.items()}, None

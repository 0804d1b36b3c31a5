"""The choice: the fastest measured candidate whose quality drop stays within the budget."""

from __future__ import annotations

from collections.abc import Sequence

from groundwork.engines.optimize.report import CandidateResult

OBJECTIVES = ("throughput", "latency")
#: Float noise allowed on top of the budget (a drop of 0.0100000001 is within 0.01).
TOLERANCE = 1e-9


def within_budget(row: CandidateResult, max_drop: float) -> bool:
    return row.drop is not None and row.drop <= max_drop + TOLERANCE


def choose(rows: Sequence[CandidateResult], max_drop: float, objective: str = "throughput") -> tuple[CandidateResult | None, str]:
    """The chosen row (or None) and one sentence saying why."""
    measured = [r for r in rows if r.status == "ok" and r.measured]
    eligible = [r for r in measured if within_budget(r, max_drop)]
    if not eligible:
        return None, f"no measured candidate stays within the quality budget (max drop {max_drop:g})"

    def key(r: CandidateResult) -> tuple[float, float]:
        throughput = r.throughput or 0.0
        latency = r.latency_p50_ms if r.latency_p50_ms is not None else float("inf")
        return (throughput, -latency) if objective == "throughput" else (-latency, throughput)

    best = max(eligible, key=key)
    over = sum(1 for r in measured if not within_budget(r, max_drop))
    what = "throughput" if objective == "throughput" else "batch-1 latency"
    reason = f"best {what} of {len(eligible)} candidate(s) within max drop {max_drop:g}"
    if over:
        reason += f"; {over} faster or slower candidate(s) lost too much quality"
    return best, reason

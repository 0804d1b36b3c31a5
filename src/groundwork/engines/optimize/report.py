"""The result of an optimize: one row per candidate, the choice, the hardware; JSON, Markdown, PNG."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CandidateResult:
    """One candidate: how it was built, how fast it ran, how good its outputs stayed."""

    id: str
    engine: str
    precision: str
    sparsity: float = 0.0
    status: str = "pending"  # ok, skipped, failed, over-budget (measured but lost too much quality)
    reason: str = ""
    threads: int = 0
    streams: int = 1
    micro_batch: int = 0
    batch: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_runs: int = 0
    throughput: float | None = None
    speedup: float | None = None
    latency_speedup: float | None = None
    score: float | None = None
    quality_change: float | None = None
    drop: float | None = None
    params: int | None = None
    flops: int | None = None
    build_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return self.throughput is not None and self.score is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OptimizeReport:
    """Everything ``groundwork optimize`` found out, and what it chose."""

    model: dict[str, Any]
    metric: str
    higher_is_better: bool
    max_drop: float
    batch_sizes: list[int]
    objective: str
    hardware: dict[str, Any]
    rows: list[CandidateResult] = field(default_factory=list)
    baseline: str = ""
    baseline_score: float | None = None
    chosen: str | None = None
    choice_reason: str = ""
    eval_rows: int = 0
    calibration_rows: int = 0
    started: float = 0.0
    seconds: float = 0.0
    out_dir: str = ""
    run_id: str | None = None
    registered: str | None = None

    def row(self, candidate_id: str) -> CandidateResult:
        for r in self.rows:
            if r.id == candidate_id:
                return r
        raise KeyError(candidate_id)

    @property
    def chosen_row(self) -> CandidateResult | None:
        return self.row(self.chosen) if self.chosen else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [r.to_dict() for r in self.rows]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptimizeReport:
        rows = [CandidateResult(**r) for r in data.get("rows", [])]
        fields = {k: v for k, v in data.items() if k != "rows"}
        return cls(rows=rows, **fields)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    # --- rendering ------------------------------------------------------------------
    def table(self) -> list[dict[str, str]]:
        """The rows as display strings (the CLI table and report.md share this)."""
        out = []
        for r in self.rows:
            out.append(
                {
                    "candidate": r.id + (" *" if r.id == self.chosen else ""),
                    "engine": r.engine,
                    "precision": r.precision,
                    "sparsity": f"{r.sparsity:.0%}" if r.sparsity else "-",
                    "threads": _threads_text(r),
                    "batch": str(r.batch) if r.batch else "-",
                    "p50 ms": _num(r.latency_p50_ms, 2),
                    "p99 ms": _num(r.latency_p99_ms, 2),
                    "items/s": _num(r.throughput, 1),
                    "speedup": f"{r.speedup:.2f}x" if r.speedup else "-",
                    "quality": _quality_text(r, self),
                    "status": r.status if not r.reason else f"{r.status}: {r.reason}",
                }
            )
        return out

    def to_markdown(self) -> str:
        hw = self.hardware
        lines = [
            f"# groundwork optimize: {self.model.get('name', '?')}",
            "",
            f"- model: `{self.model.get('reference', '?')}`",
            f"- hardware: {hw.get('cpu_model', '?')}, {hw.get('cores', '?')} cores; features: "
            f"{' '.join(hw.get('features', [])) or 'none found'}",
            f"- metric: {self.metric} ({'higher' if self.higher_is_better else 'lower'} is better), "
            f"max drop {self.max_drop:g}, baseline `{self.baseline}` scores {_num(self.baseline_score, 4)}",
            f"- eval rows: {self.eval_rows}; calibration rows: {self.calibration_rows}; "
            f"batch sizes: {', '.join(map(str, self.batch_sizes))}; objective: {self.objective}",
            f"- latency: batch 1 (median, p99); throughput: batch {max(self.batch_sizes)}; "
            f"threads shown as threads[xstreams/micro-batch]",
            "",
        ]
        table = self.table()
        if table:
            headers = list(table[0])
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "|".join("---" for _ in headers) + "|")
            for row in table:
                lines.append("| " + " | ".join(row[h].replace("|", "/") for h in headers) + " |")
        lines.append("")
        chosen = self.chosen_row
        if chosen is not None:
            lines.append(f"**Chosen: `{chosen.id}`**: {self.choice_reason}")
        else:
            lines.append(f"**Nothing chosen**: {self.choice_reason}")
        notes = [(r.id, n) for r in self.rows for n in r.notes]
        if notes:
            lines += ["", "Notes:", ""]
            lines += [f"- `{cid}`: {note}" for cid, note in notes]
        lines.append("")
        return "\n".join(lines)

    def plot(self, path: Path) -> Path:
        """Speed (throughput speedup) against quality change, one point per measured candidate."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
        measured = [r for r in self.rows if r.measured and r.speedup is not None and r.drop is not None]
        for r in measured:
            ok = r.drop is not None and r.drop <= self.max_drop + 1e-12
            marker = "*" if r.id == self.chosen else "o"
            ax.scatter(
                [-(r.drop or 0.0)],
                [r.speedup or 0.0],
                s=180 if r.id == self.chosen else 50,
                marker=marker,
                color="tab:green" if ok else "tab:red",
                zorder=3,
            )
            ax.annotate(r.id, (-(r.drop or 0.0), r.speedup or 0.0), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.axvline(-self.max_drop, color="gray", linestyle="--", linewidth=1, label=f"max drop {self.max_drop:g}")
        ax.axhline(1.0, color="lightgray", linewidth=1)
        ax.set_xlabel(f"quality change vs baseline ({self.metric}; right is better)")
        ax.set_ylabel(f"throughput speedup at batch {max(self.batch_sizes)} (x baseline)")
        ax.set_title(f"{self.model.get('name', 'model')}: speed vs quality on {self.hardware.get('cpu_model', 'CPU')}", fontsize=9)
        ax.legend(loc="best", fontsize=8)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        return path

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write ``report.json``, ``report.md`` and ``speed_vs_quality.png`` into ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": _atomic_write(out_dir / "report.json", self.to_json() + "\n"),
            "markdown": _atomic_write(out_dir / "report.md", self.to_markdown()),
        }
        paths["plot"] = self.plot(out_dir / "speed_vs_quality.png")
        return paths


def _atomic_write(path: Path, text: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix="." + path.name, dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _threads_text(r: CandidateResult) -> str:
    if not r.threads:
        return "-"
    if r.streams > 1 or (r.micro_batch and r.micro_batch != r.batch):
        return f"{r.threads}[x{r.streams}/{r.micro_batch}]"
    return str(r.threads)


def _quality_text(r: CandidateResult, report: OptimizeReport) -> str:
    if r.score is None:
        return "-"
    change = r.quality_change or 0.0
    return f"{r.score:.4f} ({change:+.4f})"

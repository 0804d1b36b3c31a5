"""Record an optimize as a tracked run (kind ``optimize``): parameters, headline metrics, artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from groundwork.config import Config
from groundwork.engines.optimize.report import OptimizeReport

#: The names an optimize run's artifacts are stored under (the UI reads them by these names).
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PLOT_PNG = "speed_vs_quality.png"
CHOSEN_DIR = "chosen"


def record_report(report: OptimizeReport, config: Config) -> str:
    """Store ``report`` as a finished run of kind ``optimize``; returns the run id.

    Params: the model reference, metric, budget, batch sizes, objective. Metrics: the
    chosen variant's throughput, speedup, latency and quality change, and the
    baseline's. Artifacts, by name: ``report.json`` and ``report.md`` (kind ``report``),
    ``speed_vs_quality.png`` (kind ``plot``) and the chosen variant directory ``chosen``
    (kind ``model``). Tags: ``kind=optimize``, the chosen candidate, and the CPU it was
    measured on (``cpu``, ``cpu_tag``, ``cpu_features``).

    When the model came from the registry, the source version's folder is the run's
    input and the chosen variant becomes the next version of the same model (tagged
    with the CPU and the source version), so lineage runs source -> optimize -> variant;
    ``report.registered`` is then set to the new version's reference.
    """
    from groundwork.core.tracking import start_run

    out = Path(report.out_dir)
    params: dict[str, Any] = {
        "model": report.model.get("reference", ""),
        "metric": report.metric,
        "max_drop": report.max_drop,
        "batch_sizes": ",".join(map(str, report.batch_sizes)),
        "objective": report.objective,
        "candidates": ",".join(r.id for r in report.rows),
    }
    tags = {
        "kind": "optimize",
        "cpu": report.hardware.get("cpu_model", ""),
        "cpu_tag": report.hardware.get("tag", ""),
        "cpu_features": " ".join(report.hardware.get("features", [])),
        "chosen": report.chosen or "",
    }
    metrics: dict[str, float] = {}
    for prefix, row in (("baseline", report.row(report.baseline) if report.baseline else None), ("chosen", report.chosen_row)):
        if row is None:
            continue
        for key in ("throughput", "latency_p50_ms", "latency_p99_ms", "speedup", "score", "quality_change"):
            value = getattr(row, key)
            if value is not None:
                metrics[f"{prefix}.{key}"] = float(value)
    name = f"optimize {report.model.get('name', 'model')}"
    with start_run(name=name, params=params, tags=tags, kind="optimize", config=config, capture_code=False) as run:
        if metrics:
            run.log(metrics)
        for file in (REPORT_JSON, REPORT_MD):
            if (out / file).exists():
                run.log_artifact(out / file, name=file, kind="report")
        if (out / PLOT_PNG).exists():
            run.log_artifact(out / PLOT_PNG, name=PLOT_PNG, kind="plot")
        registry = report.model.get("registry") or {}
        if registry.get("folder"):
            run.log_input(registry["folder"], name=registry["reference"], kind="model")
        chosen = out / "chosen"
        if chosen.is_dir():
            if registry and report.chosen:
                from groundwork.core.registry import log_model

                version = log_model(
                    run,
                    chosen,
                    str(registry["name"]),
                    description=f"{report.chosen} optimized from {registry['reference']} for {tags['cpu']}",
                    tags={
                        "optimized_from": f"{registry['name']}/{registry['version']}",
                        "cpu": tags["cpu_tag"],
                        "cpu_model": tags["cpu"],
                        "candidate": report.chosen,
                    },
                )
                report.registered = version.ref
            run.log_artifact(chosen, name=CHOSEN_DIR, kind="model")
        return str(run.id)

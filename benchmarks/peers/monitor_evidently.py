"""Evidently's side of ``benchmarks/monitor.py``: the data-drift preset on the same rows.

Runs inside the Evidently peer venv (``.bench/evidently-venv``; Evidently 0.7 needs
pandas < 3, which groundwork's venv does not have). It reads the reference and the
current rows once (Parquet, not timed: Evidently is handed DataFrames already in memory,
the most favourable start), prints ``ready``, then answers each ``run`` line on stdin
with one JSON line: the seconds ``Report([DataDriftPreset()]).run(current, reference)``
took, results read back included, and the columns it found drifted.

    .bench/evidently-venv/bin/python benchmarks/peers/monitor_evidently.py REFERENCE.parquet CURRENT.parquet
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def drifted_columns(result: dict[str, Any]) -> tuple[list[str], dict[str, str], int]:
    """The columns whose drift test fired, the method each was judged with, and Evidently's own count."""
    drifted: list[str] = []
    methods: dict[str, str] = {}
    count = -1
    for metric in result["metrics"]:
        config = metric.get("config", {})
        column = config.get("column")
        if config.get("type", "").endswith("DriftedColumnsCount"):
            count = int(metric["value"]["count"])
        if config.get("type", "").endswith("ValueDrift") and column:
            threshold = config.get("threshold")
            method = config.get("method", "")
            score = metric["value"]
            methods[column] = str(method)
            # Evidently's rule: a p-value drifts below its threshold, a distance above it.
            pvalue = "p_value" in str(method) or "test" in str(method).lower()
            if (score < threshold) if pvalue else (score >= threshold):
                drifted.append(column)
    return sorted(drifted), methods, count


def main() -> None:
    reference = pd.read_parquet(sys.argv[1])
    current = pd.read_parquet(sys.argv[2])
    columns = [c for c in reference.columns if c != "label"]
    reference, current = reference[columns], current[columns]
    definition = DataDefinition(numerical_columns=columns)
    print(json.dumps({"ready": True, "rows": len(current), "reference_rows": len(reference)}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            continue
        started = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                                   Dataset.from_pandas(reference, data_definition=definition))
        result = snapshot.dict()
        elapsed = time.perf_counter() - started
        drifted, methods, count = drifted_columns(result)
        print(json.dumps({"seconds": elapsed, "drifted": drifted, "drifted_count": count,
                          "methods": sorted(set(methods.values()))}), flush=True)


if __name__ == "__main__":
    main()

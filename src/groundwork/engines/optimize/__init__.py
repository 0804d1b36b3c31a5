"""Optimize: the fastest variant of a model on this CPU that keeps its quality, chosen by measurement.

    from groundwork.engines.optimize import optimize
    report = optimize("examples/optimize/models.py:digits_cnn", "eval.npz",
                      metric="accuracy", max_drop=0.01, calibration="calib.npz")
    report.chosen                    # e.g. "pruned50-openvino-int8"
    report.row(report.chosen).speedup

Modules: :mod:`.sources` (what the model is), :mod:`.data` (eval/calibration arrays),
:mod:`.metrics`, :mod:`.candidates` (the recipes), :mod:`.export` (ONNX, torch
programs), :mod:`.quantize` (ONNX Runtime and NNCF INT8), :mod:`.prune` (structured
pruning), :mod:`.measure`, :mod:`.select`, :mod:`.report`, :mod:`.record` (tracked
run), :mod:`.pipeline` (the whole search). The ML libraries are imported only when
a step needs them.
"""

from __future__ import annotations

from groundwork.engines.optimize.measure import MeasureSettings
from groundwork.engines.optimize.pipeline import ProgressEvent, optimize, parse_batch_sizes
from groundwork.engines.optimize.record import record_report
from groundwork.engines.optimize.report import CandidateResult, OptimizeReport

__all__ = [
    "CandidateResult",
    "MeasureSettings",
    "OptimizeReport",
    "ProgressEvent",
    "optimize",
    "parse_batch_sizes",
    "record_report",
]

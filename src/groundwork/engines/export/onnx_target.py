"""``--target onnx``: the graph as a plain ONNX file (a chosen opset, FP32/FP16/INT8), checked with ONNX Runtime.

The folder: ``model.onnx``, ``schema.json`` (inputs, outputs, opset, source version),
``example.json`` and, once it passed, ``verification.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.engines.export.precision import convert_opset, graph_opset
from groundwork.engines.export.verify import InputSpec

MODEL_FILE = "model.onnx"


def write_schema(folder: Path, *, fmt: str, model_file: str, source: dict[str, Any], inputs: list[InputSpec],
                 outputs: list[InputSpec], precision: str, example: dict[str, np.ndarray] | None,
                 extra: dict[str, Any] | None = None) -> None:
    """``schema.json`` and ``example.json`` beside an exported model file."""
    schema = {"format": fmt, "model": model_file, "source": source, "precision": precision,
              "inputs": [s.to_dict() for s in inputs], "outputs": [s.to_dict() for s in outputs], **(extra or {})}
    (folder / "schema.json").write_text(json.dumps(schema, indent=1) + "\n")
    rows = {k: v.tolist() for k, v in (example or {}).items()}
    (folder / "example.json").write_text(json.dumps(next(iter(rows.values())) if len(rows) == 1 else rows) + "\n")


def build_onnx(folder: Path, model: bytes, *, opset: int | None, **schema: Any) -> Path:
    """Write ``model.onnx`` (moved to ``opset`` when given) and its schema into ``folder``."""
    if opset is not None:
        model = convert_opset(model, opset)
    path = folder / MODEL_FILE
    path.write_bytes(model)
    write_schema(folder, fmt="groundwork.onnx-export/1", model_file=MODEL_FILE,
                 extra={"opset": graph_opset(model)}, **schema)
    return path

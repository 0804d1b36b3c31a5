"""``--target ort-mobile``: ONNX Runtime's ``.ort`` format (for its mobile and minimal builds), checked with ONNX Runtime.

The conversion is ONNX Runtime's own (``onnxruntime.tools.convert_onnx_models_to_ort``)
in its *runtime* optimization style: basic graph optimizations are applied now, the
hardware-specific ones are recorded in the file and applied on the device, so one file
serves ARM phones and x86 alike. The folder: ``model.ort``, ``required_operators.config``
(for a reduced ONNX Runtime build that has just these operators), ``schema.json``,
``example.json`` and, once it passed, ``verification.json``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from groundwork.engines.export.onnx_target import write_schema
from groundwork.engines.export.precision import convert_opset, graph_opset
from groundwork.errors import InvalidInput

MODEL_FILE = "model.ort"
OPERATORS_FILE = "required_operators.config"


def build_ort(folder: Path, model: bytes, *, opset: int | None, **schema: Any) -> Path:
    """Convert ``model`` to ``folder/model.ort`` (with its operator list) and write its schema."""
    import contextlib
    import io

    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    if opset is not None:
        model = convert_opset(model, opset)
    with tempfile.TemporaryDirectory(prefix="gw-ort-") as tmp:
        source = Path(tmp) / "model.onnx"
        source.write_bytes(model)
        out = Path(tmp) / "out"
        chatter = io.StringIO()
        try:
            with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                convert_onnx_models_to_ort(source, out, optimization_styles=[OptimizationStyle.Runtime])
        except Exception as exc:
            raise InvalidInput(f"ONNX Runtime cannot convert this model to .ort: {str(exc).splitlines()[0][:300]}") from None
        converted = sorted(out.glob("*.ort"))
        configs = sorted(out.glob("*.config"))
        if not converted:
            last = chatter.getvalue().strip().splitlines()[-1:] or ["no output"]
            raise InvalidInput(f"ONNX Runtime wrote no .ort file: {last[0][:300]}")
        shutil.copyfile(converted[0], folder / MODEL_FILE)
        if configs:
            shutil.copyfile(configs[0], folder / OPERATORS_FILE)
    write_schema(folder, fmt="groundwork.ort-export/1", model_file=MODEL_FILE,
                 extra={"opset": graph_opset(model), "optimization": "runtime (basic now, the rest on the device)"},
                 **schema)
    return folder / MODEL_FILE

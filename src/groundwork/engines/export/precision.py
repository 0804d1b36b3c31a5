"""Precision of an exported graph: FP32 as registered, FP16 (onnxconverter-common), INT8 (ONNX Runtime).

* ``fp16``: every float initializer and computation in half precision
  (``onnxconverter_common.float16``), inputs and outputs kept FP32 so callers feed and
  read the same types as before. The converter leaves a ``Cast(to=float)`` feeding
  half-precision nodes typed inconsistently on some graphs (transformers' attention
  masks); those casts are pointed at float16, which is what the converted graph means.
* ``int8``: ONNX Runtime's dynamic quantization, per channel: weights stored as INT8,
  activations quantized on the fly. Needs no calibration data.
* ``opset``: :func:`convert_opset` moves a graph to another ONNX opset.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from groundwork.errors import InvalidInput

PRECISIONS = ("fp32", "fp16", "int8")
_FLOAT, _FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16


def convert_precision(model: bytes, precision: str) -> bytes:
    """``model`` (a serialized ONNX graph) at ``precision``."""
    if precision not in PRECISIONS:
        raise InvalidInput(f"unknown precision {precision!r}", hint=f"use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return model
    if precision == "fp16":
        return _fp16(model)
    return _int8(model)


def _fp16(model: bytes) -> bytes:
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError:
        raise InvalidInput("FP16 export needs onnxconverter-common", hint="pip install 'groundwork[export]'") from None
    proto = onnx.load_from_string(model)
    try:
        half = _quiet(lambda: float16.convert_float_to_float16(proto, keep_io_types=True))
    except Exception as exc:
        raise InvalidInput(f"onnxconverter-common cannot convert this graph to FP16: {str(exc).splitlines()[0]}") from None
    kinds = {vi.name: vi.type.tensor_type.elem_type for vi in half.graph.value_info}
    for node in half.graph.node:
        if node.op_type != "Cast" or kinds.get(node.output[0]) != _FLOAT16:
            continue
        for attribute in node.attribute:
            if attribute.name == "to" and attribute.i == _FLOAT:
                attribute.i = _FLOAT16
    return bytes(half.SerializeToString())


def _int8(model: bytes) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="gw-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(model)
        try:
            _quiet(lambda: quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True))
        except Exception as exc:
            raise InvalidInput(f"ONNX Runtime cannot quantize this graph to INT8: {str(exc).splitlines()[0]}") from None
        return target.read_bytes()


def convert_opset(model: bytes, opset: int) -> bytes:
    """``model`` converted to ONNX opset ``opset`` (the default domain)."""
    import onnx
    from onnx import version_converter

    proto = onnx.load_from_string(model)
    current = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if current == opset:
        return model
    if not 7 <= opset <= onnx.defs.onnx_opset_version():
        raise InvalidInput(f"opset {opset} is out of range",
                           hint=f"this onnx release writes opsets 7..{onnx.defs.onnx_opset_version()}")
    try:
        converted = version_converter.convert_version(proto, opset)
        onnx.checker.check_model(converted)
    except Exception as exc:
        raise InvalidInput(f"cannot convert the graph from opset {current} to {opset}: {str(exc).splitlines()[0][:200]}") from None
    return bytes(converted.SerializeToString())


def graph_opset(model: bytes) -> int | None:
    import onnx

    proto = onnx.load_from_string(model)
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def graph_operators(model: bytes) -> set[tuple[str, str]]:
    """The (domain, op type) pairs a graph uses, subgraphs included."""
    import onnx

    proto = onnx.load_from_string(model)
    found: set[tuple[str, str]] = set()

    def walk(graph: Any) -> None:
        for node in graph.node:
            found.add((node.domain or "ai.onnx", node.op_type))
            for attribute in node.attribute:
                if attribute.g is not None and attribute.g.node:
                    walk(attribute.g)
                for sub in attribute.graphs:
                    walk(sub)

    walk(proto.graph)
    return found


def _quiet(call: Any) -> Any:
    import logging
    import warnings

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call()
    finally:
        logger.setLevel(level)

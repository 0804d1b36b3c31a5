"""INT8 post-training quantization of an ONNX model: ONNX Runtime (dynamic, static QDQ) and NNCF.

Static schemes (ONNX Runtime QDQ, NNCF) learn activation ranges from calibration
batches; dynamic quantization computes them per request and needs no data.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.engines.optimize.data import Dataset

#: Rows used to calibrate (more costs time; beyond a few hundred barely helps).
CALIBRATION_ROWS = 128


def calibration_feeds(data: Dataset, rows: int = CALIBRATION_ROWS) -> list[dict[str, np.ndarray]]:
    """One single-row feed per calibration example (the first ``rows`` of them)."""
    n = min(rows, len(data))
    return [data.rows(i, i + 1) for i in range(n)]


def is_transformer(onnx_path: Path) -> bool:
    """Whether the graph has attention (a Softmax inside it): NNCF then keeps sensitive ops in float."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(node.op_type in ("Softmax", "Attention", "MultiHeadAttention") for node in model.graph.node)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No log lines, warnings or progress bars from the quantizers (they would garble our output)."""
    for name in ("nncf", "onnxruntime"):
        logging.getLogger(name).setLevel(logging.ERROR)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ONNX Runtime's quantizer logs through the root logger
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def ort_dynamic_int8(onnx_path: Path, out_path: Path) -> Path:
    """Weights INT8 ahead of time, activations quantized per request (MatMul/Gemm)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            str(onnx_path),
            str(out_path),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
    return out_path


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._feeds = list(feeds)
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self._feeds):
            return None
        self._i += 1
        return self._feeds[self._i - 1]

    def rewind(self) -> None:
        self._i = 0


def ort_static_qdq(onnx_path: Path, out_path: Path, calibration: Dataset, *, reduce_range: bool | None = None) -> Path:
    """Static INT8 in QDQ format: per-channel S8 weights, U8 activations, MinMax ranges.

    ``reduce_range`` (7-bit weights) defaults to on where the CPU has no VNNI: ONNX Runtime's
    U8S8 kernels for AVX2/AVX-512 without VNNI add pairs of products in 16 bits, which
    saturates with full-range weights (measured here on an AMD EPYC without VNNI: cosine to
    FP32 0.981 with full range).
    """
    if reduce_range is None:
        from groundwork.engines.optimize.hardware import detect

        reduce_range = not detect().has_vnni
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = onnx_path
    prepared = out_path.with_name(out_path.stem + ".pre.onnx")
    try:
        with _quiet():
            quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=False)
        source = prepared
    except Exception:  # pre-processing is an optimization; quantize the raw graph instead
        source = onnx_path

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.inner = _Reader(calibration_feeds(calibration))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return self.inner.get_next()

    with _quiet():
        quantize_static(
            str(source),
            str(out_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            reduce_range=reduce_range,
        )
    if prepared.exists():
        prepared.unlink()
    return out_path


def nncf_int8(model_path: Path, out_xml: Path, calibration: Dataset, *, transformer: bool | None = None) -> Path:
    """NNCF post-training quantization to an OpenVINO IR (``.xml`` + ``.bin``)."""
    import nncf
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(model_path))
    if transformer is None:
        transformer = model_path.suffix == ".onnx" and is_transformer(model_path)
    feeds = calibration_feeds(calibration)
    kwargs: dict[str, Any] = {"subset_size": len(feeds)}
    if transformer:
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    with _quiet():
        quantized = nncf.quantize(model, nncf.Dataset(feeds), **kwargs)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return out_xml


def openvino_ir(onnx_path: Path, out_xml: Path) -> Path:
    """The ONNX model converted to OpenVINO IR (FP32 weights)."""
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    ov.save_model(model, str(out_xml), compress_to_fp16=False)
    return out_xml

"""--target onnx and ort-mobile: checked with ONNX Runtime against the source model, recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _export_helpers import Models, agreement_of, export_count

from groundwork.engines.export import export
from groundwork.errors import InvalidInput


@pytest.mark.parametrize(("precision", "opset"), [("fp32", 18), ("int8", None)])
def test_onnx_target_at_an_opset(precision: str, opset: int | None, models: Models, tmp_path: Path) -> None:
    before = export_count(models.config, "digits")
    out = tmp_path / "onnx"
    result = export("digits@production", target="onnx", precision=precision, opset=opset, out=out,
                    data=str(models.digits_data), config=models.config, repeat=3)
    assert result.passed and agreement_of(result) >= 0.99
    assert result.verification["runtime"]["name"].startswith("onnxruntime ")
    assert sorted(p.name for p in out.iterdir()) == ["example.json", "model.onnx", "schema.json", "verification.json"]
    model = onnx.load(out / "model.onnx")
    if opset:
        assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == opset
        assert json.loads((out / "schema.json").read_text())["opset"] == opset
    x_test, y_test = models.digits_test
    labels = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x_test})[0]
    assert float(np.mean(labels == y_test)) > 0.85
    assert export_count(models.config, "digits") == before + 1


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_ort_mobile_target(precision: str, models: Models, tmp_path: Path) -> None:
    out = tmp_path / "mobile"
    result = export("digits@production", target="ort-mobile", precision=precision, out=out,
                    data=str(models.digits_data), config=models.config, repeat=3)
    assert result.passed and agreement_of(result) >= 0.99
    assert (out / "model.ort").read_bytes()[4:8] == b"ORTM"  # ONNX Runtime's flatbuffer format
    assert (out / "required_operators.config").is_file()
    session = ort.InferenceSession(str(out / "model.ort"), providers=["CPUExecutionProvider"])
    x_test, _ = models.digits_test
    assert session.run(None, {"input": x_test[:4]})[0].shape == (4,)
    assert result.record is not None and result.record.target == "ort-mobile"


def test_options_that_do_not_fit_the_target(models: Models, tmp_path: Path) -> None:
    import groundwork as gw

    assert gw.export is export and "export" in gw.__all__
    with pytest.raises(InvalidInput, match="--opset applies to --target onnx and ort-mobile"):
        export("digits@production", target="web", opset=17, out=tmp_path / "a", config=models.config)
    with pytest.raises(InvalidInput, match="apply to --target web only"):
        export("digits@production", target="onnx", webgpu=True, out=tmp_path / "b", config=models.config)
    with pytest.raises(InvalidInput, match="unknown export target 'tflite'"):
        export("digits@production", target="tflite", out=tmp_path / "c", config=models.config)
    assert not any((tmp_path / n).exists() for n in "abc")

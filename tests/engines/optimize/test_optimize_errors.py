"""Bad input: each is one clear error (a GroundworkError with a message that names the problem)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optimize_testlib import Digits

from groundwork.engines.optimize import MeasureSettings, optimize
from groundwork.engines.optimize.data import load_data
from groundwork.engines.optimize.metrics import get_metric
from groundwork.engines.optimize.sources import resolve_model
from groundwork.errors import InvalidInput, ModelNotFound

torch = pytest.importorskip("torch")


def test_unknown_metric(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown metric 'f1'") as info:
        optimize(trained_cnn, digits.eval_data(), metric="f1", out_dir=tmp_path)
    assert "accuracy, cosine, mse" in (info.value.hint or "")
    assert not any(tmp_path.iterdir()), "nothing is written for a bad argument"


def test_metric_reference_that_does_not_import() -> None:
    with pytest.raises(InvalidInput, match="module 'no_such_module_xyz' not found"):
        get_metric("no_such_module_xyz:score")


def test_eval_data_of_the_wrong_shape(trained_cnn: Any, tmp_path: Path) -> None:
    bad = {"x": np.zeros((10, 1, 12, 12), dtype=np.float32)}
    with pytest.raises(InvalidInput, match=r"eval data does not fit the model: rows of shape x \(1, 12, 12\)"):
        optimize(trained_cnn, bad, out_dir=tmp_path, settings=MeasureSettings.quick())


def test_eval_data_of_the_wrong_rank_for_an_onnx_model(trained_cnn: Any, tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    torch.onnx.export(
        trained_cnn, (torch.zeros(2, 1, 8, 8),), str(path), input_names=["x"], dynamic_axes={"x": {0: "b"}}, dynamo=False
    )
    with pytest.raises(InvalidInput, match="expects rank 4"):
        optimize(str(path), {"x": np.zeros((4, 64), dtype=np.float32)}, out_dir=tmp_path / "out")


def test_calibration_rows_must_match_eval_rows(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="calibration input 'x' has rows of shape"):
        optimize(
            trained_cnn, digits.eval_data(), calibration={"x": np.zeros((4, 1, 4, 4), np.float32)}, out_dir=tmp_path
        )


def test_static_int8_requested_without_calibration(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    for name in ("ort-int8-static", "openvino-int8"):
        with pytest.raises(InvalidInput, match=f"static INT8 candidate\\(s\\) {name} need calibration data") as info:
            optimize(trained_cnn, digits.eval_data(), candidates=[name], out_dir=tmp_path)
        assert "--calibration" in (info.value.hint or "")


def test_unknown_candidate(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown candidate 'tensorrt'"):
        optimize(trained_cnn, digits.eval_data(), candidates=["tensorrt"], out_dir=tmp_path)


@pytest.mark.parametrize("reference", ["no-such-model@production", "no-such-model/3"])
def test_registry_reference_that_does_not_exist(reference: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFound, match="no-such-model"):
        resolve_model(reference)


def test_model_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="does not exist"):
        resolve_model(str(tmp_path / "missing.onnx"))


def test_factory_that_returns_no_module(tmp_path: Path) -> None:
    (tmp_path / "factories.py").write_text("def make():\n    return 42\n")
    with pytest.raises(InvalidInput, match="returned a int, not a torch.nn.Module"):
        resolve_model(f"{tmp_path / 'factories.py'}:make")


def test_data_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_data(str(tmp_path / "nope.npz"))
    with pytest.raises(InvalidInput, match="same, non-zero number of rows"):
        load_data({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))})
    with pytest.raises(InvalidInput, match="labels of shape"):
        load_data({"a": np.zeros((3, 2)), "labels": np.zeros(5)})
    with pytest.raises(InvalidInput, match="cannot read eval data"):
        load_data("data.csv")


def test_bad_numbers(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="max drop"):
        optimize(trained_cnn, digits.eval_data(), max_drop=-1, out_dir=tmp_path)
    with pytest.raises(InvalidInput, match="batch sizes"):
        optimize(trained_cnn, digits.eval_data(), batch_sizes="1,x", out_dir=tmp_path)
    with pytest.raises(InvalidInput, match="sparsity"):
        optimize(trained_cnn, digits.eval_data(), sparsities=[1.5], out_dir=tmp_path)

"""Runtime sessions: every engine reproduces the PyTorch FP32 outputs within its stated tolerance.

Tolerances, on real inputs (scikit-learn digits through a small CNN):

* FP32 engines (PyTorch, ONNX Runtime, OpenVINO FP32): close elementwise (1e-4 relative to the output scale);
* BF16 (PyTorch autocast, OpenVINO BF16): mean cosine >= 0.999 and top-1 agreement >= 97%;
* INT8 (ONNX Runtime dynamic/static, OpenVINO NNCF): mean cosine >= 0.99 and top-1 agreement >= 95%.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from groundwork.engines.optimize.data import Dataset
from groundwork.engines.optimize.export import export_onnx, save_torch_module
from groundwork.engines.optimize.hardware import detect
from groundwork.engines.optimize.quantize import nncf_int8, openvino_ir, ort_dynamic_int8, ort_static_qdq
from groundwork.engines.runtime import (
    TensorSpec,
    VariantManifest,
    load_session,
    read_manifest,
    write_manifest,
)
from groundwork.errors import InvalidInput

torch = pytest.importorskip("torch")
nn = torch.nn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.head = nn.Linear(32 * 16, 10)

    def forward(self, x: Any) -> Any:
        return self.head(torch.flatten(self.features(x), 1))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from sklearn.datasets import load_digits

    images = (load_digits().images / 16.0).astype(np.float32)[:, None]
    torch.manual_seed(0)
    model = SmallCNN().eval()
    with torch.no_grad():  # make BatchNorm statistics realistic
        model.features[1].running_mean.copy_(torch.rand(16) * 0.2)
        model.features[1].running_var.copy_(torch.rand(16) + 0.5)
    root = tmp_path_factory.mktemp("variants")
    onnx_path, outputs = export_onnx(model, (torch.from_numpy(images[:2]),), ["x"], root / "src.onnx")
    with torch.no_grad():
        expected = model(torch.from_numpy(images[:300])).numpy()
    return {
        "model": model,
        "images": images,
        "onnx": onnx_path,
        "outputs": tuple(outputs),
        "root": root,
        "expected": expected,
        "calibration": Dataset({"x": images[1000:1128]}),
    }


SPEC = (TensorSpec("x", "float32", (-1, 1, 8, 8)),)


def make_variant(setup: dict[str, Any], name: str) -> Path:
    """A variant directory for ``name`` (engine/precision), built from the same source model."""
    directory = setup["root"] / name
    if directory.exists():
        return directory
    directory.mkdir()
    engine, precision = name.rsplit("-", 1)
    files: dict[str, str]
    if engine in ("torch", "torch-compile"):
        files = {"model": save_torch_module(setup["model"], (torch.from_numpy(setup["images"][:2]),), directory)}
    elif engine == "onnxruntime":
        target = directory / "model.onnx"
        if precision == "int8dyn":
            ort_dynamic_int8(setup["onnx"], target)
        elif precision == "int8":
            ort_static_qdq(setup["onnx"], target, setup["calibration"])
        else:
            target.write_bytes(setup["onnx"].read_bytes())
        files = {"model": "model.onnx"}
    else:
        if precision == "int8":
            nncf_int8(setup["onnx"], directory / "model.xml", setup["calibration"])
        else:
            openvino_ir(setup["onnx"], directory / "model.xml")
        files = {"model": "model.xml", "weights": "model.bin"}
    manifest = VariantManifest(
        engine=engine,
        precision="int8" if precision.startswith("int8") else precision,
        inputs=SPEC,
        outputs=setup["outputs"],
        files=files,
        threads=2,
        batch_size=64,
    )
    write_manifest(directory, manifest)
    return directory


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(1) == b.argmax(1)))


FP32 = ["torch-fp32", "onnxruntime-fp32", "openvino-fp32"]
BF16 = ["torch-bf16", "openvino-bf16"]
INT8 = ["onnxruntime-int8dyn", "onnxruntime-int8", "openvino-int8"]


@pytest.mark.parametrize("name", FP32 + BF16 + INT8)
def test_engine_matches_baseline_within_tolerance(setup: dict[str, Any], name: str) -> None:
    if name in BF16 and not detect().has_bf16:
        pytest.skip("this CPU has no BF16 instructions")
    session = load_session(make_variant(setup, name))
    (got,) = session.run({"x": setup["images"][:300]})
    session.close()
    expected = setup["expected"]
    assert got.shape == expected.shape and got.dtype == np.float32
    if name in FP32:
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)
    elif name in BF16:
        assert cosine(got, expected) >= 0.999 and agreement(got, expected) >= 0.97
    else:
        assert cosine(got, expected) >= 0.99 and agreement(got, expected) >= 0.95


@pytest.mark.slow
def test_torch_compile_matches_baseline(setup: dict[str, Any]) -> None:
    session = load_session(make_variant(setup, "torch-compile-fp32"))
    (got,) = session.run({"x": setup["images"][:64]})
    np.testing.assert_allclose(got, setup["expected"][:64], rtol=1e-4, atol=1e-4 * float(np.abs(got).max()))


@pytest.mark.parametrize("name", ["onnxruntime-fp32", "openvino-fp32"])
def test_streams_split_large_requests_without_changing_results(setup: dict[str, Any], name: str) -> None:
    directory = make_variant(setup, name)
    whole = load_session(directory, streams=1, batch_size=1000)
    split = load_session(directory, streams=2, batch_size=7)
    x = {"x": setup["images"][:50]}
    (a,), (b,) = whole.run(x), split.run(x)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    (one,) = split.run({"x": setup["images"][:1]})  # a single row goes to the one-stream engine
    np.testing.assert_allclose(one, a[:1], rtol=1e-5, atol=1e-5)
    whole.close()
    split.close()


def test_manifest_is_self_describing(setup: dict[str, Any]) -> None:
    directory = make_variant(setup, "openvino-fp32")
    data = json.loads((directory / "variant.json").read_text())
    assert data["engine"] == "openvino" and data["precision"] == "fp32"
    assert data["inputs"] == [{"name": "x", "dtype": "float32", "shape": [-1, 1, 8, 8]}]
    assert set(data["files"]) == {"model", "weights"}
    assert read_manifest(directory).threads == 2


def test_bad_variant_directories(tmp_path: Path, setup: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="has no variant.json"):
        load_session(tmp_path)
    manifest = VariantManifest("onnxruntime", "fp32", SPEC, ("y",), {"model": "gone.onnx"})
    write_manifest(tmp_path, manifest)
    with pytest.raises(InvalidInput, match="'gone.onnx', which is missing"):
        load_session(tmp_path)
    with pytest.raises(InvalidInput, match="unknown engine 'tensorrt'"):
        VariantManifest("tensorrt", "fp32", SPEC, ("y",), {})


def test_requests_are_checked(setup: dict[str, Any]) -> None:
    session = load_session(make_variant(setup, "onnxruntime-fp32"))
    with pytest.raises(InvalidInput, match=r"missing model input\(s\) \['x'\]"):
        session.run({"image": setup["images"][:2]})
    with pytest.raises(InvalidInput, match=r"expects \(batch, 1, 8, 8\)"):
        session.run({"x": np.zeros((2, 1, 9, 9), np.float32)})
    (out,) = session.run({"x": setup["images"][:3].astype(np.float64)})  # cast to the declared dtype
    assert out.shape == (3, 10)
    session.close()

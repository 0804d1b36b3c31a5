"""Model flavors: save, ONNX conversion beside the native form, and load in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.errors import InvalidInput, UnprocessableInput


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))


@pytest.fixture(scope="module")
def digits() -> tuple[Any, Any]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x, y


def log(config: Config, model: Any, name: str, **kwargs: Any) -> gw.ModelVersion:
    with gw.start_run(name="train", config=config, capture_code=False) as run:
        version: gw.ModelVersion = run.log_model(model, name, **kwargs)
    return version


def run_python(code: str, config: Config, cwd: Path | None = None) -> str:
    env = {**os.environ, **config.child_environ()}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sklearn_keeps_a_checked_onnx_form_that_predicts_like_the_estimator(config: Config, digits: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = digits
    model = LogisticRegression(max_iter=2000).fit(x, y)
    version = log(config, model, "digits", example=x[:50])
    assert version.onnx_digest and version.info["onnx"] == "model.onnx"
    onnx = gw.load_model("digits", config=config)
    native = gw.load_model("digits", backend="native", config=config)
    assert (onnx.backend, native.backend) == ("onnxruntime", "sklearn")
    np.testing.assert_array_equal(onnx.predict(x), model.predict(x))
    np.testing.assert_array_equal(native.predict(x), model.predict(x))
    np.testing.assert_array_equal(onnx.predict(x[:3].tolist()), model.predict(x[:3]))  # nested lists too
    # A fresh process (no estimator object around) loads and predicts the same.
    out = run_python("""
        import json, groundwork as gw
        from sklearn.datasets import load_digits
        x, _ = load_digits(return_X_y=True)
        print(json.dumps(gw.load_model("digits/1").predict(x[:20]).tolist()))
    """, config)
    assert json.loads(out) == model.predict(x[:20]).tolist()


def test_sklearn_table_models_stay_native_and_take_dataframes_or_columns(config: Config) -> None:
    import pandas as pd
    from sklearn.tree import DecisionTreeRegressor

    frame = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    model = DecisionTreeRegressor(random_state=0).fit(frame, frame["a"] * 2 + frame["b"])
    version = log(config, model, "table", example=frame.head(5))
    assert version.signature is not None and version.signature.columnar
    assert version.onnx_digest is None and "one numeric tensor" in version.info["onnx_note"]
    predictor = gw.load_model("table", config=config)
    assert predictor.backend == "sklearn"
    expected = model.predict(frame.head(4))
    np.testing.assert_allclose(predictor.predict(frame.head(4)), expected)
    np.testing.assert_allclose(predictor.predict({"a": [0.0, 1.0, 2.0, 3.0], "b": [0.0, 1.0, 2.0, 0.0]}), expected)
    with pytest.raises(InvalidInput, match="has no ONNX form"):
        gw.load_model("table", backend="onnx", config=config)


def test_pytorch_module_loads_in_a_fresh_process_without_its_class(config: Config, tmp_path: Path) -> None:
    # The module's class lives only in the training script's __main__.
    run_python("""
        import numpy as np, torch, groundwork as gw
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.a = torch.nn.Linear(64, 16)
                self.b = torch.nn.Linear(16, 10)
            def forward(self, x):
                return self.b(torch.relu(self.a(x)))
        torch.manual_seed(0)
        net = Net()
        with gw.start_run(name="train", capture_code=False) as run:
            v = run.log_model(net, "mlp", example=np.random.default_rng(0).normal(size=(4, 64)).astype("float32"))
        assert v.info["format"] == "torch.export", v.info
        x = np.random.default_rng(1).normal(size=(7, 64)).astype("float32")
        np.save("expected.npy", net(torch.from_numpy(x)).detach().numpy())
    """, config, cwd=tmp_path)
    version = gw.get_model_version("mlp", config=config)
    assert version.flavor == "pytorch" and version.onnx_digest
    assert version.signature is not None and version.signature.describe() == "float32[N, 64] -> float32[N, 10]"
    out = run_python("""
        import json, numpy as np, groundwork as gw
        x = np.random.default_rng(1).normal(size=(7, 64)).astype("float32")
        native = gw.load_model("mlp", backend="native")
        onnx = gw.load_model("mlp")
        print(json.dumps([native.backend, onnx.backend, native.predict(x).tolist(), onnx.predict(x).tolist()]))
    """, config, cwd=tmp_path)
    native_backend, onnx_backend, native_out, onnx_out = json.loads(out)
    assert (native_backend, onnx_backend) == ("torch", "onnxruntime")
    np.testing.assert_allclose(native_out, np.load(tmp_path / "expected.npy"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(onnx_out, native_out, rtol=1e-4, atol=1e-5)


def test_pytorch_without_an_example_is_pickled_whole_and_says_so(config: Config) -> None:
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(4, 2))
    version = log(config, net, "bare")
    assert version.info["format"] == "pickle" and version.onnx_digest is None
    assert "needs the module's class importable" in version.info["native_note"]
    predictor = gw.load_model("bare", config=config)  # torch.nn.Sequential is importable
    x = np.ones((3, 4), dtype=np.float32)
    np.testing.assert_allclose(predictor.predict(x), net(torch.from_numpy(x)).detach().numpy(), rtol=1e-6)
    with pytest.raises(UnprocessableInput, match="rejected the inputs"):
        predictor.predict(np.ones((3, 5), dtype=np.float32))


def test_onnx_files_are_logged_as_is(config: Config, digits: Any, tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = digits
    model = LogisticRegression(max_iter=2000).fit(x, y)
    path = tmp_path / "digits.onnx"
    path.write_bytes(to_onnx(model, x[:1].astype(np.float32), options={"zipmap": False}).SerializeToString())
    version = log(config, str(path), "from-file", example=x[:5].astype(np.float32))
    assert version.flavor == "onnx" and version.onnx_digest
    assert version.signature is not None and version.signature.inputs[0].shape == (-1, 64)
    predictor = gw.load_model("from-file", config=config)
    np.testing.assert_array_equal(predictor.predict(x), model.predict(x))
    with pytest.raises(InvalidInput, match="no such ONNX file"):
        log(config, str(tmp_path / "missing.onnx"), "nope")


def test_optimized_variant_folders_load_through_the_runtime(config: Config, digits: Any, tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    from groundwork.engines.flavors import optimized
    from groundwork.engines.runtime import TensorSpec, VariantManifest, write_manifest

    x, y = digits
    model = LogisticRegression(max_iter=2000).fit(x, y)
    variant = tmp_path / "chosen"
    variant.mkdir()
    (variant / "model.onnx").write_bytes(
        to_onnx(model, x[:1].astype(np.float32), options={"zipmap": False}).SerializeToString())
    write_manifest(variant, VariantManifest(
        engine="onnxruntime", precision="fp32", inputs=(TensorSpec("X", "float32", (-1, 64)),),
        outputs=("label", "probabilities"), files={"model": "model.onnx"}, name="digits-ort-fp32"))
    version = log(config, variant, "fast", example=x[:4])
    assert version.flavor == "optimized" and version.info["engine"] == "onnxruntime"
    assert version.signature is not None and version.signature.describe() == "float32[N, 64] -> int64[N]"
    predictor = gw.load_model("fast", config=config)
    assert predictor.backend == "onnxruntime"
    np.testing.assert_array_equal(predictor.predict(x), model.predict(x))
    assert not optimized.FLAVOR.accepts(tmp_path)  # a folder without variant.json is not a variant

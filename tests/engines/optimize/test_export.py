"""ONNX export of a registered PyTorch version (a ``torch.export`` program, which refuses ``train()``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.engines.optimize.export import export_onnx
from groundwork.engines.optimize.sources import resolve_registry_reference

torch = pytest.importorskip("torch")


def test_a_registered_pytorch_version_exports_to_onnx(workspace: Config, tmp_path: Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.BatchNorm3d(4), torch.nn.ReLU(),
                              torch.nn.Conv3d(4, 2, 1)).eval()
    x = np.random.default_rng(0).normal(size=(2, 1, 8, 8, 8)).astype(np.float32)
    with gw.start_run(name="train", config=workspace, capture_code=False) as run:
        run.log_model(net, "seg3d", example=x[:1])
    module = resolve_registry_reference("seg3d/1", workspace).module
    with pytest.raises(NotImplementedError):
        module.train(False)  # what torch.onnx.export would call
    path, outputs = export_onnx(module, (torch.from_numpy(x),), ["x"], tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(outputs, {"x": x})
    with torch.no_grad():
        np.testing.assert_allclose(y, net(torch.from_numpy(x)).numpy(), atol=1e-5)

"""Structured pruning removes whole units: fewer parameters and FLOPs, and the result runs everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optimize_testlib import Digits, accuracy_of, token_data

from groundwork.engines.optimize.data import Dataset
from groundwork.engines.optimize.export import export_onnx
from groundwork.engines.optimize.prune import count_flops, count_params, find_chains, prune
from groundwork.engines.optimize.quantize import nncf_int8, openvino_ir
from groundwork.engines.runtime import TensorSpec, VariantManifest, session_for
from groundwork.errors import NotPrunable

torch = pytest.importorskip("torch")
nn = torch.nn


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def test_cnn_pruning_shrinks_the_dense_model_and_keeps_accuracy(trained_cnn: Any, digits: Digits) -> None:
    calib = [(torch.from_numpy(digits.x_train[i : i + 32]),) for i in range(0, 128, 32)]
    chains = find_chains(trained_cnn, calib[0])
    assert [(c.producer, c.consumer) for c in chains] == [("conv1", "conv2"), ("conv2", "fc1"), ("fc1", "fc2")]
    result = prune(trained_cnn, 0.25, calib)
    pruned = result.module
    assert (pruned.conv1.out_channels, pruned.conv2.in_channels) == (6, 6)
    assert (pruned.conv2.out_channels, pruned.fc1.in_features) == (12, 12 * 16)
    assert (pruned.fc1.out_features, pruned.fc2.in_features) == (24, 24)
    assert pruned.bn2.num_features == 12
    assert result.params_after < result.params_before == count_params(trained_cnn)
    assert result.flops_after < 0.8 * result.flops_before
    assert result.flops_before == count_flops(trained_cnn, (torch.zeros(1, 1, 8, 8),))
    assert trained_cnn.conv1.out_channels == 8, "the source module is left untouched"
    assert accuracy_of(pruned, digits) >= accuracy_of(trained_cnn, digits) - 0.05


def test_reconstruction_beats_plain_removal(trained_cnn: Any, digits: Digits) -> None:
    calib = [(torch.from_numpy(digits.x_train[i : i + 64]),) for i in range(0, 256, 64)]
    x = torch.from_numpy(digits.x_test)
    with torch.no_grad():
        ref = trained_cnn(x).numpy()
        plain = prune(trained_cnn, 0.5, calib, reconstruct=False).module(x).numpy()
        fitted = prune(trained_cnn, 0.5, calib, reconstruct=True).module(x).numpy()
    assert _cos(fitted, ref) > _cos(plain, ref)


def test_residual_channels_are_left_alone() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.head = nn.Linear(8, 4)

        def forward(self, x: Any) -> Any:
            x = torch.relu(self.stem(x))
            y = self.conv2(torch.relu(self.bn1(self.conv1(x))))
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(torch.relu(x + y), 1), 1))

    model = Block().eval()
    calib = [(torch.randn(4, 3, 8, 8),)]
    assert [(c.producer, c.consumer) for c in find_chains(model, calib[0])] == [("conv1", "conv2")]
    pruned = prune(model, 0.5, calib).module
    assert pruned.stem.out_channels == 8 and pruned.conv2.out_channels == 8
    assert pruned.conv1.out_channels == 4 and pruned.bn1.num_features == 4


def test_model_without_prunable_structure() -> None:
    with pytest.raises(NotPrunable, match="no prunable structure"):
        prune(nn.Sequential(nn.Linear(4, 3)), 0.5, [(torch.randn(8, 4),)])


def test_bert_pruning_removes_heads_and_hidden_units(tiny_bert: Any) -> None:
    data = token_data(32, seed=0)
    calib = [(torch.from_numpy(data["input_ids"][i : i + 16]), torch.from_numpy(data["attention_mask"][i : i + 16])) for i in (0, 16)]
    result = prune(tiny_bert, 0.5, calib)
    layer = result.module.encoder.encoder.layer[0]
    assert layer.attention.self.query.out_features == 16  # 4 -> 2 heads of 8
    assert layer.attention.output.dense.in_features == 16
    assert layer.intermediate.dense.out_features == 32 and layer.output.dense.in_features == 32
    assert result.params_after < result.params_before
    assert result.flops_after < 0.75 * result.flops_before
    assert any("attention heads" in s for s in result.structures)
    held_out = token_data(16, seed=1)
    args = (torch.from_numpy(held_out["input_ids"]), torch.from_numpy(held_out["attention_mask"]))
    with torch.no_grad():
        assert _cos(result.module(*args).numpy(), tiny_bert(*args).numpy()) > 0.9


def test_train_callable_runs_after_pruning(trained_cnn: Any, digits: Digits) -> None:
    calls: list[tuple[Any, int]] = []

    def train(model: Any, steps: int) -> None:
        calls.append((model, steps))
        assert model.training

    result = prune(trained_cnn, 0.25, [(torch.from_numpy(digits.x_train[:32]),)], train=train, train_steps=7)
    assert calls == [(result.module, 7)] and not result.module.training


@pytest.mark.parametrize("which", ["cnn", "bert"])
def test_pruned_model_runs_on_every_engine(which: str, trained_cnn: Any, tiny_bert: Any, digits: Digits, tmp_path: Path) -> None:
    if which == "cnn":
        rows = {"x": digits.x_train[:64]}
        model = trained_cnn
    else:
        rows = token_data(64, seed=2)
        model = tiny_bert
    names = list(rows)

    def args(d: dict[str, np.ndarray]) -> tuple[Any, ...]:
        return tuple(torch.from_numpy(d[n]) for n in names)

    calib = Dataset(rows)
    result = prune(model, 0.5, [args(calib.rows(0, 32)), args(calib.rows(32, 64))])
    pruned = result.module
    with torch.no_grad():
        expected = pruned(*args(calib.rows(0, 24))).numpy()
    onnx_path, outputs = export_onnx(pruned, args(calib.rows(0, 2)), names, tmp_path / "pruned.onnx")
    specs = tuple(TensorSpec(n, str(rows[n].dtype), (-1, *rows[n].shape[1:])) for n in names)
    variants = {
        "torch": ("torch", "fp32", {}, 1e-5),
        "onnxruntime": ("onnxruntime", "fp32", {"model": "pruned.onnx"}, 1e-4),
        "openvino": ("openvino", "fp32", {"model": "ov.xml"}, 1e-3),
        "openvino-int8": ("openvino", "int8", {"model": "q.xml"}, None),
    }
    openvino_ir(onnx_path, tmp_path / "ov.xml")
    nncf_int8(onnx_path, tmp_path / "q.xml", calib)
    for name, (engine, precision, files, tol) in variants.items():
        manifest = VariantManifest(engine, precision, specs, tuple(outputs), files, threads=2, batch_size=64)
        session = session_for(manifest, tmp_path, module=pruned if engine == "torch" else None)
        (got,) = session.run(calib.rows(0, 24))
        session.close()
        assert got.shape == expected.shape, name
        if tol is None:
            assert _cos(got, expected) > 0.98, name
        else:
            np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * max(1.0, float(np.abs(expected).max())), err_msg=name)


class KeywordSpotter(nn.Module):
    """A Conv1d keyword spotter over 40 mel bands (what optimize once refused as NotPrunable)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(40, 32, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(32)
        self.pool = nn.MaxPool1d(2)
        self.conv2 = nn.Conv1d(32, 48, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(48)
        self.head = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(48, 10))

    def forward(self, x: Any) -> Any:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        return self.head(torch.relu(self.bn2(self.conv2(x))))


class Volume3d(nn.Module):
    """Conv3d -> InstanceNorm3d (affine) -> PReLU per channel -> Conv3d, as in MONAI's networks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(1, 16, 3, padding=1)
        self.norm = nn.InstanceNorm3d(16, affine=True)
        self.act = nn.PReLU(16)
        self.conv2 = nn.Conv3d(16, 2, 3, padding=1)

    def forward(self, x: Any) -> Any:
        return self.conv2(self.act(self.norm(self.conv1(x))))


@pytest.mark.parametrize(("module", "shape"), [(KeywordSpotter, (16, 40, 50)), (Volume3d, (4, 1, 12, 12, 12))])
def test_conv1d_and_conv3d_models_are_pruned(module: Any, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = module().eval()
    with torch.no_grad():  # non-trivial norm statistics and per-channel slopes
        for sub in model.modules():
            if isinstance(sub, nn.BatchNorm1d):
                sub.running_mean.uniform_(-0.5, 0.5)
                sub.running_var.uniform_(0.5, 2.0)
            if isinstance(sub, nn.PReLU):
                sub.weight.uniform_(0.05, 0.3)
    calib = [(torch.randn(*shape),) for _ in range(3)]
    x = torch.randn(*shape)
    plain = prune(model, 0.5, calib, reconstruct=False)
    fitted = prune(model, 0.5, calib)
    assert fitted.structures and fitted.params_after < fitted.params_before
    assert fitted.flops_after < 0.8 * fitted.flops_before
    pruned = fitted.module
    if module is KeywordSpotter:
        assert (pruned.conv1.out_channels, pruned.bn1.num_features, pruned.conv2.in_channels) == (16, 16, 16)
        assert (pruned.conv2.out_channels, pruned.head[2].in_features) == (24, 24)
    else:
        assert (pruned.conv1.out_channels, pruned.norm.num_features, pruned.act.num_parameters) == (8, 8, 8)
        assert pruned.conv2.in_channels == 8 and pruned.norm.weight.shape == (8,)
    with torch.no_grad():
        ref = model(x).numpy()
        assert pruned(x).shape == model(x).shape
        assert _cos(fitted.module(x).numpy(), ref) >= _cos(plain.module(x).numpy(), ref)
    assert model.conv1.out_channels == (32 if module is KeywordSpotter else 16), "the source is left untouched"

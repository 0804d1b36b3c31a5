"""optimize(): the choice respects the quality budget, skips are explained, the output is complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optimize_testlib import Digits, TinyCNN

from groundwork.engines.optimize import MeasureSettings, OptimizeReport, optimize
from groundwork.engines.optimize.select import within_budget
from groundwork.engines.runtime import load_session

torch = pytest.importorskip("torch")

QUICK = MeasureSettings.quick()


def run(model: Any, digits: Digits, tmp_path: Path, **kwargs: Any) -> OptimizeReport:
    kwargs.setdefault("metric", "accuracy")
    kwargs.setdefault("batch_sizes", [1, 16])
    kwargs.setdefault("settings", QUICK)
    eval_data = kwargs.pop("eval_data", digits.eval_data())
    return optimize(model, eval_data, out_dir=tmp_path / "out", **kwargs)


def test_choice_is_fastest_within_budget_and_output_is_complete(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    report = run(
        trained_cnn,
        digits,
        tmp_path,
        max_drop=0.01,
        calibration=digits.calibration(),
        candidates=["torch", "ort", "openvino", "pruned"],
        sparsities=[0.25],
    )
    assert report.baseline == "torch-fp32"
    assert report.baseline_score is not None and report.baseline_score > 0.85
    chosen = report.chosen_row
    assert chosen is not None and within_budget(chosen, 0.01)
    eligible = [r for r in report.rows if r.status == "ok" and r.measured and within_budget(r, 0.01)]
    assert chosen.throughput == max(r.throughput or 0.0 for r in eligible)
    # the leaders within budget (and the baseline) were measured again, interleaved
    again = [r.id for r in report.rows if any("measured again" in n for n in r.notes)]
    assert chosen.id in again and "torch-fp32" in again and len(again) <= 1 + QUICK.leaders
    assert all(r.status == "ok" and within_budget(r, 0.01) for r in report.rows if r.id in again)
    for row in report.rows:
        assert row.status in ("ok", "over-budget", "skipped", "failed"), row
        if row.status == "over-budget":
            assert row.drop is not None and row.drop > 0.01
        if row.status in ("skipped", "failed"):
            assert row.reason
        if row.status in ("ok", "over-budget"):
            assert row.latency_p50_ms and row.latency_p99_ms and row.latency_p99_ms >= row.latency_p50_ms
            assert row.throughput and row.speedup and row.score is not None
    assert report.row("ort-int8-static").status in ("ok", "over-budget")
    pruned = report.row("pruned25-openvino-int8")
    assert pruned.params is not None and pruned.params < report.row("torch-fp32").params  # type: ignore[operator]
    assert pruned.flops is not None and pruned.flops < report.row("torch-fp32").flops  # type: ignore[operator]
    pruned_bf16 = report.row("pruned25-openvino-bf16")  # the same pruned model, run in BF16
    if report.hardware["features"] and {"avx512_bf16", "amx_bf16"} & set(report.hardware["features"]):
        assert pruned_bf16.status in ("ok", "over-budget") and pruned_bf16.params == pruned.params
    else:
        assert pruned_bf16.status == "skipped" and "BF16" in pruned_bf16.reason
    out = tmp_path / "out"
    for name in ("report.json", "report.md", "speed_vs_quality.png", "chosen/variant.json"):
        assert (out / name).is_file(), name
    assert OptimizeReport.from_dict(json.loads((out / "report.json").read_text())).chosen == report.chosen
    assert "Intel" in report.hardware["cpu_model"] or report.hardware["cpu_model"]
    assert f"**Chosen: `{chosen.id}`**" in (out / "report.md").read_text()
    # the chosen variant is self-describing: load it and run it on its engine
    session = load_session(out / "chosen")
    (logits,) = session.run({"x": digits.x_test[:40]})
    assert logits.shape == (40, 10)
    accuracy = float((logits.argmax(1) == digits.y_test[:40]).mean())
    assert accuracy >= 0.8
    session.close()


def test_budget_that_only_the_baseline_meets(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    report = run(
        trained_cnn,
        digits,
        tmp_path,
        metric="mse",  # no labels: MSE against the baseline's logits, which only the baseline has at 0
        eval_data={"x": digits.x_test[:100]},
        max_drop=0.0,
        calibration=digits.calibration(),
        candidates=["ort-int8-dynamic", "ort-int8-static", "openvino-int8"],
    )
    assert report.chosen == "torch-fp32"
    others = [r for r in report.rows if r.id != "torch-fp32"]
    assert others and all(r.status == "over-budget" and (r.drop or 0) > 0 for r in others)
    manifest = json.loads((tmp_path / "out" / "chosen" / "variant.json").read_text())
    assert manifest["engine"] == "torch" and manifest["precision"] == "fp32"


def test_static_int8_without_calibration_is_skipped_with_reason(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    report = run(trained_cnn, digits, tmp_path, candidates=["ort", "pruned"])
    static = report.row("ort-int8-static")
    assert static.status == "skipped" and "calibration" in static.reason
    assert "calibration" in report.row("pruned30-openvino-int8").reason
    assert report.row("ort-int8-dynamic").status in ("ok", "over-budget")


def test_time_budget_skips_remaining_candidates(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    report = run(trained_cnn, digits, tmp_path, candidates=["ort"], budget_minutes=1e-6)
    assert report.chosen == "torch-fp32"
    assert all("time budget" in r.reason for r in report.rows if r.id != "torch-fp32")


def test_onnx_file_source(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    path = tmp_path / "cnn.onnx"
    torch.onnx.export(
        trained_cnn,
        (torch.from_numpy(digits.x_test[:2]),),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    report = run(str(path), digits, tmp_path, candidates=["ort", "openvino-fp32"])
    assert report.baseline == "ort-reference"
    assert {r.id for r in report.rows} == {"ort-reference", "ort-fp32", "ort-int8-dynamic", "ort-int8-static", "openvino-fp32"}
    assert report.row("ort-fp32").drop == pytest.approx(0.0, abs=1e-9)
    assert report.chosen is not None


def test_model_that_cannot_be_exported_falls_back_naming_the_operator(digits: Digits, tmp_path: Path) -> None:
    @torch.library.custom_op("gwtest::scramble", mutates_args=())
    def scramble(x: torch.Tensor) -> torch.Tensor:
        return x.flip(-1).clone()

    @scramble.register_fake
    def _(x: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(x)

    class Unexportable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = TinyCNN()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return scramble(self.body(x))

    report = run(Unexportable().eval(), digits, tmp_path, metric="cosine", candidates=["torch", "ort", "openvino-fp32"])
    for cid in ("ort-fp32", "ort-int8-dynamic", "openvino-fp32"):
        row = report.row(cid)
        assert row.status == "skipped"
        assert "gwtest::scramble" in row.reason and "falling back" in row.reason
    assert report.chosen in ("torch-fp32", "torch-bf16")
    assert (tmp_path / "out" / "chosen" / "variant.json").is_file()
    session = load_session(tmp_path / "out" / "chosen")
    (out,) = session.run({"x": digits.x_test[:3]})
    assert out.shape == (3, 10)


def test_custom_metric_function(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    def top1_agreement(outputs: np.ndarray, reference: np.ndarray, labels: Any) -> float:
        return float((outputs.argmax(1) == reference.argmax(1)).mean())

    report = run(trained_cnn, digits, tmp_path, metric=top1_agreement, candidates=["ort-fp32"])
    assert report.metric == "top1_agreement"
    assert report.row("ort-fp32").score == pytest.approx(1.0)


def test_registry_reference_becomes_a_new_optimized_version(trained_cnn: Any, digits: Digits, tmp_path: Path) -> None:
    import groundwork as gw
    from groundwork.config import Config
    from groundwork.core.registry import get_model_version

    config = Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))
    with gw.start_run(name="train", config=config, capture_code=False) as train_run:
        train_run.log_model(trained_cnn, "digits-cnn", example=digits.x_test[:4])
    gw.promote_model("digits-cnn", 1, "production", config=config)
    report = run(
        "digits-cnn@production",
        digits,
        tmp_path,
        candidates=["ort-fp32", "openvino-fp32"],
        config=config,
    )
    assert report.model["registry"]["version"] == 1 and report.run_id
    assert report.registered == "digits-cnn/2"
    version = get_model_version("digits-cnn/2", config=config)
    assert version.flavor == "optimized"
    assert version.tags["optimized_from"] == "digits-cnn/1" and version.tags["cpu"] == report.hardware["tag"]
    assert version.tags["candidate"] == report.chosen
    assert version.run_id == report.run_id
    optimize_run = gw.get_run(report.run_id, config=config)
    assert optimize_run.kind == "optimize"
    assert [link.kind for link in optimize_run.inputs] == ["model"]  # lineage: source version -> optimize run
    predictor = gw.load_model("digits-cnn/2", config=config)
    manifest = json.loads((tmp_path / "out" / "chosen" / "variant.json").read_text())
    assert predictor.backend == manifest["engine"]  # runs on the chosen variant's own runtime
    got = np.asarray(predictor.predict(digits.x_test[:20]))
    with torch.no_grad():
        expected = trained_cnn(torch.from_numpy(digits.x_test[:20])).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))

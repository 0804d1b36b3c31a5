"""A small store with everything the UI shows, recorded through the real SDK.

``populate(config, tmp)`` records: three training runs with params, metric series and
tags (one failed), a data-prep run whose output the training runs read (lineage), text,
CSV, image and directory artifacts, a pipeline run with three step runs (ran, cached,
failed), an optimize run with a report, captured stdout/stderr, and, where scikit-learn
is installed, a registered model with two versions and a ``production`` alias.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import groundwork as gw
from groundwork.config import Config


@dataclass
class Recorded:
    """What ``populate`` made: ids to open in tests."""

    prep: str = ""
    train: list[str] = field(default_factory=list)
    failed: str = ""
    pipeline: str = ""
    steps: dict[str, str] = field(default_factory=dict)
    optimize: str = ""
    model: str | None = None
    dataset_digest: str = ""
    image_digest: str = ""
    csv_digest: str = ""
    dir_digest: str = ""
    numbers: str = ""  # a real @gw.pipeline run (with pipeline.json)
    numbers_cached: str = ""  # the same pipeline again: every step cached


def png_bytes(width: int = 24, height: int = 16) -> bytes:
    """A tiny valid PNG (a colour gradient) without any imaging library."""
    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 10 % 256, y * 15 % 256, 120)) for x in range(width)) for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@gw.step
def make(n: int = 5) -> list[int]:
    return list(range(n))


@gw.step
def total(values: list[int]) -> float:
    gw.log({"total": float(sum(values))})
    return float(sum(values))


@gw.step
def double(values: list[int]) -> list[int]:
    return [2 * v for v in values]


@gw.pipeline
def numbers(n: int = 5) -> Any:
    values = make(n=n)
    return total(double(values)), total(values)


def populate(config: Config, tmp: Path, *, with_model: bool = True) -> Recorded:
    from groundwork.core.tracking import start_run

    out = Recorded()
    tmp.mkdir(parents=True, exist_ok=True)
    data = tmp / "train.csv"
    data.write_text("x,y,label\n" + "".join(f"{i},{i * i},{i % 2}\n" for i in range(50)))
    image = tmp / "confusion.png"
    image.write_bytes(png_bytes())
    folder = tmp / "model_dir"
    folder.mkdir(exist_ok=True)
    (folder / "weights.txt").write_text("0.1 0.2 0.3\n")
    (folder / "config.json").write_text(json.dumps({"hidden": 64, "layers": 2}))

    with start_run(name="prepare-data", params={"rows": 50}, tags={"stage": "data"}, config=config, capture_code=False) as run:
        info = run.log_artifact(data, name="data/train.csv", kind="dataset")
        out.prep = run.id
        out.dataset_digest = info.digest

    for i, lr in enumerate((0.1, 0.01, 0.001)):
        with start_run(name=f"train-lr{lr}", params={"lr": lr, "epochs": 30, "optimizer": "adam" if i else "sgd"},
                       tags={"team": "vision"}, config=config, capture_code=False) as run:
            run.log_input(data, name="data/train.csv")
            for step in range(30):
                loss = 2.0 * math.exp(-step * lr * 10) + 0.05 * math.sin(step)
                run.log({"loss": loss, "acc": 1.0 - loss / 2.2}, step=step)
            run.log_text(f"epoch 29 loss {loss:.3f}\n", "stdout")
            run.log_text("warning: learning rate schedule not set\n", "stderr")
            if i == 0:
                out.image_digest = run.log_artifact(image, name="plots/confusion.png", kind="report").digest
                out.csv_digest = run.log_artifact(data, name="eval/predictions.csv").digest
                out.dir_digest = run.log_artifact(folder, name="model_dir", kind="model").digest
            out.train.append(run.id)

    run = start_run(name="train-diverged", params={"lr": 10.0, "epochs": 30, "optimizer": "sgd"}, config=config, capture_code=False)
    run.log({"loss": 5.0}, step=0)
    run.log({"loss": float("nan")}, step=1)
    run.end("failed", error="Traceback (most recent call last):\n  ...\nFloatingPointError: loss is NaN")
    out.failed = run.id

    # A pipeline run: three step runs, artifact flow ingest -> features -> train (train failed).
    with start_run(name="digits-pipeline", kind="pipeline", config=config, capture_code=False) as pipe:
        out.pipeline = pipe.id
        pipe.flush()  # the parent's row must exist before its steps name it
        with start_run(name="ingest", kind="step", parent=pipe, tags={"step": "ingest"}, config=config, capture_code=False) as s:
            raw = s.log_artifact(data, name="ingest/raw.csv", kind="dataset")
            out.steps["ingest"] = s.id
        feats = tmp / "features.csv"
        feats.write_text("f1,f2\n1,2\n3,4\n")
        with start_run(name="features", kind="step", parent=pipe, tags={"step": "features"}, config=config, capture_code=False) as s:
            s.log_input(data, name="ingest/raw.csv")
            s.log_artifact(feats, name="features/features.csv", kind="dataset")
            out.steps["features"] = s.id
        s = start_run(name="train", kind="step", parent=pipe, tags={"step": "train"}, config=config, capture_code=False)
        s.log_input(feats, name="features/features.csv")
        s.end("failed", error="ValueError: bad shape")
        out.steps["train"] = s.id
        assert raw.digest

    out.numbers = gw.run_pipeline(numbers, params={"n": 5}, executor="inline", config=config, echo=False).run_id
    out.numbers_cached = gw.run_pipeline(numbers, params={"n": 5}, executor="inline", config=config, echo=False).run_id

    out.optimize = _record_optimize(config, tmp / "optimize", image)

    if with_model:
        out.model = _register(config, tmp)
    return out


def _record_optimize(config: Config, out_dir: Path, image: Path) -> str:
    """An optimize run recorded the way ``groundwork optimize`` records one (engines/optimize/record.py)."""
    from groundwork.engines.optimize.record import record_report
    from groundwork.engines.optimize.report import OptimizeReport

    report: OptimizeReport = _optimize_report()
    report.out_dir = str(out_dir)
    try:
        report.write(out_dir)  # report.json, report.md, speed_vs_quality.png (matplotlib)
    except ImportError:  # no matplotlib: the same files, with a stand-in plot
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(report.to_json())
        (out_dir / "report.md").write_text(report.to_markdown())
        (out_dir / "speed_vs_quality.png").write_bytes(image.read_bytes())
    return record_report(report, config)


def _optimize_report() -> Any:
    """A report as ``groundwork optimize`` makes one (engines/optimize/report.py), three candidates."""
    from groundwork.engines.optimize.report import CandidateResult, OptimizeReport

    rows = [
        CandidateResult("torch-fp32", "torch", "fp32", status="ok", batch=32, threads=2, latency_p50_ms=4.0, throughput=2500.0,
                        speedup=1.0, score=0.981, quality_change=0.0, drop=0.0),
        CandidateResult("ort-int8", "onnxruntime", "int8", status="ok", batch=32, threads=2, latency_p50_ms=1.2, throughput=8300.0,
                        speedup=3.3, score=0.979, quality_change=-0.002, drop=0.002),
        CandidateResult("ort-int8-pruned50", "onnxruntime", "int8", sparsity=0.5, status="over-budget", batch=32, threads=2,
                        latency_p50_ms=0.9, throughput=9800.0, speedup=3.9, score=0.962, quality_change=-0.019, drop=0.019),
    ]
    report = OptimizeReport(model={"name": "digits", "reference": "digits@production"}, metric="accuracy",
                            higher_is_better=True, max_drop=0.01, batch_sizes=[1, 32], objective="throughput",
                            hardware={"cpu_model": "Test CPU"}, rows=rows, baseline="torch-fp32", baseline_score=0.981,
                            chosen="ort-int8", choice_reason="fastest within the quality budget")
    return report


def _register(config: Config, tmp: Path) -> str | None:
    """Two versions of the model ``digits`` (scikit-learn), v1 at ``production``; None without sklearn."""
    try:
        import numpy as np
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    from groundwork.core import registry
    from groundwork.core.tracking import start_run

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    y = (x[:, 0] > 0).astype(int)
    for c in (1.0, 0.1):
        with start_run(name=f"train-model-C{c}", params={"C": c}, config=config, capture_code=False) as run:
            model: Any = LogisticRegression(C=c).fit(x, y)
            run.log({"acc": float(model.score(x, y))}, step=0)
            registry.log_model(run, model, "digits", example=x[:3])
    registry.promote("digits", 1, "production", reason="first model", config=config)
    return "digits"

"""The model page's API lists a model's recorded exports (groundwork export) with their verification."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

import groundwork as gw
from groundwork.config import Config

pytest.importorskip("sklearn", reason="the test model is a scikit-learn model")


def test_model_api_lists_recorded_exports(workspace: Config, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from groundwork.core.exports import record_export
    from groundwork.server.app import create_app

    x = np.random.default_rng(0).normal(size=(40, 4))
    with gw.start_run(name="train", config=workspace, capture_code=False) as run:
        run.log_model(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), "tiny", example=x[:3])
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(b"onnx bytes")
    verification = {"passed": True, "runtime": {"name": "Chromium 140"}, "agreement": {"measure": "label", "value": 1.0},
                    "size": {"total_bytes": 10}, "latency_ms": {"browser_wasm_1_thread": 0.2}}
    record = record_export("tiny", 1, bundle, target="web", precision="fp16", verification=verification, config=workspace)
    with TestClient(create_app(workspace), base_url="http://127.0.0.1:5000") as client:
        body = client.get("/api/v1/models/tiny").json()
    (shown,) = body["exports"]
    assert shown["id"] == record.id and shown["ref"] == "tiny/1" and shown["target"] == "web"
    assert shown["verification"]["runtime"]["name"] == "Chromium 140" and shown["location"] == str(bundle.resolve())

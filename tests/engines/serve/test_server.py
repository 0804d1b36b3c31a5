"""``groundwork serve`` on a real uvicorn (127.0.0.1, free port): predictions, batching, bad input, hot-swap."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import httpx
import numpy as np
import pytest

import groundwork as gw
from groundwork.errors import InvalidInput, error_body
from groundwork.storage.stores import open_stores

from .conftest import Load, Registry, Server, metric, serve_process

ERROR_KEYS = set(error_body(InvalidInput("x")))


@pytest.fixture(scope="module")
def shared(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server (digits and table, a 0.05 MB body limit) for the many small bad-input tests."""
    with serve_process(registry.config, ("digits@production", "table"), ("--max-body-mb", "0.05"),
                       tmp_path_factory.mktemp("shared")) as server:
        yield server


def test_predictions_equal_in_process_predict_for_every_flavor(registry: Registry, served: Any) -> None:
    import pandas as pd

    x = registry.x
    frame = pd.DataFrame({"a": [1.0, 5.0, 9.0], "b": [0.0, 1.0, 3.0]})
    with served("digits@production", "mlp", "table/1", "raw") as server:
        expected = gw.load_model("digits@production", config=registry.config).predict(x[:40])
        got = server.predict("digits", {"inputs": x[:40].tolist()}).json()
        assert got == {"outputs": expected.tolist(), "model_version": 1}

        expected = gw.load_model("mlp", config=registry.config).predict(x[:7].astype(np.float32))
        got = server.predict("mlp", {"inputs": x[:7].tolist()}).json()
        np.testing.assert_allclose(got["outputs"], expected, rtol=1e-5, atol=1e-6)

        expected = gw.load_model("table/1", config=registry.config).predict(frame)
        got = server.predict("table", {"inputs": {"a": [1.0, 5.0, 9.0], "b": [0.0, 1.0, 3.0]}}).json()
        np.testing.assert_allclose(got["outputs"], expected)

        expected = gw.load_model("raw", config=registry.config).predict(x[:9].astype(np.float32))
        assert server.predict("raw", {"inputs": x[:9].tolist()}).json()["outputs"] == expected.tolist()

        listing = server.client.get("/v1/models").json()["models"]
        assert {(m["name"], m["version"], m["backend"]) for m in listing} == {
            ("digits", 1, "onnxruntime"), ("mlp", 1, "onnxruntime"), ("table", 1, "sklearn"), ("raw", 1, "onnxruntime")}


def test_native_backend_serves_the_native_flavor(registry: Registry, served: Any) -> None:
    x = registry.x
    with served("digits@production", "mlp", flags=("--backend", "native")) as server:
        assert {m["backend"] for m in server.client.get("/v1/models").json()["models"]} == {"sklearn", "torch"}
        native = gw.load_model("digits@production", backend="native", config=registry.config)
        assert server.predict("digits", {"inputs": x[:25].tolist()}).json()["outputs"] == native.predict(x[:25]).tolist()
        torch_native = gw.load_model("mlp", backend="native", config=registry.config)
        got = server.predict("mlp", {"inputs": x[:5].tolist()}).json()["outputs"]
        np.testing.assert_allclose(got, torch_native.predict(x[:5].astype(np.float32)), rtol=1e-5, atol=1e-6)


def test_200_concurrent_requests_each_get_their_own_answer(registry: Registry, served: Any) -> None:
    x = registry.x
    expected = gw.load_model("digits@production", config=registry.config).predict(x[:600])
    # Request i asks for rows [3i, 3i + 1 + i % 3): distinct rows and distinct sizes.
    spans = [(3 * i, 3 * i + 1 + i % 3) for i in range(200)]

    async def fire(url: str) -> list[Any]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
            async def one(span: tuple[int, int]) -> Any:
                response = await client.post("/v1/models/digits/predict", json={"inputs": x[span[0]:span[1]].tolist()})
                assert response.status_code == 200, response.text
                return response.json()["outputs"]

            return await asyncio.gather(*(one(s) for s in spans))

    with served("digits@production", flags=("--max-batch-size", "64", "--max-wait-ms", "5")) as server:
        results = asyncio.run(fire(server.url))
        for (start, end), outputs in zip(spans, results, strict=True):
            assert outputs == expected[start:end].tolist()
        metrics = server.client.get("/metrics").text
    calls = metric(metrics, 'groundwork_batch_size_rows_count{model="digits"}')
    rows = metric(metrics, 'groundwork_batch_size_rows_sum{model="digits"}')
    assert rows == sum(end - start for start, end in spans)
    assert calls < len(spans)  # concurrent requests were merged into fewer runtime calls


BAD_INPUTS = [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must be a JSON object, not an array"),
    (b'{"rows": [[1]]}', 400, 'has no "inputs" key'),
    (json.dumps({"inputs": [[1.0] * 63]}), 422, "each row must have 64 values; these rows have 63"),
    (json.dumps({"inputs": [[1.0] * 64, [1.0] * 10]}), 422, "row 1 has 10 values; the model takes 64"),
    (json.dumps({"inputs": [["x"] * 64]}), 422, "inputs must be numbers, but hold text"),
    (json.dumps({"inputs": [1.0] * 64}), 422, "single flat list"),
    (json.dumps({"inputs": []}), 422, "holds no rows"),
    (json.dumps({"inputs": {"a": [1], "b": [2]}}), 422, "not named columns"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_INPUTS, ids=[m for _, _, m in BAD_INPUTS])
def test_bad_input_gets_the_right_4xx_and_a_clear_message(shared: Server, body: Any, status: int, message: str) -> None:
    server = shared
    response = server.predict("digits", body)
    assert response.status_code == status
    payload = response.json()
    assert set(payload) == ERROR_KEYS and payload["ok"] is False and payload["status"] == status
    assert message in payload["message"] and payload["hint"]


def test_columns_missing_or_unknown_are_422(shared: Server) -> None:
    server = shared
    response = server.predict("table", {"inputs": {"a": [1.0]}})
    assert (response.status_code, response.json()["message"]) == (422, "missing column 'b'")
    response = server.predict("table", {"inputs": {"a": [1.0], "b": [2.0], "c": [3.0]}})
    assert (response.status_code, response.json()["message"]) == (422, "unknown column 'c'")
    response = server.predict("table", {"inputs": {"a": ["one"], "b": [2.0]}})
    assert response.status_code == 422 and "column 'a' takes float64 numbers" in response.json()["message"]


def test_size_limit_unknown_model_and_wrong_method(shared: Server) -> None:
    server = shared
    big = json.dumps({"inputs": [[1.0] * 64] * 400})  # ~100 KB, over the 0.05 MB limit
    response = server.predict("digits", big)
    assert response.status_code == 413 and "accepts at most 52428 bytes" in response.json()["message"]
    response = server.predict("nope", {"inputs": [[0.0] * 64]})
    assert response.status_code == 404 and "not served here (served: digits, table)" in response.json()["message"]
    response = server.client.get("/v1/models/digits/predict")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert server.predict("digits", {"inputs": [[0.0] * 64]}).status_code == 200  # still serving


def test_health_metrics_and_docs(shared: Server) -> None:
    server = shared
    assert server.client.get("/healthz").json() == {"ok": True}
    assert server.client.get("/readyz").json() == {"ok": True, "models": {"digits": 1, "table": 1}}
    server.predict("digits", {"inputs": [[0.0] * 64]})
    server.predict("digits", b"oops")
    metrics = server.client.get("/metrics").text
    for name in ('groundwork_requests_total{model="digits",status="200"}', "groundwork_errors_total",
                 "groundwork_request_latency_seconds_bucket", "groundwork_batch_size_rows_bucket",
                 'groundwork_served_version{model="digits"} 1.0'):
        assert name in metrics
    spec = server.client.get("/openapi.json").json()
    rows = spec["paths"]["/v1/models/digits/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert rows["schema"]["properties"]["inputs"]["items"]["minItems"] == 64
    assert len(rows["example"]["inputs"]) == 5
    table = spec["paths"]["/v1/models/table/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert table["schema"]["properties"]["inputs"]["required"] == ["a", "b"]
    docs = server.client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text


def test_moving_the_alias_under_load_swaps_with_zero_failed_requests(registry: Registry, served: Any) -> None:
    from sklearn.tree import DecisionTreeClassifier

    config = registry.config
    x = registry.x
    y = gw.load_model("digits/1", config=config).predict(x)
    with gw.start_run(name="retrain", config=config, capture_code=False) as run:
        first = run.log_model(DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y), "swap", example=x[:5])
        second = run.log_model(DecisionTreeClassifier(max_depth=6, random_state=0).fit(x, y), "swap", example=x[:5])
    gw.promote_model("swap", first.version, alias="production", config=config)

    with served("swap@production", flags=("--poll-interval", "0.2")) as server, Load(server.url, "swap", x) as load:
        seen = load.seen
        while load.count() < 200:
            time.sleep(0.05)
        gw.promote_model("swap", second.version, alias="production", reason="deeper tree", config=config)
        deadline = time.monotonic() + 120
        while not all(s and s[-1] == second.version for s in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        after = load.count()
        while load.count() < after + 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        log = server.log_text()
        readyz = server.client.get("/readyz").json()
    failures = load.failures
    assert failures == []
    for versions in seen:
        assert versions[0] == first.version and versions[-1] == second.version
        switch = versions.index(second.version)
        assert set(versions[switch:]) == {second.version}  # once switched, never back
    counts = Counter(v for s in seen for v in s)
    assert counts[first.version] > 0 and counts[second.version] > 0
    assert readyz["models"] == {"swap": second.version}
    assert f"now answers with version {second.version}" in log


def test_every_request_is_in_the_prediction_log(registry: Registry, served: Any) -> None:
    import pyarrow as pa

    from groundwork.engines.monitor.segment import read_segment

    x = registry.x
    monitor = open_stores(registry.config).monitor
    # The module's other tests served this model too: only this server's segments count.
    earlier = {r.digest for r in monitor.segments("digits")}

    def ours() -> list[Any]:
        return [r for r in monitor.segments("digits", statuses=["closed"]) if r.digest not in earlier]

    with served("digits@production", flags=("--log-segment-seconds", "1")) as server:
        outputs = [server.predict("digits", {"inputs": x[i:i + 2].tolist()}).json()["outputs"] for i in range(5)]
        assert server.predict("digits", {"inputs": [[1, 2]]}).status_code == 422
        deadline = time.monotonic() + 60
        while sum(r.requests for r in ours()) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        metrics = server.client.get("/metrics").text
    rows = ours()
    table = read_segment(open_stores(registry.config).artifacts.get_bytes(rows[0].digest))
    for row in rows[1:]:
        table = pa.concat_tables([table, read_segment(open_stores(registry.config).artifacts.get_bytes(row.digest))])
    answered = table.filter(table.column("status").to_numpy() == 200)
    assert answered.num_rows == 10
    assert np.allclose(np.array(answered.column("inputs").to_pylist()), np.concatenate([x[i:i + 2] for i in range(5)]))
    assert answered.column("prediction").to_pylist() == [v for out in outputs for v in out]
    assert set(answered.column("route").to_pylist()) == {"production"}
    assert set(answered.column("version").to_pylist()) == {1}
    refused = table.filter(table.column("status").to_numpy() == 422)
    assert refused.num_rows == 1 and refused.column("error").to_pylist() == ["unprocessable"]
    assert metric(metrics, 'groundwork_prediction_log_rows_total{model="digits"}') == table.num_rows
    assert "groundwork_prediction_log_dropped_total{" not in metrics  # nothing was dropped


@pytest.mark.slow
def test_two_workers_share_the_port_and_the_metrics(registry: Registry, served: Any) -> None:
    x = registry.x
    with served("digits@production", flags=("--workers", "2")) as server:
        expected = gw.load_model("digits@production", config=registry.config).predict(x[:50]).tolist()
        for i in range(50):
            with httpx.Client(base_url=server.url, timeout=60) as fresh:  # new connections spread over workers
                assert fresh.post("/v1/models/digits/predict", json={"inputs": x[i:i + 1].tolist()}).json()[
                    "outputs"] == expected[i:i + 1]
        metrics = server.client.get("/metrics").text
    assert metric(metrics, 'groundwork_requests_total{model="digits",status="200"}') == 50


"""The Open Inference Protocol (KServe v2) on a real ``groundwork serve``, spoken by Triton's own client from PyPI.

``tritonclient[http]`` sends no Content-Type, so the tests give it ``application/json`` as every
predict request must have (a request without one is 415, tested below), and JSON tensors
(``binary_data=False``): the binary tensor extension is not offered (``extensions: []``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import groundwork as gw
from groundwork.engines.serve import oip

from .conftest import Registry, Server, serve_process

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with serve_process(registry.config, ("digits@production", "table", "mlp"), ("--max-body-mb", "0.05"),
                       tmp_path_factory.mktemp("oip")) as running:
        yield running


@pytest.fixture(scope="module")
def triton(server: Server) -> Any:
    http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is in the dev extra (make setup)")
    client = http.InferenceServerClient(url=server.url.removeprefix("http://"), network_timeout=60)
    yield client
    client.close()


def _digits_input(rows: np.ndarray) -> Any:
    from tritonclient.http import InferInput

    tensor = InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=False)
    return tensor


def test_health_and_metadata_through_tritonclient(triton: Any) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("digits") and triton.is_model_ready("digits", "1")
    assert not triton.is_model_ready("digits", "9") and not triton.is_model_ready("nope")
    server = triton.get_server_metadata()
    assert server["name"] == "groundwork" and server["extensions"] == []
    meta = triton.get_model_metadata("digits")
    assert meta == {"name": "digits", "versions": ["1"], "platform": "groundwork_sklearn",
                    "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 64]}],
                    "outputs": [{"name": "output", "datatype": "INT64", "shape": [-1]}]}
    table = triton.get_model_metadata("table")
    assert [(t["name"], t["datatype"], t["shape"]) for t in table["inputs"]] == [("a", "FP64", [-1]), ("b", "FP64", [-1])]


def test_infer_through_tritonclient_answers_like_v1(registry: Registry, triton: Any) -> None:
    from tritonclient.http import InferInput, InferRequestedOutput

    x = registry.x
    expected = gw.load_model("digits@production", config=registry.config).predict(x[:7])
    result = triton.infer("digits", [_digits_input(x[:7])], outputs=[InferRequestedOutput("output", binary_data=False)],
                          request_id="r-1", headers=JSON)
    np.testing.assert_array_equal(result.as_numpy("output"), expected)
    response = result.get_response()
    assert response["id"] == "r-1" and response["model_version"] == "1" and response["model_name"] == "digits"
    # No outputs named: the client asks for binary outputs, which this server answers as JSON.
    plain = triton.infer("digits", [_digits_input(x[:3])], headers=JSON, model_version="1")
    np.testing.assert_array_equal(plain.as_numpy("output"), expected[:3])
    # A table model: one input per column.
    a, b = InferInput("a", [3], "FP64"), InferInput("b", [3], "FP64")
    a.set_data_from_numpy(np.array([1.0, 5.0, 9.0]), binary_data=False)
    b.set_data_from_numpy(np.array([0.0, 1.0, 3.0]), binary_data=False)
    import pandas as pd

    want = gw.load_model("table", config=registry.config).predict(pd.DataFrame({"a": [1.0, 5.0, 9.0], "b": [0.0, 1.0, 3.0]}))
    np.testing.assert_allclose(triton.infer("table", [a, b], headers=JSON).as_numpy("output"), want)
    # FP32 data for an FP32 model (the PyTorch MLP), compared with the in-process prediction.
    mlp = InferInput("input", [4, 64], "FP32")
    mlp.set_data_from_numpy(x[:4].astype(np.float32), binary_data=False)
    np.testing.assert_allclose(triton.infer("mlp", [mlp], headers=JSON).as_numpy("output"),
                               gw.load_model("mlp", config=registry.config).predict(x[:4].astype(np.float32)),
                               rtol=1e-5, atol=1e-5)


def test_errors_reach_tritonclient_as_the_protocol_says(registry: Registry, triton: Any) -> None:
    from tritonclient.utils import InferenceServerException

    x = registry.x

    def fails(**kwargs: Any) -> InferenceServerException:
        with pytest.raises(InferenceServerException) as caught:
            triton.infer(**kwargs)
        return caught.value

    short = fails(model_name="digits", inputs=[_digits_input(x[:2, :63])], headers=JSON)
    assert short.status() == "422" and "each row must have 64 values; these rows have 63" in short.message()
    assert fails(model_name="nope", inputs=[_digits_input(x[:2])], headers=JSON).status() == "404"
    gone = fails(model_name="digits", inputs=[_digits_input(x[:2])], headers=JSON, model_version="7")
    assert gone.status() == "404" and "version 7 of 'digits' is not served here (serving 1)" in gone.message()
    untyped = fails(model_name="digits", inputs=[_digits_input(x[:2])])  # no Content-Type: never read
    assert untyped.status() == "415" and "Content-Type: application/json" in untyped.message()
    big = fails(model_name="digits", inputs=[_digits_input(np.tile(x[:1], (200, 1)))], headers=JSON)
    assert big.status() == "413"


def _tensor(name: str = "input", shape: Any = (1, 64), datatype: str = "FP64", data: Any = None) -> dict[str, Any]:
    return {"name": name, "shape": list(shape), "datatype": datatype, "data": [0.0] * 64 if data is None else data}


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"inputs": [_tensor(shape=(2, 64))]}, 422, "is shaped [2, 64] (128 values) but holds 64 values"),
    ({"inputs": [_tensor(data=[True] + [0.0] * 63)]}, 422, "(JSON true/false is not a number)"),
    ({"inputs": [_tensor(data=["x"] * 64)]}, 422, "inputs must be numbers, but hold text"),
    ({"inputs": [_tensor(datatype="BYTES")]}, 422, "input 'input' is BYTES; the model takes FP64"),
    ({"inputs": [_tensor(datatype="FP128")]}, 400, "unknown datatype 'FP128'"),
    ({"inputs": [_tensor(name="pixels")]}, 422, "unknown input 'pixels'"),
    ({"inputs": [_tensor(shape=(1, -64))]}, 400, "shape must be a list of whole numbers >= 0"),
    ({"inputs": [_tensor(), _tensor()]}, 400, "input 'input' is given twice"),
    ({"inputs": []}, 400, 'no "inputs" list of tensors'),
    ({"inputs": [_tensor()], "outputs": [{"name": "probabilities"}]}, 422, "unknown output 'probabilities'"),
    ([1, 2], 400, "must be a JSON object"),
])
def test_bad_infer_requests_are_4xx_with_the_protocols_error_field(server: Server, body: Any, status: int,
                                                                   message: str) -> None:
    answer = server.client.post("/v2/models/digits/infer", json=body)
    assert answer.status_code == status, answer.text
    document = answer.json()
    assert message in document["error"] and document["status"] == status and document["ok"] is False


def test_nested_data_the_same_as_flat_and_routes_and_methods(registry: Registry, server: Server) -> None:
    x = registry.x[:2]
    flat = server.client.post("/v2/models/digits/infer", json={"inputs": [_tensor(shape=x.shape, data=x.ravel().tolist())]})
    nested = server.client.post("/v2/models/digits/infer", json={"inputs": [_tensor(shape=x.shape, data=x.tolist())]})
    assert flat.status_code == nested.status_code == 200 and flat.json()["outputs"] == nested.json()["outputs"]
    assert flat.json()["outputs"][0]["shape"] == [2] and flat.json()["outputs"][0]["datatype"] == "INT64"
    assert server.client.get("/v2/health/live").json() == {"live": True}
    assert server.client.get("/v2/models/digits/infer").status_code == 405
    missing = server.client.get("/v2/models/digits/explain")
    assert missing.status_code == 404 and "POST /v2/models/NAME/infer" in missing.json()["error"]
    not_json = server.client.post("/v2/models/digits/infer", content=b"{nope", headers=JSON)
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
    document = server.client.get("/openapi.json").json()
    assert "post" in document["paths"]["/v2/models/digits/infer"]
    assert {"/v2/health/ready", "/v2/models/digits", "/v2/models/digits/ready"} <= set(document["paths"])


def test_parse_path_reads_every_route() -> None:
    assert oip.parse_path("/v2") == oip.V2Path("server")
    assert oip.parse_path("/v2/health/ready/") == oip.V2Path("ready")
    assert oip.parse_path("/v2/models/m/versions/3/infer") == oip.V2Path("infer", "m", 3)
    assert oip.parse_path("/v2/models/m/ready") == oip.V2Path("model_ready", "m")
    for bad in ("/v2/models", "/v2/models/m/versions/0/infer", "/v2/models/m/versions/x", "/v2/health/dead",
                "/v2/models/m/infer/more", "/v2x"):
        assert oip.parse_path(bad) is None, bad


def test_routes_are_followed_by_v2_requests_too(tmp_path: Path, registry: Registry) -> None:
    """A v2 request without a version draws from the route; with one it asks for that version."""
    from sklearn.tree import DecisionTreeClassifier

    config, x = registry.config, registry.x
    with gw.start_run(name="second", config=config, capture_code=False) as run:
        run.log_model(DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, x[:, 10] > 5), "routed", example=x[:3])
        run.log_model(DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, x[:, 20] > 5), "routed", example=x[:3])
    gw.promote_model("routed", 1, alias="production", config=config)
    gw.promote_model("routed", 2, alias="candidate", config=config)
    with serve_process(config, ("routed",), ("--route", "production=50,candidate=50"), tmp_path) as running:
        seen = set()
        for _ in range(60):
            answer = running.client.post("/v2/models/routed/infer", json={"inputs": [_tensor(data=x[0].tolist())]})
            seen.add(answer.json()["model_version"])
        assert seen == {"1", "2"}
        pinned = {running.client.post("/v2/models/routed/versions/2/infer",
                                      json={"inputs": [_tensor(data=x[0].tolist())]}).json()["model_version"]
                  for _ in range(20)}
        assert pinned == {"2"}
        assert running.client.get("/v2/models/routed").json()["versions"] == ["1", "2"]

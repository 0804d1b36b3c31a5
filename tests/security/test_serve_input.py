"""What a real ``groundwork serve`` refuses to read (issue #9 item 10, issue #16 item 5).

A web page may post to any address without asking when the body is ``text/plain`` or a
form; a page on a name rebound to 127.0.0.1 sends its own ``Host``. Booleans and numbers
a float32 model cannot hold used to pass silently. Each gets a JSON 4xx that says why.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from tests.engines.serve.conftest import Registry, Server, registry, serve_process  # noqa: F401 (registry: a fixture)

from groundwork.errors import InvalidInput, error_body

ERROR_KEYS = set(error_body(InvalidInput("x")))
ROW = [0.0] * 64


@pytest.fixture(scope="module")
def server(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:  # noqa: F811
    with serve_process(registry.config, ("digits@production", "table"), (), tmp_path_factory.mktemp("input")) as served:
        yield served


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == ERROR_KEYS and body["ok"] is False and body["status"] == status
    return dict(body)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "", "application/jsonp", "text/json"])
def test_a_body_that_is_not_declared_json_is_415(server: Server, content_type: str) -> None:
    body = json.dumps({"inputs": [ROW]})
    headers = {"content-type": content_type} if content_type else {}
    response = server.client.post("/v1/models/digits/predict", content=body, headers=headers)
    error = _error(response, 415)
    said = f"Content-Type '{content_type}'" if content_type else "no Content-Type"
    assert error["message"] == f"predictions take a JSON body; this request has {said}"
    assert "application/json" in error["hint"]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON",
                                          "application/vnd.api+json"])
def test_json_in_its_usual_spellings_is_read(server: Server, content_type: str) -> None:
    response = server.predict("digits", json.dumps({"inputs": [ROW]}), content_type=content_type)
    assert response.status_code == 200 and response.json()["model_version"] == 1


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([[True] * 64], "inputs must be numbers, but hold true/false (row 0, column 0: true)"),
        ([[True] + [0] * 63], "inputs must be numbers, but row 0, column 0 is true (JSON true/false is not a number)"),
        ([ROW, [0] * 40 + [False] + [0] * 23], "inputs must be numbers, but row 1, column 40 is false"),
    ],
)
def test_booleans_anywhere_in_a_row_are_422_naming_the_column(server: Server, inputs: Any, message: str) -> None:
    error = _error(server.predict("digits", {"inputs": inputs}), 422)
    assert error["message"].startswith(message)


def test_booleans_in_a_numeric_column_are_422(server: Server) -> None:
    error = _error(server.predict("table", {"inputs": {"a": [1.0, True], "b": [0.0, 1.0]}}), 422)
    assert error["message"].startswith("column 'a' takes float64 numbers, but value 1 is true")


def test_a_number_beyond_float32_is_422_not_infinity(server: Server) -> None:
    assert server.client.get("/v1/models/digits").json()["backend"] == "onnxruntime"  # the graph takes float32
    error = _error(server.predict("digits", {"inputs": [ROW, [0.0] * 10 + [1e300] + [0.0] * 53]}), 422)
    assert error["message"] == ("inputs: row 1, column 10 is 1e+300, outside what the model's input type float32 "
                                "holds (-3.403e+38 to 3.403e+38)")
    top = 3.4e38  # the largest numbers float32 holds still pass
    assert server.predict("digits", {"inputs": [[top] + [0.0] * 63]}).status_code == 200


@pytest.mark.parametrize(("literal", "message"), [("NaN", "NaN and Infinity are not JSON numbers"),
                                                  ("Infinity", "NaN and Infinity are not JSON numbers"),
                                                  ("1e400", "number is infinity when parsed as double")])
def test_nan_infinity_and_numbers_beyond_a_double_are_400(server: Server, literal: str, message: str) -> None:
    body = '{"inputs": [[' + ", ".join([literal] + ["0"] * 63) + "]]}"
    error = _error(server.predict("digits", body), 400)
    assert error["message"].startswith("the request body is not valid JSON") and message in error["message"]
    assert "finite numbers" in error["hint"]


@pytest.mark.parametrize("path", ["/v1/models/digits/predict", "/v1/models", "/openapi.json", "/docs", "/metrics"])
def test_a_rebound_name_is_refused_before_any_route(server: Server, path: str) -> None:
    port = server.url.rsplit(":", 1)[1]
    headers = {"host": f"evil.example:{port}", "origin": f"http://evil.example:{port}",
               "content-type": "application/json"}
    method = "POST" if path.endswith("predict") else "GET"
    response = server.client.request(method, path, headers=headers, content=json.dumps({"inputs": [ROW]}))
    error = _error(response, 403)
    assert f"does not answer requests for host 'evil.example:{port}'" in error["message"]


def test_a_page_of_another_origin_is_refused_and_the_servers_own_page_is_not(server: Server) -> None:
    port = server.url.rsplit(":", 1)[1]
    body = {"inputs": [ROW]}
    for origin in ("http://evil.example", f"http://localhost:{port}", "null", "http://127.0.0.1:1"):
        error = _error(server.client.post("/v1/models/digits/predict", json=body, headers={"origin": origin}), 403)
        assert "only pages of this server may call it" in error["message"]
    own = server.client.post("/v1/models/digits/predict", json=body, headers={"origin": server.url})
    assert own.status_code == 200
    assert server.client.get("/v1/models", headers={"host": f"localhost:{port}"}).status_code == 200


def test_a_client_that_sends_no_host_is_answered(server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")


def test_allow_host_adds_a_name(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> None:  # noqa: F811
    flags = ("--allow-host", "models.internal")
    with serve_process(registry.config, ("digits@production",), flags, tmp_path_factory.mktemp("allow")) as served:
        assert served.client.get("/v1/models", headers={"host": "models.internal:8000"}).status_code == 200
        assert served.client.get("/v1/models", headers={"host": "other.internal"}).status_code == 403

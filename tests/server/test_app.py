"""The app as a whole: one error shape, never a 5xx for a caller's mistake, the UI's static files."""

from __future__ import annotations

import gzip
import hashlib

import pytest
from _api_asserts import assert_error
from _clients import local_client
from starlette.testclient import TestClient

from groundwork.config import Config
from groundwork.ui import STATIC_DIR


def test_index_names_the_store(client: TestClient) -> None:
    body = client.get("/api/v1").json()
    assert body["ok"] is True
    assert body["store"].startswith("sqlite:///")


def test_unknown_api_path_is_a_json_404(client: TestClient) -> None:
    assert_error(client.get("/api/v1/nothing-here"), 404, "no api endpoint", "/api/v1/nothing-here")
    assert_error(client.get("/api/v2/runs"), 404, "no api endpoint")


def test_wrong_method_is_a_json_405(client: TestClient) -> None:
    assert_error(client.post("/api/v1/runs", json={}), 405, "POST")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/api/v1/runs?limit=abc", ["limit", "integer"]),
        ("/api/v1/runs?offset=-1", ["offset"]),
        ("/api/v1/runs?limit=0", ["limit", "between"]),
        ("/api/v1/runs?limit=100000", ["limit", "1000"]),
        ("/api/v1/runs?offset=99999999999", ["offset"]),
        ("/api/v1/series?points=abc&run=x", ["points"]),
        ("/api/v1/series", ["run", "required"]),
        ("/api/v1/lineage?ref=x&depth=999", ["depth"]),
        ("/api/v1/runs/x/logs?tail=0", ["tail"]),
        ("/api/v1/runs/x/logs?stream=stdin", ["stream"]),
        ("/api/v1/pipelines?limit=-5", ["limit"]),
        ("/api/v1/artifacts/zz-not-hex", ["digest"]),
    ],
)
def test_bad_query_strings_are_400_with_a_clear_message(client: TestClient, path: str, words: list[str]) -> None:
    assert_error(client.get(path), 400, *words)


def test_internal_errors_are_500_json_without_a_traceback(recorded_store: tuple[Config, object]) -> None:
    from groundwork.server.app import create_app

    app = create_app(recorded_store[0], ui=False)

    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret detail")

    with local_client(app) as test_client:
        response = test_client.get("/api/v1/boom")
    body = assert_error(response, 500, "RuntimeError")
    assert "secret detail" not in response.text and "Traceback" not in response.text
    assert body["error"] == "Internal error"


def test_api_answers_are_gzipped_when_large(client: TestClient, recorded: object) -> None:
    response = client.get("/api/v1/runs?limit=100", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == "gzip"


# -- the UI's files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/runs", "/runs/abc123", "/compare?runs=a,b", "/lineage", "/models/digits", "/pipelines/x"])
def test_every_page_path_answers_the_app(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/app.js">' in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_static_files_are_cached_and_gzipped(client: TestClient) -> None:
    response = client.get("/static/js/app.js", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["content-encoding"] == "gzip"
    etag = response.headers["etag"]
    assert client.get("/static/js/app.js", headers={"If-None-Match": etag}).status_code == 304
    on_disk = (STATIC_DIR / "js" / "app.js").read_bytes()
    assert response.content == on_disk  # the client unzipped it
    raw = client.get("/static/js/app.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.content == on_disk
    with client.stream("GET", "/static/js/app.js", headers={"Accept-Encoding": "gzip"}) as streamed:
        assert gzip.decompress(b"".join(streamed.iter_raw())) == on_disk


def test_vendored_libraries_are_served_forever_cacheable(client: TestClient) -> None:
    listed = (STATIC_DIR / "VENDORED.md").read_text()
    files = sorted(p.name for p in (STATIC_DIR / "vendor").glob("*.js"))
    assert files == ["cytoscape-3.34.4.min.js", "cytoscape-dagre-4.0.1.min.js", "echarts-5.6.0.min.js"]
    for name in files:
        assert f"vendor/{name}" in listed
        digest = hashlib.sha256((STATIC_DIR / "vendor" / name).read_bytes()).hexdigest()
        assert f"{digest}  vendor/{name}" in listed, f"{name} changed: vendor files are copied unchanged from npm"
        response = client.get(f"/static/vendor/{name}")
        assert response.status_code == 200
        assert "immutable" in response.headers["cache-control"]
    lazy = (STATIC_DIR / "js" / "lazy.js").read_text()
    assert all(f"/static/vendor/{name}" in lazy for name in files)


@pytest.mark.parametrize("path", ["/static/../../pyproject.toml", "/static/%2e%2e/%2e%2e/pyproject.toml", "/static/nope.js"])
def test_static_files_stay_inside_the_folder(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert "[build-system]" not in response.text
    if "nope" in path:
        assert response.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/series?run={run}&min_step=99999999999999999999999",
        "/api/v1/series?run={run}&max_step=-99999999999999999999999",
        "/api/v1/runs/{run}/logs?after=99999999999999999999999",
    ],
)
def test_numbers_beyond_64_bits_are_400_not_500(client: TestClient, recorded: object, path: str) -> None:
    run = recorded.train[0]  # type: ignore[attr-defined]
    assert_error(client.get(path.format(run=run)), 400, "between")

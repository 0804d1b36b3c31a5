"""``/api/v1/artifacts``: info, users, raw bytes (safely), previews of text, tables and images."""

from __future__ import annotations

from _api_asserts import assert_error
from _ui_store import Recorded, png_bytes
from starlette.testclient import TestClient

from groundwork.config import Config


def test_info_lists_the_runs_that_used_it(client: TestClient, recorded: Recorded) -> None:
    body = client.get(f"/api/v1/artifacts/{recorded.dataset_digest}").json()["artifact"]
    assert body["stored"] is True and body["is_dir"] is False
    directions = {(u["run_id"], u["direction"]) for u in body["users"]}
    assert (recorded.prep, "output") in directions and (recorded.train[1], "input") in directions
    by_prefix = client.get(f"/api/v1/artifacts/{recorded.dataset_digest[:10]}").json()["artifact"]
    assert by_prefix["digest"] == recorded.dataset_digest


def test_directories_list_their_files_and_serve_each(client: TestClient, recorded: Recorded) -> None:
    body = client.get(f"/api/v1/artifacts/{recorded.dir_digest}").json()["artifact"]
    assert body["is_dir"] is True
    assert {f["path"] for f in body["files"]} == {"weights.txt", "config.json"}
    raw = client.get(f"/api/v1/artifacts/{recorded.dir_digest}/raw", params={"path": "weights.txt"})
    assert raw.status_code == 200 and raw.content == b"0.1 0.2 0.3\n"
    preview = client.get(f"/api/v1/artifacts/{recorded.dir_digest}/preview", params={"path": "config.json"}).json()["preview"]
    assert preview["type"] == "text" and preview["language"] == "json" and '"hidden"' in preview["text"]
    assert_error(client.get(f"/api/v1/artifacts/{recorded.dir_digest}/raw"), 400, "directory")
    assert_error(client.get(f"/api/v1/artifacts/{recorded.dir_digest}/raw", params={"path": "nope.txt"}), 404, "nope.txt")
    assert_error(client.get(f"/api/v1/artifacts/{recorded.dataset_digest}/raw", params={"path": "x"}), 400, "not a directory")


def test_raw_bytes_with_safe_headers(client: TestClient, recorded: Recorded) -> None:
    response = client.get(f"/api/v1/artifacts/{recorded.image_digest}/raw")
    assert response.status_code == 200 and response.content == png_bytes()
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"
    download = client.get(f"/api/v1/artifacts/{recorded.image_digest}/raw", params={"download": "true"})
    assert download.headers["content-disposition"].startswith("attachment;")


def test_html_is_never_served_as_html(workspace: Config, fresh_client: TestClient, tmp_path: object) -> None:
    from pathlib import Path

    from groundwork.core.tracking import start_run

    page = Path(str(tmp_path)) / "evil.html"
    page.write_text("<script>fetch('/api/v1/models')</script>")
    with start_run(name="html", config=workspace, capture_code=False) as run:
        info = run.log_artifact(page)
    response = fresh_client.get(f"/api/v1/artifacts/{info.digest}/raw")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-security-policy"] == "sandbox"


def test_previews(client: TestClient, recorded: Recorded) -> None:
    table = client.get(f"/api/v1/artifacts/{recorded.csv_digest}/preview").json()["preview"]
    assert table["type"] == "table" and table["columns"] == ["x", "y", "label"] and table["rows"][2] == ["2", "4", "0"]
    image = client.get(f"/api/v1/artifacts/{recorded.image_digest}/preview").json()["preview"]
    assert image["type"] == "image" and image["media_type"] == "image/png"


def test_binary_files_are_not_previewed(workspace: Config, fresh_client: TestClient, tmp_path: object) -> None:
    from pathlib import Path

    from groundwork.core.tracking import start_run

    blob = Path(str(tmp_path)) / "weights.bin"
    blob.write_bytes(bytes(range(256)) * 10)
    with start_run(name="bin", config=workspace, capture_code=False) as run:
        info = run.log_artifact(blob)
    preview = fresh_client.get(f"/api/v1/artifacts/{info.digest}/preview").json()["preview"]
    assert preview["type"] == "binary"


def test_bad_and_unknown_digests(client: TestClient) -> None:
    assert_error(client.get("/api/v1/artifacts/xyz"), 400, "digest")
    assert_error(client.get("/api/v1/artifacts/" + "0" * 64), 404)
    assert_error(client.get("/api/v1/artifacts/0000000"), 404, "no artifact")
    assert_error(client.get("/api/v1/artifacts/" + "0" * 64 + "/raw"), 404)

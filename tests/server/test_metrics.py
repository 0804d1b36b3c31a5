"""``/api/v1/series``: metric series downsampled on the server (LTTB), ranges for zoom, live runs."""

from __future__ import annotations

import math

import numpy as np
from _api_asserts import assert_error
from _ui_store import Recorded
from starlette.testclient import TestClient

from groundwork.config import Config


def test_short_series_come_whole(client: TestClient, recorded: Recorded) -> None:
    body = client.get("/api/v1/series", params={"run": recorded.train[0], "key": "loss"}).json()
    (series,) = body["series"]
    assert series["method"] == "raw" and series["total"] == 30
    assert series["step"] == list(range(30))
    assert math.isclose(series["value"][0], 2.0)
    assert len(series["timestamp"]) == 30 and series["range"] == [0, 29]


def test_every_key_of_several_runs_in_one_request(client: TestClient, recorded: Recorded) -> None:
    runs = ",".join(recorded.train[:2])
    body = client.get("/api/v1/series", params={"run": runs}).json()
    assert {(s["run_id"], s["key"]) for s in body["series"]} == {(r, k) for r in recorded.train[:2] for k in ("acc", "loss")}


def test_missing_keys_are_empty_series_not_errors(client: TestClient, recorded: Recorded) -> None:
    body = client.get("/api/v1/series", params={"run": recorded.prep, "key": "loss"}).json()
    assert body["series"][0]["total"] == 0 and body["series"][0]["step"] == []


def test_nan_points_are_null(client: TestClient, recorded: Recorded) -> None:
    body = client.get("/api/v1/series", params={"run": recorded.failed, "key": "loss"}).json()
    assert body["series"][0]["value"] == [5.0, None]


def test_unknown_runs_and_bad_parameters(client: TestClient, recorded: Recorded) -> None:
    assert_error(client.get("/api/v1/series", params={"run": "nope"}), 404, "nope")
    assert_error(client.get("/api/v1/series", params={"run": recorded.prep, "points": 1}), 400, "points")
    assert_error(client.get("/api/v1/series", params={"run": recorded.prep, "points": 10**6}), 400, "points")
    assert_error(client.get("/api/v1/series", params={"run": recorded.prep, "min_step": 5, "max_step": 1}), 400, "min_step")
    assert_error(client.get("/api/v1/series", params={"run": ",".join(["x"] * 101)}), 400, "too many")
    assert_error(client.get("/api/v1/series", params={"run": " , "}), 400, "at least one run")


def test_metric_keys_of_a_run(client: TestClient, recorded: Recorded) -> None:
    body = client.get(f"/api/v1/runs/{recorded.train[0]}/metrics").json()
    assert [m["key"] for m in body["metrics"]] == ["acc", "loss"]
    assert body["metrics"][1]["step"] == 29


def test_long_series_are_downsampled_with_lttb_and_zoom_gets_detail(workspace: Config, fresh_client: TestClient) -> None:
    from groundwork.core.tracking import start_run

    n = 200_000
    steps = np.arange(n)
    values = np.sin(steps / 5000.0)
    values[123_457] = 50.0  # a spike that every-k-th sampling would miss
    with start_run(name="long", config=workspace, capture_code=False) as run:
        run.log_points("wave", values.tolist(), steps.tolist())
    body = fresh_client.get("/api/v1/series", params={"run": run.id, "key": "wave", "points": 1000}).json()
    (series,) = body["series"]
    assert series["method"] == "lttb" and series["total"] == n
    assert len(series["step"]) == 1000
    assert series["step"][0] == 0 and series["step"][-1] == n - 1
    assert 123_457 in series["step"] and max(series["value"]) == 50.0
    zoom = fresh_client.get("/api/v1/series", params={"run": run.id, "key": "wave", "points": 1000,
                                                      "min_step": 1000, "max_step": 1499}).json()["series"][0]
    assert zoom["method"] == "raw" and zoom["step"] == list(range(1000, 1500))
    # A finished run's answer is cached; asking again gives the same.
    again = fresh_client.get("/api/v1/series", params={"run": run.id, "key": "wave", "points": 1000}).json()["series"][0]
    assert again["step"] == series["step"]


def test_a_running_runs_series_grows_between_requests(workspace: Config, fresh_client: TestClient) -> None:
    from groundwork.core.tracking import start_run

    run = start_run(name="live", config=workspace, capture_code=False)
    try:
        run.log({"loss": 1.0}, step=0)
        run.flush()
        first = fresh_client.get("/api/v1/series", params={"run": run.id, "key": "loss"}).json()["series"][0]
        run.log({"loss": 0.5}, step=1)
        run.flush()
        second = fresh_client.get("/api/v1/series", params={"run": run.id, "key": "loss"}).json()["series"][0]
    finally:
        run.end()
    assert first["step"] == [0] and second["step"] == [0, 1]

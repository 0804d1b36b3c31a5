"""``/api/v1/pipelines``: pipeline runs and their DAG with every step's state."""

from __future__ import annotations

from _api_asserts import assert_error
from _ui_store import Recorded
from starlette.testclient import TestClient


def test_list_counts_steps_by_state(client: TestClient, recorded: Recorded) -> None:
    body = client.get("/api/v1/pipelines").json()
    by_id = {p["id"]: p for p in body["pipelines"]}
    assert body["total"] == 3 and set(by_id) == {recorded.pipeline, recorded.numbers, recorded.numbers_cached}
    assert by_id[recorded.pipeline]["steps"] == {"finished": 2, "failed": 1}
    assert by_id[recorded.numbers]["steps"] == {"finished": 4}
    assert by_id[recorded.numbers_cached]["steps"] == {"cached": 4}
    assert [p["id"] for p in body["pipelines"]][0] == recorded.numbers_cached  # newest first


def test_dag_comes_from_pipeline_json(client: TestClient, recorded: Recorded) -> None:
    dag = client.get(f"/api/v1/pipelines/{recorded.numbers}").json()["dag"]
    assert dag["source"] == "pipeline.json" and dag["pipeline"] == "numbers"
    assert [n["id"] for n in dag["nodes"]] == ["make", "double", "total", "total_2"]
    assert {n["state"] for n in dag["nodes"]} == {"ran"}
    assert {(e["source"], e["target"]) for e in dag["edges"]} == {("make", "double"), ("double", "total"), ("make", "total_2")}
    cached = client.get(f"/api/v1/pipelines/{recorded.numbers_cached}").json()["dag"]
    assert {n["state"] for n in cached["nodes"]} == {"cached"}
    runs = {n["id"]: n["run_id"] for n in dag["nodes"]}
    assert {n["id"]: n["cached_from"] for n in cached["nodes"]} == runs


def test_without_pipeline_json_edges_follow_the_data(client: TestClient, recorded: Recorded) -> None:
    dag = client.get(f"/api/v1/pipelines/{recorded.pipeline}").json()["dag"]
    assert dag["source"] == "artifacts"
    states = {n["id"]: n["state"] for n in dag["nodes"]}
    assert states == {"ingest": "ran", "features": "ran", "train": "failed"}
    assert {(e["source"], e["target"]) for e in dag["edges"]} == {("ingest", "features"), ("features", "train")}
    assert {n["run_id"] for n in dag["nodes"]} == set(recorded.steps.values())


def test_unknown_pipeline(client: TestClient) -> None:
    assert_error(client.get("/api/v1/pipelines/nope"), 404)

"""``/api/v1/lineage``: the graph around a run, an artifact or a model version."""

from __future__ import annotations

import pytest
from _api_asserts import assert_error
from _ui_store import Recorded
from starlette.testclient import TestClient


def _names(graph: dict[str, object]) -> set[str]:
    return {n["label"] for n in graph["nodes"]}  # type: ignore[index, union-attr]


def test_around_a_run(client: TestClient, recorded: Recorded) -> None:
    graph = client.get("/api/v1/lineage", params={"ref": recorded.train[0]}).json()["graph"]
    assert graph["root"] == f"run:{recorded.train[0]}"
    assert {"prepare-data", "train.csv", "train-lr0.1", "confusion.png", "model_dir"} <= _names(graph)
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    data = f"artifact:{recorded.dataset_digest}"
    assert (f"run:{recorded.prep}", data) in edges  # prepare-data wrote it
    assert (data, f"run:{recorded.train[0]}") in edges  # train read it


def test_ancestry_is_the_clis_graph(client: TestClient, recorded: Recorded) -> None:
    from groundwork.core.lineage import lineage

    graph = client.get("/api/v1/lineage", params={"ref": recorded.train[0], "direction": "up"}).json()["graph"]
    cli = lineage(recorded.train[0], config=client.app.state.groundwork.config).to_dict()  # type: ignore[attr-defined]
    assert {n["id"] for n in graph["nodes"]} == {n["id"] for n in cli["nodes"]}
    assert {(e["source"], e["target"]) for e in graph["edges"]} == {(e["source"], e["target"]) for e in cli["edges"]}
    # one JSON shape per node for the CLI's --json and the API
    assert sorted(graph["nodes"], key=lambda n: n["id"]) == sorted(cli["nodes"], key=lambda n: n["id"])
    assert graph["direction"] == cli["direction"] == "up"
    assert "confusion.png" not in _names(graph)  # an output: a descendant, not an ancestor


def test_depth_limits_the_walk(client: TestClient, recorded: Recorded) -> None:
    near = client.get("/api/v1/lineage", params={"ref": recorded.train[0], "depth": 1}).json()["graph"]
    assert "prepare-data" not in _names(near) and "train.csv" in _names(near)


def test_around_an_artifact_by_prefix(client: TestClient, recorded: Recorded) -> None:
    graph = client.get("/api/v1/lineage", params={"ref": recorded.dataset_digest[:12], "type": "artifact"}).json()["graph"]
    assert graph["root"] == f"artifact:{recorded.dataset_digest}"
    assert {"prepare-data", "train-lr0.1", "train-lr0.01"} <= _names(graph)


def test_around_a_model_alias(client: TestClient, recorded: Recorded) -> None:
    if recorded.model is None:
        pytest.skip("scikit-learn is not installed: no model was registered")
    graph = client.get("/api/v1/lineage", params={"ref": "digits@production"}).json()["graph"]
    assert graph["root"] == "alias:digits@production"
    model = next(n for n in graph["nodes"] if n["type"] == "model")
    assert model["id"] == "model:digits/1" and model["aliases"] == ["production"]
    assert "train-model-C1.0" in _names(graph)
    edges = {(e["source"], e["target"], e["relation"]) for e in graph["edges"]}
    assert ("model:digits/1", "alias:digits@production", "alias") in edges


def test_unknown_targets(client: TestClient) -> None:
    assert_error(client.get("/api/v1/lineage", params={"ref": "nothing-like-this"}), 404)
    assert_error(client.get("/api/v1/lineage", params={"ref": "nope@production"}), 404, "nope")
    assert_error(client.get("/api/v1/lineage", params={"ref": "x", "type": "dataset"}), 400, "type")
    assert_error(client.get("/api/v1/lineage", params={"ref": "x", "direction": "sideways"}), 400, "direction")
    assert_error(client.get("/api/v1/lineage", params={"ref": " "}), 400)


@pytest.mark.parametrize("ref", ["/etc/passwd", "/dev/zero", "~/.bashrc", "./pyproject.toml", "pyproject.toml"])
def test_never_reads_files_on_the_servers_disk(client: TestClient, ref: str) -> None:
    # `groundwork lineage PATH` digests a local file; the API must not (a path to /dev/zero never ends).
    assert_error(client.get("/api/v1/lineage", params={"ref": ref}), 404, "no run, artifact or model")


def test_a_run_named_with_a_slash_or_a_dot_is_still_found(client: TestClient, recorded: Recorded) -> None:
    graph = client.get("/api/v1/lineage", params={"ref": "train-lr0.1"}).json()["graph"]  # ".1" looks like a suffix
    assert graph["root"] == f"run:{recorded.train[0]}"


def test_bad_model_refs_and_overlong_targets_are_400(client: TestClient) -> None:
    assert_error(client.get("/api/v1/lineage", params={"ref": "model:bad name!"}), 400)
    assert_error(client.get("/api/v1/lineage", params={"ref": "x" * 5000}), 400, "too long")


def test_artifact_labels_are_short_but_say_something() -> None:
    from groundwork.core.lineage import _short_name

    assert _short_name("data/train.csv") == "train.csv"
    assert _short_name("model_dir/") == "model_dir"
    assert _short_name("models/digits/1") == "digits/1"  # a registered version's folder
    assert _short_name("train.output") == "train.output"

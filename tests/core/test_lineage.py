"""Lineage: one graph over runs, artifacts and pipelines; targets, both directions, JSON/DOT, providers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.core.lineage import (
    LineageContext,
    LineageEdge,
    LineageNode,
    TargetNotFound,
    lineage,
    register_lineage_provider,
    unregister_lineage_provider,
)
from groundwork.errors import AmbiguousReference, ArtifactNotFound
from groundwork.storage.metadata import open_metadata_store


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    config = Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))
    monkeypatch.setenv("GROUNDWORK_STORE", config.store_url)
    monkeypatch.setenv("GROUNDWORK_ARTIFACTS", config.artifacts_url)
    monkeypatch.chdir(tmp_path)
    return config


@gw.step
def ingest(n: int = 4) -> list:
    return list(range(n))


@gw.step(outputs=("train", "test"))
def split(values: list):  # type: ignore[no-untyped-def]
    return values[:-1], values[-1:]


@gw.step
def fit(train: list) -> dict:
    return {"mean": sum(train) / len(train)}


@gw.step
def evaluate(model: dict, test: list) -> dict:
    return {"error": abs(model["mean"] - test[0])}


@gw.pipeline
def flow(n: int = 4):  # type: ignore[no-untyped-def]
    train, test = split(ingest(n=n))
    return evaluate(fit(train), test)


def test_ancestry_of_a_pipeline_output_reaches_every_step(workspace: Config) -> None:
    result = gw.run_pipeline(flow, executor="inline", config=workspace)
    final = result["evaluate"].outputs["output"].digest
    graph = lineage(final, config=workspace)
    step_names = {n.attrs["name"] for n in graph.runs()}
    assert step_names == {"evaluate", "fit", "split", "ingest"}
    assert graph.root.id == f"artifact:{final}"
    relations = {(e.relation, e.label) for e in graph.edges}
    assert ("input", "model") in relations and ("output", "train") in relations
    text = graph.tree()
    assert text.splitlines()[0].startswith("value output " + final[:12])
    assert "made by step evaluate" in text and "made by step ingest" in text

    data = json.loads(graph.to_json())
    assert data["direction"] == "up" and data["root"] == f"artifact:{final}"
    assert {n["type"] for n in data["nodes"]} == {"run", "artifact"}
    assert all(n["ref"] and n["label"] for n in data["nodes"])
    dot = graph.to_dot()
    assert dot.startswith("digraph lineage {") and f'"artifact:{final}"' in dot and "->" in dot


def test_descendants_of_the_raw_data_and_cached_reruns(workspace: Config) -> None:
    first = gw.run_pipeline(flow, executor="inline", config=workspace)
    second = gw.run_pipeline(flow, executor="inline", config=workspace)
    assert second.fully_cached
    raw = first["ingest"].outputs["output"].digest
    down = lineage(raw, descendants=True, config=workspace)
    names = sorted(n.attrs["name"] for n in down.runs())
    # Each step once: cached reruns read nothing new and are left out.
    assert names == ["evaluate", "fit", "split"]
    assert "read by step split" in down.tree()

    # The cached pipeline run leads back to the runs it reused.
    up = lineage(second.run_id, config=workspace)
    reused = {n.attrs["run_id"] for n in up.runs()} - {second.run_id}
    assert reused == {s.run_id for s in first.steps.values()}
    assert "(cached) step evaluate" in up.tree()

    # A cached step run as target: its original is upstream.
    cached_step = lineage(second["fit"].run_id or "", config=workspace)
    assert any(e.relation == "cached" for e in cached_step.edges)


def test_file_path_targets_and_sdk_runs(workspace: Config, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x\n1\n2\n")
    with gw.start_run(name="prepare", config=workspace) as run:
        run.log_input(data)
        model = tmp_path / "model.txt"
        model.write_text("weights")
        run.log_artifact(model, kind="model")
    with gw.start_run(name="score", config=workspace) as scorer:
        scorer.log_input(model, kind="model")
        (tmp_path / "report.txt").write_text("ok")
        scorer.log_artifact(tmp_path / "report.txt", kind="report")

    up = lineage(str(model), config=workspace)
    assert up.root.attrs["name"] == "model.txt"
    assert [n.attrs["name"] for n in up.runs()] == ["prepare"]
    assert any(n.attrs.get("name") == "data.csv" for n in up.artifacts())

    down = lineage(str(data), descendants=True, config=workspace)
    assert sorted(n.attrs["name"] for n in down.runs()) == ["prepare", "score"]
    assert any(n.attrs.get("artifact_kind") == "report" for n in down.artifacts())
    assert lineage("prepare", config=workspace).root.attrs["name"] == "prepare"

    stranger = tmp_path / "never-logged.txt"
    stranger.write_text("?")
    with pytest.raises(ArtifactNotFound, match="was never recorded"):
        lineage(str(stranger), config=workspace)


def test_prefixes_depth_and_unknown_targets(workspace: Config) -> None:
    result = gw.run_pipeline(flow, executor="inline", config=workspace)
    digest = result["fit"].outputs["output"].digest
    assert lineage(digest[:10], config=workspace).root.id == f"artifact:{digest}"
    run_id = result["fit"].run_id or ""
    assert lineage(run_id[:10], config=workspace).root.id == f"run:{run_id}"
    shallow = lineage(digest, depth=1, config=workspace)
    assert {n.kind for n in shallow.nodes.values()} == {"artifact", "run"} and len(shallow.runs()) == 1
    with pytest.raises(TargetNotFound, match="no run, artifact or file matches 'nothing-here'"):
        lineage("nothing-here", config=workspace)
    store = open_metadata_store(workspace.store_url)
    for suffix in ("1", "2"):
        store.create_run({"id": "abcd" + "0" * 27 + suffix, "name": "twin", "kind": "run", "status": "finished",
                          "created_at": time.time()})
    with pytest.raises(AmbiguousReference):
        lineage("abcd", config=workspace)


class _Shelf:
    """A provider for a made-up noun: ``shelf@<digest>`` puts an artifact on a shelf."""

    def resolve(self, ref: str, ctx: LineageContext) -> LineageNode | None:
        if not ref.startswith("shelf@"):
            return None
        return LineageNode(f"shelf:{ref[6:]}", "shelf", f"shelf {ref[6:18]}", {"digest": ref[6:]})

    def expand(
        self, nodes: Sequence[LineageNode], direction: str, ctx: LineageContext
    ) -> Iterable[tuple[LineageEdge, LineageNode]]:
        for node in nodes:
            if node.kind == "shelf" and direction == "up":
                digest = node.attrs["digest"]
                yield LineageEdge(f"artifact:{digest}", node.id, "shelved"), ctx.artifact_node(digest)


def test_providers_add_nodes_and_edges(workspace: Config) -> None:
    result = gw.run_pipeline(flow, executor="inline", config=workspace)
    digest = result["fit"].outputs["output"].digest
    shelf = register_lineage_provider(_Shelf())
    try:
        graph = lineage(f"shelf@{digest}", config=workspace)
    finally:
        unregister_lineage_provider(shelf)
    assert graph.root.kind == "shelf"
    assert {n.attrs.get("name") for n in graph.runs()} == {"fit", "split", "ingest"}
    assert "shelved" in {e.relation for e in graph.edges}

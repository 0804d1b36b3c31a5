"""One store test suite, run against every implementation of the store contracts.

* ``sqlite``: the SQL stores on a SQLite file;
* ``postgres``: the SQL stores on a real PostgreSQL (the session's server, a fresh database);
* ``http``: the team server's client (:mod:`groundwork.storage.http`) against a real
  ``groundwork server`` process with 2 workers (the ``team_server`` session fixture), each
  test in a fresh project with a maintainer's token.

Every method of :class:`MetadataStore`, :class:`RegistryStore`, :class:`PipelineStore` and
:class:`MonitorStore` is called at least once (the last test checks this file for it), with
the same assertions on every implementation: what one of them does, all of them do.
"""

from __future__ import annotations

import inspect
import json
import math
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _servers import GroundworkServer, team_token
from groundwork.config import Config
from groundwork.errors import (
    AmbiguousReference,
    Conflict,
    InvalidFilter,
    InvalidInput,
    ModelNotFound,
    RunNotFound,
)
from groundwork.filters import parse_filter, parse_order
from groundwork.storage.http import CONTRACTS, contract_methods
from groundwork.storage.records import ArtifactRow, Link, MetricSegment, NewRun, RunCreate, RunEnd
from groundwork.storage.stores import Stores, open_stores

ART = ArtifactRow("a" * 64, 10, True, 2)


def digest() -> str:
    """A fresh artifact digest (artifacts are shared by every project of a store: each test makes its own)."""
    return uuid.uuid4().hex * 2


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "http"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    """Empty stores of one implementation."""
    if request.param == "http":
        server: GroundworkServer = request.getfixturevalue("team_server")
        project = f"p-{uuid.uuid4().hex[:12]}"
        token = team_token(server.store_url, project, "maintainer")
        return open_stores(Config(server_url=server.url, token=token))
    url = f"sqlite:///{tmp_path / 'meta.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    return open_stores(Config(store_url=url, artifacts_url=str(tmp_path / "artifacts")))


def row(run_id: str | None = None, **fields: Any) -> dict[str, Any]:
    now = time.time()
    values: dict[str, Any] = {"id": run_id or uuid.uuid4().hex, "name": "train", "kind": "run", "status": "running",
                              "created_at": now, "heartbeat_at": now, "host": "box", "pid": 4242}
    values.update(fields)
    return values


def model_name() -> str:
    """Model names are unique in a store (a model belongs to one project): one per test, for the shared server."""
    return f"digits-{uuid.uuid4().hex[:8]}"


def new_run(stores: Stores, **fields: Any) -> str:
    values = row(**fields)
    stores.metadata.create_run(values)
    return str(values["id"])


# -- runs -----------------------------------------------------------------------------------------------------


def test_a_run_keeps_its_params_with_their_types_tags_environment_and_first_ending(stores: Stores) -> None:
    db = stores.metadata
    run_id = uuid.uuid4().hex
    env = ("e" * 64, json.dumps({"python": {"version": "3.11"}}))
    db.create_run(row(run_id, name="baseline", command=["python", "train.py"]),
                  params={"lr": 0.01, "layers": [64, 32], "optimizer": "adam", "flag": True, "none": None, "n": 3},
                  tags={"team": "nlp"}, environment=env,
                  links=[{"direction": "input", "name": "data.csv", "digest": digest(), "size": 5, "is_dir": False,
                          "file_count": 1, "kind": "dataset"}])
    got = db.get_run(run_id)
    assert (got.name, got.command, got.status) == ("baseline", ["python", "train.py"], "running")
    assert got.params == {"lr": 0.01, "layers": [64, 32], "optimizer": "adam", "flag": True, "none": None, "n": 3}
    assert got.tags == {"team": "nlp"}
    assert db.environment("e" * 64) == {"python": {"version": "3.11"}}
    assert db.environment("f" * 64) is None
    db.log_params(run_id, {"lr": 0.02})
    db.set_tags(run_id, {"stage": "dev", "n": 7})
    db.delete_tag(run_id, "team")
    got = db.get_run(run_id)
    assert got.params["lr"] == 0.02 and got.tags == {"stage": "dev", "n": "7"}
    db.heartbeat([run_id], now=time.time() + 5)
    assert db.get_run(run_id).heartbeat_at is not None
    db.end_run(run_id, "finished", exit_code=0)
    db.end_run(run_id, "failed", error="late")  # the first ending is kept
    ended = db.get_run(run_id)
    assert (ended.status, ended.exit_code, ended.error) == ("finished", 0, None) and ended.ended_at is not None
    db.update_run(run_id, status="running", ended_at=None, exit_code=None)  # reopened (a resumed sweep does this)
    assert db.get_run(run_id).status == "running"


def test_unknown_runs_and_bad_filters_raise_the_same_errors_everywhere(stores: Stores) -> None:
    db = stores.metadata
    with pytest.raises(RunNotFound):
        db.get_run("0" * 32)
    with pytest.raises(RunNotFound):
        db.log_params("0" * 32, {"a": 1})
    with pytest.raises(InvalidFilter) as bad:
        db.search_runs("metrics.acc >> 3")
    assert bad.value.column == 14 and "expected" in bad.value.message
    new_run(stores, id="abcd" + "0" * 28)
    new_run(stores, id="abcd" + "1" * 28)
    with pytest.raises(AmbiguousReference):
        db.resolve_run("abcd")
    with pytest.raises(ModelNotFound):
        stores.registry.set_alias(model_name(), "production", 1, who="me")


def test_taken_run_ids_and_unknown_environments_are_clear_errors_and_empty_writes_write_nothing(
    stores: Stores,
) -> None:
    """Found by the team API fuzz (tests/security/test_team_api_fuzz.py): a taken id or an unknown
    environment or a null name was a database IntegrityError (a 500), runs of different columns in one
    batch a StatementError (a 500), an empty write invalid SQL (a 503), and an environment that is not
    JSON was stored, to fail every later read of it (a 500)."""
    db = stores.metadata
    run_id = new_run(stores, name="first")
    with pytest.raises(Conflict, match="exists already"):
        db.create_run(row(run_id, name="second"), params={"lr": 1})
    assert (db.get_run(run_id).name, db.get_run(run_id).params) == ("first", {})
    other = uuid.uuid4().hex
    with pytest.raises(InvalidInput, match="names an environment \\(ffff"):
        db.create_run(row(other, env_digest="f" * 64))
    with pytest.raises(RunNotFound):
        db.get_run(other)
    db.log_params(run_id, {})
    db.set_tags(run_id, {})
    db.update_run(run_id)
    assert (db.get_run(run_id).params, db.get_run(run_id).tags) == ({}, {})
    with pytest.raises(RunNotFound):
        db.update_run("0" * 32)
    with pytest.raises(InvalidInput, match="name, status cannot be null"):
        db.update_run(run_id, status=None, name=None, ended_at=None)
    assert db.get_run(run_id).status == "running"
    with pytest.raises(Conflict, match="exists already"):
        stores.pipelines.insert_runs([NewRun(row=row(other)), NewRun(row=row(run_id))])
    with pytest.raises(Conflict, match="given twice"):
        stores.pipelines.insert_runs([NewRun(row=row(other)), NewRun(row=row(other))])
    with pytest.raises(RunNotFound):
        db.get_run(other)
    env = digest()  # environments are shared by the projects of a store: a fresh one
    with pytest.raises(InvalidInput, match="not a JSON object"):
        db.create_run(row(other), environment=(env, "{not json"))
    with pytest.raises(InvalidInput, match="not a JSON object"):
        stores.pipelines.finish_run(run_id, "finished", environment=(env, "[]"))
    assert db.environment(env) is None and db.get_run(run_id).status == "running"
    lean = {key: value for key, value in row().items() if key not in ("kind", "host", "pid")}
    stores.pipelines.insert_runs([NewRun(row=row(other, cache_key=digest())), NewRun(row=lean)])  # rows of other columns
    assert (db.get_run(other).kind, db.get_run(lean["id"]).kind, db.get_run(lean["id"]).host) == ("run", "run", None)


def test_metric_batches_are_written_in_order_once_per_batch_id(stores: Stores) -> None:
    db = stores.metadata
    run_id = uuid.uuid4().hex
    now = time.time()
    points = [(run_id, "loss", step, 1.0 / (step + 1), now + step) for step in range(500)]
    segment = MetricSegment(run_id, "acc", np.arange(3, dtype=np.int64), np.array([0.1, math.nan, 0.3]),
                            np.full(3, now))
    batch = dict(points=points, logs=[(run_id, "stdout", now, "epoch 1\n")], segments=[segment],
                 creations=[RunCreate(row(run_id), params={"lr": 0.1})], batch_id=uuid.uuid4().hex)
    assert db.write_batch(**batch) is True
    assert db.write_batch(**batch) is False  # a retry after a lost answer changes nothing
    db.log_metrics([(run_id, "loss", 5, math.inf, now + 600)])
    history = db.metric_history(run_id, "loss")
    assert len(history) == 501 and [s for s, _, _ in history][:7] == [0, 1, 2, 3, 4, 5, 5]
    assert history[6][1] == math.inf
    acc = db.metric_series(run_id, "acc")
    assert acc.steps.tolist() == [0, 1, 2] and acc.values[0] == 0.1 and math.isnan(acc.values[1])
    window = db.metric_series(run_id, "loss", step_min=10, step_max=12)
    assert window.steps.tolist() == [10, 11, 12] and window.values.dtype == np.float64
    assert sorted(db.metric_keys(run_id)) == ["acc", "loss"]
    latest = {m.key: m for m in db.latest_metrics(run_id)}
    assert latest["loss"].step == 499 and latest["acc"].value == 0.3
    assert db.write_batch(end=RunEnd(run_id, "failed", exit_code=3, error="boom"), batch_id=uuid.uuid4().hex)
    assert (db.get_run(run_id).status, db.get_run(run_id).exit_code) == ("failed", 3)


def test_captured_output_reads_back_whole_tailed_after_an_id_and_by_text(stores: Stores) -> None:
    db = stores.metadata
    run_id = new_run(stores)
    now = time.time()
    db.write_batch(logs=[(run_id, "stdout" if i % 2 else "stderr", now + i, f"line {i}\n") for i in range(10)])
    assert [text for _, _, _, text in db.logs(run_id)][:2] == ["line 0\n", "line 1\n"]
    assert [text for _, _, _, text in db.logs(run_id, stream="stdout", tail=2)] == ["line 7\n", "line 9\n"]
    tail = db.log_entries(run_id, tail=3)
    assert [e.text for e in tail] == ["line 7\n", "line 8\n", "line 9\n"]
    after = db.log_entries(run_id, after=tail[0].id, tail=1)
    assert [e.text for e in after] == ["line 8\n"]
    assert [e.text for e in db.log_entries(run_id, contains="LINE 4")] == ["line 4\n"]


def test_search_count_resolve_and_children(stores: Stores) -> None:
    db = stores.metadata
    parent = new_run(stores, name="sweep", kind="sweep")
    children = []
    for i in range(5):
        run_id = new_run(stores, name=f"trial-{i}", parent_id=parent, created_at=1000.0 + i)
        db.log_params(run_id, {"lr": 0.01 if i % 2 else 0.1})
        db.log_metrics([(run_id, "acc", 0, 0.5 + i / 10, 1000.0 + i)])
        children.append(run_id)
    db.end_run(children[0], "finished")
    found = db.search_runs("metrics.acc > 0.55 and params.lr = 0.01", order_by="-metrics.acc")
    assert [r.id for r in found] == [children[3], children[1]]
    tree = db.search_runs(parse_filter("metrics.acc > 0.6"), order_by=parse_order("metrics.acc"), limit=2, offset=1)
    assert [r.id for r in tree] == [children[3], children[4]]
    assert db.count_runs("metrics.acc > 0.6") == 3 and db.count_runs() == 6
    assert db.search_runs(limit=None)[0].id == parent  # newest first, all of them
    assert db.resolve_run(children[2][:12]) == children[2] and db.resolve_run("trial-4") == children[4]
    assert [r.id for r in db.get_runs([children[1], "0" * 32])] == [children[1]]
    assert [r.id for r in db.child_runs(parent, limit=2, offset=1)] == children[1:3]
    assert db.child_counts([parent, children[0]]) == {parent: {"finished": 1, "running": 4}, children[0]: {}}
    keys = db.keys()
    assert "lr" in keys["params"] and "acc" in keys["metrics"]


def test_artifact_links_by_run_digest_and_prefix(stores: Stores) -> None:
    db, model_digest = stores.metadata, digest()
    writer, reader = new_run(stores), new_run(stores)
    db.add_artifact_link(writer, "output", "model.pt", digest=model_digest, size=10, is_dir=False, file_count=1,
                         kind="model")
    db.add_artifact_link(reader, "input", "model.pt", digest=model_digest, size=10, is_dir=False, file_count=1)
    (out,) = db.run_artifacts(writer, "output")
    assert (out.name, out.kind, out.size, out.is_dir) == ("model.pt", "model", 10, False)
    assert db.run_artifacts(writer, "input") == []
    assert sorted(link.run_id for link in db.artifact_users(model_digest)) == sorted([writer, reader])
    assert db.find_artifacts(model_digest[:8]) == [model_digest]


# -- the registry ------------------------------------------------------------------------------------------------


def test_versions_aliases_history_and_exports(stores: Stores) -> None:
    reg, name, small, bundle = stores.registry, model_name(), digest(), digest()
    run_id = new_run(stores)
    assert reg.create_version(name, artifact=ART, flavor="sklearn", run_id=run_id, signature={"inputs": []},
                              tags={"team": "a"}, info={"sklearn": "1"}, description="first") == 1
    assert reg.create_version(name, artifact=ArtifactRow(small, 5, False, 1), flavor="onnx") == 2
    reg.set_description(name, "the digits model")
    reg.set_description(name, "v2 is smaller", version=2)
    model = reg.get_model(name)
    assert model is not None and (model.description, model.latest_version) == ("the digits model", 2)
    assert reg.get_model("nothing") is None
    assert [m.name for m in reg.list_models()] == [name] and reg.model_names() == [name]
    first = reg.get_version(name, 1)
    assert first is not None and (first.run_id, first.signature, first.tags) == (run_id, {"inputs": []}, {"team": "a"})
    assert reg.get_version(name, 9) is None
    assert reg.latest_version(name) == 2 and reg.latest_version("nothing") is None
    assert [v.version for v in reg.list_versions(name)] == [1, 2] and reg.version_numbers(name) == [1, 2]
    assert [v.version for v in reg.versions_for_run(run_id)] == [1]
    assert [v.version for v in reg.versions_for_artifact(small)] == [2]
    assert reg.set_alias(name, "production", 1, who="alice") is None
    assert reg.set_alias(name, "production", 2, who="bob", reason="smaller") == 1
    reg.set_alias(name, "staging", 1, who="alice")
    assert reg.aliases(name) == {"production": 2, "staging": 1}
    assert reg.all_aliases() == {name: {"production": 2, "staging": 1}}
    assert reg.alias_version(name, "production") == 2 and reg.alias_version(name, "nope") is None
    moves = reg.alias_history(name, "production")
    from groundwork.storage.http import HttpRegistryStore

    bob = "alice" if isinstance(reg, HttpRegistryStore) else "bob"  # a server records its token's user (alice)
    assert [(m.from_version, m.to_version, m.who, m.reason) for m in moves] == [(1, 2, bob, "smaller"),
                                                                               (None, 1, "alice", None)]
    assert len(reg.alias_history(name, limit=1)) == 1
    export_id = reg.add_export(name, 2, target="browser", precision="fp16", artifact=ArtifactRow(bundle, 3, True, 2),
                               verification={"max_abs_diff": 0.001}, location="out/", user="alice")
    (export,) = reg.exports(name)
    assert (export.id, export.target, export.verification) == (export_id, "browser", {"max_abs_diff": 0.001})
    assert reg.exports(name, version=1) == []
    assert reg.get_export(export_id) == export and reg.get_export(export_id + 1000) is None
    assert reg.exports_for_artifact(bundle) == [export]


# -- pipelines ---------------------------------------------------------------------------------------------------


def test_pipeline_runs_links_and_cache_look_ups(stores: Stores) -> None:
    pipes, db, data_digest, model_digest, key = stores.pipelines, stores.metadata, digest(), digest(), digest()
    parent = new_run(stores, name="pipeline", kind="pipeline")
    data = Link("input", "data.csv", data_digest, 5, False, 1, "dataset")
    step_id, cached_id = uuid.uuid4().hex, uuid.uuid4().hex
    pipes.insert_runs([
        NewRun(row=row(step_id, name="train", kind="step", parent_id=parent, cache_key=key), params={"epochs": 2},
               tags={"gw.step": "{}"}, links=[data]),
    ])
    out = Link("output", "model", model_digest, 7, True, 3, "model")
    pipes.finish_run(step_id, "finished", links=[out], tags={"gw.outputs": "model"},
                     environment=("d" * 64, json.dumps({"python": {}})))
    pipes.insert_runs([NewRun(row=row(cached_id, name="train", kind="step", status="cached", parent_id=parent,
                                      cache_key=key, cached_from=step_id, ended_at=time.time()))])
    pipes.add_links(cached_id, [out])
    finished = db.get_run(step_id)
    assert (finished.status, finished.env_digest, finished.params) == ("finished", "d" * 64, {"epochs": 2})
    (candidate,) = pipes.find_cached([key, "x" * 64], tag_keys=["gw.outputs"])[key]
    assert (candidate.run_id, [o.name for o in candidate.outputs], dict(candidate.tags)) == (
        step_id, ["model"], {"gw.outputs": "model"})
    links = pipes.links_for_runs([step_id, cached_id])
    assert sorted(link.name for link in links[step_id]) == ["data.csv", "model"]
    assert [link.name for link in pipes.links_for_runs([step_id], direction="input")[step_id]] == ["data.csv"]
    by_digest = pipes.links_for_digests([model_digest])
    assert [link.run_id for link in by_digest[model_digest]] == [step_id, cached_id]
    assert pipes.artifact_rows([model_digest])[model_digest]["size"] == 7
    assert pipes.runs_citing("cached_from", [step_id]) == {step_id: [cached_id]}
    assert sorted(pipes.runs_citing("parent_id", [parent])[parent]) == sorted([step_id, cached_id])
    assert pipes.runs_tagged("gw.outputs", ["model", "none"]) == {"model": [step_id]}


# -- the prediction log ------------------------------------------------------------------------------------------------


def test_prediction_log_segments_open_fill_and_close(stores: Stores) -> None:
    name = model_name()
    stores.registry.create_version(name, artifact=ART, flavor="sklearn")
    mon = stores.monitor
    t0 = 1_000_000.0
    mon.open_segment("a" * 32, name, pid=12, host="box", opened_at=t0)
    mon.touch_segment("a" * 32, rows=40, requests=30, updated_at=t0 + 5)
    (seg,) = mon.segments(name)
    assert (seg.status, seg.rows, seg.requests, seg.pid) == ("open", 40, 30, 12)
    summary = {"format": 1, "groups": [{"requests": 3, "sketch": list(range(50))}], "mean": 0.5}
    mon.close_segment("a" * 32, model=name, digest="f" * 64, size=123, rows=41, requests=31, first_ts=t0,
                      last_ts=t0 + 50, summary=summary, closed_at=t0 + 51)
    (seg,) = mon.segments(name, since=t0, statuses=["closed"])
    assert (seg.status, seg.digest, seg.summary) == ("closed", "f" * 64, summary)
    (bare,) = mon.segments(name, summaries=False)
    assert bare.summary is None
    assert mon.segments(name, until=t0 - 1) == []
    assert mon.monitored_models() == {name: 1}


# -- the suite covers the contracts --------------------------------------------------------------------------------


def test_every_method_of_every_contract_is_exercised_here() -> None:
    source = inspect.getsource(inspect.getmodule(test_every_method_of_every_contract_is_exercised_here))  # type: ignore[arg-type]
    missing = [f"{contract}.{name}" for contract in CONTRACTS for name in contract_methods(contract)
               if f".{name}(" not in source]
    assert missing == []

"""The metadata store, on SQLite and on a real PostgreSQL (the ``store_url`` fixture)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from groundwork.errors import AmbiguousReference, RunNotFound, SchemaTooNew, StoreError, UnsupportedURL
from groundwork.storage import metadata as md
from groundwork.storage.metadata import SqlMetadataStore


def new_run(
    store: SqlMetadataStore, run_id: str | None = None, params: dict[str, object] | None = None, **fields: object
) -> str:
    run_id = run_id or uuid.uuid4().hex
    row = {
        "id": run_id,
        "name": "r",
        "kind": "run",
        "status": "running",
        "created_at": time.time(),
        "heartbeat_at": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    row.update(fields)
    store.create_run(row, params=params)
    return run_id


@pytest.fixture
def store(store_url: str) -> SqlMetadataStore:
    s = SqlMetadataStore(store_url)
    yield s
    s.close()


def test_run_round_trip(store: SqlMetadataStore) -> None:
    run_id = uuid.uuid4().hex
    store.create_run(
        {"id": run_id, "name": "baseline", "kind": "run", "status": "running", "created_at": 1.0,
         "command": ["python", "train.py"], "host": "elsewhere", "heartbeat_at": time.time()},
        params={"lr": 0.01, "optimizer": "adam", "layers": [64, 32], "flag": True},
        tags={"team": "nlp"},
        environment=("e" * 64, json.dumps({"python": {"version": "3.11"}})),
    )
    row = store.get_run(run_id)
    assert row.name == "baseline"
    assert row.command == ["python", "train.py"]
    assert row.params == {"lr": 0.01, "optimizer": "adam", "layers": [64, 32], "flag": True}  # as logged
    assert row.tags == {"team": "nlp"}
    store.log_params(run_id, {"lr": 0.02})
    assert store.get_run(run_id).params["lr"] == 0.02
    store.end_run(run_id, "finished", exit_code=0)
    store.end_run(run_id, "failed")  # the first ending is kept
    ended = store.get_run(run_id)
    assert ended.status == "finished" and ended.exit_code == 0 and ended.ended_at is not None


def test_metric_points_history_and_latest(store: SqlMetadataStore) -> None:
    run_id = new_run(store)
    now = time.time()
    points = [(run_id, "loss", step, 1.0 / (step + 1), now + step) for step in range(2000)]
    points.append((run_id, "acc", 3, 0.5, now))
    points.append((run_id, "acc", 1, 0.9, now + 10))  # a later-logged point at an earlier step
    store.write_batch(points=points)
    store.write_batch(points=[(run_id, "loss", 5, float("nan"), now + 3)])
    history = store.metric_history(run_id, "loss")
    assert len(history) == 2001
    assert [s for s, _, _ in history][:7] == [0, 1, 2, 3, 4, 5, 5]
    assert any(math.isnan(v) for _, v, _ in history)
    row = store.get_run(run_id)
    assert row.metrics["loss"] == pytest.approx(1.0 / 2000)  # highest step wins
    assert row.metrics["acc"] == 0.5
    assert store.metric_keys(run_id) == ["acc", "loss"]


def test_logs_in_order_and_tail(store: SqlMetadataStore) -> None:
    run_id = new_run(store)
    store.write_batch(logs=[(run_id, "stdout" if i % 2 else "stderr", time.time(), f"line {i}\n") for i in range(10)])
    assert [t for *_, t in store.logs(run_id)] == [f"line {i}\n" for i in range(10)]
    assert [t for *_, t in store.logs(run_id, tail=3)] == ["line 7\n", "line 8\n", "line 9\n"]
    assert len(store.logs(run_id, stream="stdout")) == 5


def test_resolve_by_id_prefix_and_name(store: SqlMetadataStore) -> None:
    a = new_run(store, "abcd" + "1" * 28, name="first")
    new_run(store, "abcd" + "2" * 28, name="second")
    c = new_run(store, "ffff" + "3" * 28, name="second")
    assert store.resolve_run(a) == a
    assert store.resolve_run("abcd1") == a
    assert store.resolve_run("second") == c  # the newest run of that name
    with pytest.raises(AmbiguousReference, match="matches 2 runs"):
        store.resolve_run("abcd")
    with pytest.raises(RunNotFound, match="no run with id, id prefix or name 'nope'"):
        store.resolve_run("nope")


def test_dead_process_and_stale_heartbeat_become_crashed(store: SqlMetadataStore) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    dead = new_run(store, pid=child.pid)
    stale = new_run(store, host="another-host", heartbeat_at=time.time() - md.HEARTBEAT_TIMEOUT_S - 5)
    alive = new_run(store)
    store.write_batch(points=[(dead, "loss", 0, 1.0, time.time())])
    assert store.get_run(dead).status == "crashed"
    assert store.get_run(stale).status == "crashed"
    assert store.get_run(alive).status == "running"
    # what the crashed run logged is kept, and the crash is stored, not just shown
    assert store.metric_history(dead, "loss") == [(0, 1.0, pytest.approx(time.time(), abs=60))]
    assert SqlMetadataStore(store.url).get_run(dead).status == "crashed"


def test_artifact_links(store: SqlMetadataStore) -> None:
    run_id = new_run(store)
    store.add_artifact_link(run_id, "input", "data/train.csv", digest="a" * 64, size=10, is_dir=False, file_count=1, kind="dataset")
    store.add_artifact_link(run_id, "output", "model/", digest="b" * 64, size=99, is_dir=True, file_count=3, kind="model")
    links = store.run_artifacts(run_id)
    assert [(link.direction, link.name, link.kind) for link in links] == [
        ("input", "data/train.csv", "dataset"),
        ("output", "model/", "model"),
    ]
    assert [link.run_id for link in store.artifact_users("b" * 64)] == [run_id]


def test_an_artifact_of_several_gibibytes_keeps_its_size(store: SqlMetadataStore) -> None:
    """Sizes are 64-bit on every database (PostgreSQL's column was 32-bit until migration 0008)."""
    run_id = new_run(store)
    size = 5 * 2**30 + 7
    store.add_artifact_link(run_id, "output", "weights.bin", digest="c" * 64, size=size, is_dir=False, file_count=1,
                            kind="model")
    assert [link.size for link in store.run_artifacts(run_id)] == [size]


def test_search_limit_offset_and_count(store: SqlMetadataStore) -> None:
    ids = [new_run(store, created_at=float(i)) for i in range(12)]
    newest_first = [r.id for r in store.search_runs(limit=5)]
    assert newest_first == ids[::-1][:5]
    assert [r.id for r in store.search_runs(limit=5, offset=5)] == ids[::-1][5:10]
    assert store.count_runs() == 12


def test_migrations_match_schema_and_newer_store_is_refused(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from groundwork.storage.schema import metadata

    store = SqlMetadataStore(store_url)
    engine = create_engine(store.url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        if engine.dialect.name == "sqlite":  # 0008 leaves SQLite's INTEGER (64-bit already) as it is
            diffs = [d for d in diffs if not (isinstance(d, list) and d[0][0] == "modify_type"
                                              and d[0][2:4] == ("artifacts", "size"))]
        assert diffs == [], f"migrations and schema.py drifted: {diffs}"
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == md.HEAD_REVISION
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    store.close()
    with pytest.raises(SchemaTooNew, match="newer than this groundwork understands"):
        SqlMetadataStore(store_url)


def test_unknown_scheme_and_unwritable_path(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedURL, match="unknown metadata store scheme 'mysql://'"):
        SqlMetadataStore("mysql://localhost/db")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot write the metadata store"):
        SqlMetadataStore(f"sqlite:///{blocker}/meta.db")


def test_postgres_unreachable_is_one_clear_error() -> None:
    from tests._servers import free_port

    with pytest.raises(StoreError, match="cannot use the metadata store"):
        SqlMetadataStore(f"postgresql://nobody@127.0.0.1:{free_port()}/db?connect_timeout=2")


def test_params_keep_their_type_and_filters_still_see_numbers(store: SqlMetadataStore) -> None:
    """Logged as numbers, params read back as numbers; text stays text (a CLI's --param lr=0.01)."""
    typed = new_run(store, params={"lr": 0.01, "epochs": 3, "big": 2**62, "flag": False, "none": None, "cfg": {"a": 1}})
    texted = new_run(store, params={"lr": "0.01"})
    assert store.get_run(typed).params == {"lr": 0.01, "epochs": 3, "big": 2**62, "flag": False, "none": None,
                                           "cfg": {"a": 1}}
    assert store.get_run(texted).params == {"lr": "0.01"}
    both = {r.id for r in store.search_runs("params.lr = 0.01")}
    assert both == {typed, texted}  # the filter language compares numbers, however they were logged


def test_a_batch_sent_twice_is_written_once(store: SqlMetadataStore) -> None:
    run_id = new_run(store)
    points = [(run_id, "loss", step, 1.0 / (step + 1), float(step)) for step in range(5)]
    assert store.write_batch(points=points, batch_id="client-1/batch-1") is True
    assert store.write_batch(points=points, batch_id="client-1/batch-1") is False  # a retry after a lost answer
    assert store.write_batch(points=points[:1], batch_id="client-1/batch-2") is True
    assert len(store.metric_series(run_id, "loss")) == 6


@pytest.mark.postgres
def test_values_postgresql_cannot_hold_are_one_clear_error_that_writes_nothing(postgres_url: str, tmp_path: Path) -> None:
    """Found by the team API fuzz on PostgreSQL: a NUL in text, a number past an int column and a string
    past its length were a DataError (a 500 through the server), in reads and writes alike."""
    from groundwork.config import Config
    from groundwork.errors import InvalidInput
    from groundwork.storage.records import ArtifactRow, Link
    from groundwork.storage.stores import open_stores

    stores = open_stores(Config(store_url=postgres_url, artifacts_url=str(tmp_path / "artifacts")))
    run_id = new_run(stores.metadata)  # type: ignore[arg-type]  # the SQL store behind the contract
    with pytest.raises(InvalidInput, match="does not fit the store: .*NUL"):
        stores.metadata.set_tags(run_id, {"team": "a\x00b"})
    with pytest.raises(InvalidInput, match="NUL"):
        stores.registry.version_numbers("digits\x00")
    with pytest.raises(InvalidInput, match="out of range"):
        # file_count is a 32-bit column (sizes are 64-bit since migration 0008)
        stores.registry.create_version("digits", artifact=ArtifactRow("a" * 64, 1, False, 2**31), flavor="sklearn")
    with pytest.raises(InvalidInput, match="too long"):
        stores.pipelines.add_links(run_id, [Link("sideways-in", "x", "b" * 64, 1, False, 1, "file")])
    assert stores.metadata.get_run(run_id).tags == {} and stores.registry.version_numbers("digits") == []
    assert stores.pipelines.links_for_runs([run_id]) == {}

"""Registry rows (models, versions, aliases, history) on SQLite and a real PostgreSQL."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from groundwork.storage.metadata import SqlMetadataStore
from groundwork.storage.registry import ArtifactRow, SqlRegistryStore

ART = ArtifactRow("a" * 64, 10, True, 2)


@pytest.fixture
def store(store_url: str) -> Iterator[SqlMetadataStore]:
    s = SqlMetadataStore(store_url)
    yield s
    s.close()


def new_run(store: SqlMetadataStore) -> str:
    run_id = uuid.uuid4().hex
    store.create_run({
        "id": run_id, "name": "train", "kind": "run", "status": "running", "created_at": time.time(),
        "heartbeat_at": time.time(), "host": socket.gethostname(), "pid": os.getpid(),
    })
    return run_id


def test_versions_are_numbered_and_linked_to_their_run(store: SqlMetadataStore) -> None:
    reg = SqlRegistryStore(store)
    run_id = new_run(store)
    assert reg.create_version("digits", artifact=ART, flavor="sklearn", run_id=run_id,
                              signature={"inputs": []}, tags={"team": "a"}, info={"sklearn": "1"}) == 1
    assert reg.create_version("digits", artifact=ArtifactRow("b" * 64, 5, True, 1), flavor="onnx",
                              onnx_digest="c" * 64) == 2
    assert reg.create_version("other", artifact=ART, flavor="sklearn") == 1
    assert [m.name for m in reg.list_models()] == ["digits", "other"]
    assert reg.get_model("digits").latest_version == 2  # type: ignore[union-attr]
    first = reg.get_version("digits", 1)
    assert first is not None
    assert (first.run_id, first.flavor, first.signature, first.tags, first.info) == (
        run_id, "sklearn", {"inputs": []}, {"team": "a"}, {"sklearn": "1"})
    assert reg.latest_version("digits") == 2
    assert reg.version_numbers("digits") == [1, 2]
    assert reg.get_version("digits", 3) is None
    assert [v.version for v in reg.versions_for_run(run_id)] == [1]
    assert [(v.name, v.version) for v in reg.versions_for_artifact("c" * 64)] == [("digits", 2)]
    links = store.run_artifacts(run_id, "output")
    assert [(a.name, a.digest, a.kind) for a in links] == [("models/digits/1", "a" * 64, "model")]


def test_concurrent_writers_each_get_the_next_number(store: SqlMetadataStore) -> None:
    reg = SqlRegistryStore(store)
    got: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(5):
                got.append(reg.create_version("busy", artifact=ART, flavor="sklearn"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(got) == list(range(1, 31))
    assert reg.version_numbers("busy") == list(range(1, 31))


def test_alias_moves_are_kept_in_history(store: SqlMetadataStore) -> None:
    reg = SqlRegistryStore(store)
    for _ in range(3):
        reg.create_version("digits", artifact=ART, flavor="sklearn")
    assert reg.set_alias("digits", "production", 1, who="ann", reason="first") is None
    assert reg.set_alias("digits", "production", 3, who="bob", reason="better") == 1
    assert reg.set_alias("digits", "production", 3, who="bob") == 3  # no move, no history row
    reg.set_alias("digits", "staging", 2, who="ann")
    assert reg.aliases("digits") == {"production": 3, "staging": 2}
    assert reg.all_aliases() == {"digits": {"production": 3, "staging": 2}}
    assert reg.alias_version("digits", "production") == 3
    assert reg.set_alias("digits", "staging", None, who="ann", reason="retired") == 2
    assert reg.alias_version("digits", "staging") is None
    history = reg.alias_history("digits")
    assert [(h.alias, h.from_version, h.to_version, h.who, h.reason) for h in history] == [
        ("staging", 2, None, "ann", "retired"),
        ("staging", None, 2, "ann", None),
        ("production", 1, 3, "bob", "better"),
        ("production", None, 1, "ann", "first"),
    ]
    assert [h.to_version for h in reg.alias_history("digits", "production", limit=1)] == [3]
    assert all(h.changed_at > 0 for h in history)


def test_concurrent_alias_moves_all_land_in_history(store: SqlMetadataStore) -> None:
    reg = SqlRegistryStore(store)
    for _ in range(4):
        reg.create_version("digits", artifact=ART, flavor="sklearn")

    def mover(version: int) -> None:
        for _ in range(5):
            reg.set_alias("digits", "production", version, who=f"w{version}")

    threads = [threading.Thread(target=mover, args=(v,)) for v in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = list(reversed(reg.alias_history("digits", "production")))
    # Every recorded move starts where the previous one ended: none was lost.
    assert history[0].from_version is None
    for before, after in zip(history, history[1:], strict=False):
        assert after.from_version == before.to_version
    assert reg.alias_version("digits", "production") == history[-1].to_version

"""Nothing lost over a network: the writer's outbox against a real ``groundwork server`` that dies.

Each test here starts its own server (2 workers, SQLite, 127.0.0.1), because it kills it:
``kill -9`` of the whole process group, then a start on the same port.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import groundwork as gw
from _servers import GroundworkServer, team_token
from groundwork.config import Config
from groundwork.core import writer as writer_module
from groundwork.core.writer import Outbox, SealedBatch, Writer, seal, spool_dir
from groundwork.storage.records import MetricSegment, RunCreate, RunEnd
from groundwork.storage.stores import open_stores


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GroundworkServer]:
    with GroundworkServer(f"sqlite:///{tmp_path / 'meta.db'}", str(tmp_path / "artifacts"), log_dir=tmp_path) as s:
        yield s


@pytest.fixture
def client_config(server: GroundworkServer) -> Config:
    return Config(server_url=server.url, token=team_token(server.store_url, f"p-{uuid.uuid4().hex[:10]}", "editor"))


_LOG_UNTIL_TOLD = """
    import os, sys, time
    import groundwork as gw
    stop = sys.argv[1]
    with gw.start_run(name="through-a-restart") as run:
        print("run", run.id, flush=True)
        step = 0
        while not os.path.exists(stop):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
            step += 1
            if step % 100 == 0:
                print("logged", step, flush=True)
            time.sleep(0.0005)
    print("done", step, flush=True)
"""


@pytest.mark.slow
def test_kill_9_of_the_server_in_the_middle_of_a_run_loses_and_duplicates_no_point(
    server: GroundworkServer, client_config: Config, tmp_path: Path
) -> None:
    """A run logs continuously; the server is killed (-9), stays away, comes back: every point is there once."""
    stop = tmp_path / "stop"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_LOG_UNTIL_TOLD), str(stop)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, **client_config.child_environ(), "GROUNDWORK_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert child.stdout is not None
    run_id = child.stdout.readline().split()[1]

    def logged_past(count: int) -> int:
        assert child.stdout is not None
        while True:
            line = child.stdout.readline()
            assert line, f"the child stopped: {child.stderr.read() if child.stderr else ''}"
            if line.startswith("logged") and int(line.split()[1]) >= count:
                return int(line.split()[1])

    before = logged_past(2000)
    server.kill()
    during = logged_past(before + 2000)  # it keeps logging while the server is away
    time.sleep(1.0)
    server.start()
    logged_past(during + 2000)
    stop.touch()
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    total = int(out.split()[-1])
    assert total > during
    db = open_stores(client_config).metadata
    steps = [step for step, _, _ in db.metric_history(run_id, "loss")]
    assert steps == list(range(total)), "every point once, in order"
    assert db.get_run(run_id).status == "finished"
    assert list((tmp_path / "cache").glob("spool/*/*.batch")) == []  # nothing was left behind


def test_an_unreachable_server_fills_the_outbox_which_spills_to_disk_and_drains_in_order_when_it_is_back(
    server: GroundworkServer, client_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "SPILL_POINTS", 1000)
    monkeypatch.setattr(writer_module, "SEAL_POINTS", 500)
    store = open_stores(client_config).metadata
    writer = Writer(store, background=False)
    run_id = uuid.uuid4().hex
    now = time.time()
    writer.creations.append(RunCreate({"id": run_id, "name": "offline", "status": "running", "created_at": now}))
    server.kill()
    for round_ in range(6):
        for step in range(round_ * 700, (round_ + 1) * 700):
            writer.points.append((run_id, "x", step, float(step), now))
        writer.try_flush()  # fails: sealed into the outbox, not lost
        assert writer._failing
    assert writer.outbox is not None and len(writer.outbox) >= 9
    spilled = sorted(writer.outbox.spool.glob("*.batch"))
    assert len(spilled) == writer.outbox.spilled >= 5
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in spilled)
    writer.points.append((run_id, "x", 4200, 4200.0, now))  # sealed with the next try
    server.start()
    writer.flush(end=RunEnd(run_id, "finished"))
    assert len(writer.outbox) == 0 and list(writer.outbox.spool.glob("*.batch")) == []
    assert [s for s, _, _ in store.metric_history(run_id, "x")] == list(range(4201))
    assert store.get_run(run_id).status == "finished"


_LOG_WHILE_DOWN = """
    import sys
    import groundwork as gw
    from groundwork.core import writer
    from groundwork.storage import http
    writer.EXIT_WAIT_S = 0.5
    http.RETRY_S = 0.5
    with gw.start_run(name="left-behind") as run:
        run.log_points("x", list(range(5000)))
        print(run.id, flush=True)
"""


def test_batches_a_process_could_not_send_before_it_exited_are_sent_by_the_next_one(
    server: GroundworkServer, client_config: Config, tmp_path: Path
) -> None:
    env = {**os.environ, **client_config.child_environ(), "GROUNDWORK_CACHE_DIR": str(tmp_path / "cache")}
    server.kill()
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(_LOG_WHILE_DOWN)], capture_output=True, text=True,
                           env=env, timeout=120, cwd=tmp_path)
    run_id = child.stdout.split()[0]
    assert "are sent by the next groundwork process" in child.stderr
    assert len(list((tmp_path / "cache").glob("spool/*/*.batch"))) >= 1
    server.start()
    sender = subprocess.run(  # any later process of this server and token adopts and sends them
        [sys.executable, "-c", "import groundwork as gw; gw.runs(limit=1)"], capture_output=True, text=True,
        env=env, timeout=120, cwd=tmp_path,
    )
    assert sender.returncode == 0, sender.stderr
    db = open_stores(client_config).metadata
    assert [s for s, _, _ in db.metric_history(run_id, "x")] == list(range(5000))
    assert db.get_run(run_id).status == "finished"
    assert list((tmp_path / "cache").glob("spool/*/*.batch")) == []


def test_a_batch_is_applied_once_however_often_it_is_sent(client_config: Config) -> None:
    store = open_stores(client_config).metadata
    run_id = uuid.uuid4().hex
    batch = seal([MetricSegment(run_id, "x", np.arange(10), np.ones(10), np.full(10, time.time()))], [],
                 [RunCreate({"id": run_id, "name": "once", "status": "running", "created_at": time.time()})], [], None)
    (only,) = batch
    for _ in range(3):
        store.write_batch(segments=only.segments, creations=only.creations, batch_id=only.id)
    assert len(store.metric_history(run_id, "x")) == 10


def test_sealing_splits_big_series_keeps_new_runs_first_and_the_end_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "SEAL_POINTS", 100)
    now = np.full(250, 1.0)
    create = RunCreate({"id": "r", "name": "r", "status": "running", "created_at": 1.0})
    batches = seal([MetricSegment("r", "x", np.arange(250), np.ones(250), now),
                    MetricSegment("r", "y", np.arange(30), np.ones(30), now[:30])],
                   [("r", "stdout", 1.0, "hi")], [create], ["r"], RunEnd("r", "finished"))
    assert [b.size for b in batches] == [101, 100, 80]
    assert batches[0].creations == (create,) and all(not b.creations for b in batches[1:])
    assert batches[-1].end == RunEnd("r", "finished") and all(b.end is None for b in batches[:-1])
    assert len({b.id for b in batches}) == 3
    steps = np.concatenate([s.steps for b in batches for s in b.segments if s.key == "x"])
    assert steps.tolist() == list(range(250))


def test_a_spooled_batch_reads_back_as_it_was_written(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "spool")
    batch = SealedBatch("id1", segments=(MetricSegment("r", "x", np.arange(3), np.array([1.0, np.nan, np.inf]),
                                                       np.zeros(3)),),
                        logs=(("r", "stdout", 1.5, "text"),), end=RunEnd("r", "failed", 1, "boom"))
    monkey_limit = writer_module.SPILL_POINTS
    try:
        writer_module.SPILL_POINTS = 0  # everything goes to disk
        outbox.append(batch)
    finally:
        writer_module.SPILL_POINTS = monkey_limit
    assert outbox.spilled == 1
    back = outbox.first()
    assert back is not None and back.id == "id1" and back.end == batch.end and back.logs == batch.logs
    assert back.segments[0].steps.tolist() == [0, 1, 2] and np.isnan(back.segments[0].values[1])
    assert back.segments[0].values[2] == np.inf
    outbox.done(back)
    assert len(outbox) == 0 and list((tmp_path / "spool").iterdir()) == []


def test_the_spool_is_one_folder_per_server_and_token(client_config: Config) -> None:
    store = open_stores(client_config).metadata
    other = open_stores(client_config.with_(token=client_config.token + "x")).metadata  # type: ignore[operator]
    assert spool_dir(store) != spool_dir(other)
    assert client_config.token not in str(spool_dir(store))  # type: ignore[operator]
    assert gw  # the SDK is what the children above use

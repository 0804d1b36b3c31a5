"""The background writer: series kept apart, bad points, back-pressure, a failing store, kill -9 at full speed."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.core import writer as writer_module
from groundwork.core.writer import MAX_LAG_S, Writer
from groundwork.storage.metadata import open_metadata_store


def _run_row(config: Config, name: str) -> str:
    """A run whose row is in the store (points need it), ended so no heartbeat is kept."""
    with gw.start_run(name=name, config=config) as run:
        pass
    return run.id


def _steps(store: Any, run_id: str, key: str) -> list[int]:
    return [step for step, _, _ in store.metric_history(run_id, key)]


def test_interleaved_runs_and_keys_each_land_in_their_own_series(workspace: Config) -> None:
    store = open_metadata_store(workspace.store_url)
    runs = [_run_row(workspace, f"r{i}") for i in range(2)]
    writer = Writer(store, background=False)
    now = time.time()
    for step in range(300):
        for run_id in runs:
            for key in ("loss", "acc", "lr"):
                writer.points.append((run_id, key, step, float(step) + (0.5 if key == "acc" else 0.0), now))
    writer.flush()
    for run_id in runs:
        for key in ("loss", "acc", "lr"):
            history = store.metric_history(run_id, key)
            assert [s for s, _, _ in history] == list(range(300))
            assert history[7][1] == (7.5 if key == "acc" else 7.0)
    assert store.get_run(runs[0]).metrics["acc"] == 299.5


def test_a_step_beyond_64_bits_is_dropped_with_a_warning_and_the_rest_written(
    workspace: Config, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_metadata_store(workspace.store_url)
    run_id = _run_row(workspace, "big-step")
    writer = Writer(store, background=False)
    now = time.time()
    writer.points.extend([(run_id, "loss", 0, 1.0, now), (run_id, "loss", 1 << 70, 2.0, now), (run_id, "loss", 2, 3.0, now)])
    with caplog.at_level(logging.WARNING, logger="groundwork.core.writer"):
        writer.flush()
    assert _steps(store, run_id, "loss") == [0, 2]
    assert "dropped 1 points whose step does not fit in 64 bits" in caplog.text
    assert not writer.points  # nothing left to fail again


def test_without_a_thread_a_logging_call_writes_a_backlog_older_than_the_limit_itself(workspace: Config) -> None:
    store = open_metadata_store(workspace.store_url)
    run_id = _run_row(workspace, "backlog")
    writer = Writer(store, background=False)  # no thread: only back-pressure can write
    writer.points.extend([(run_id, "loss", 0, 1.0, time.time()), (run_id, "loss", 1, 1.0, time.time())])
    writer.check_backlog()
    assert _steps(store, run_id, "loss") == []  # a young backlog is left to the writer: the caller goes on
    writer.points[0] = (run_id, "loss", 0, 1.0, time.time() - 2 * MAX_LAG_S)  # as if the writer fell behind
    writer.check_backlog()
    assert _steps(store, run_id, "loss") == [0, 1]  # written, all of it, before the call returned


def test_with_the_writer_thread_a_logging_call_waits_for_an_old_backlog_to_be_written(workspace: Config) -> None:
    store = open_metadata_store(workspace.store_url)
    run_id = _run_row(workspace, "waits")
    writer = Writer(store)
    writer.points.extend([(run_id, "loss", step, 1.0, time.time() - 2 * MAX_LAG_S) for step in range(3)])
    writer.check_backlog()
    assert _steps(store, run_id, "loss") == [0, 1, 2]


def test_a_failing_store_keeps_the_points_warns_once_and_catches_up(
    workspace: Config, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_metadata_store(workspace.store_url)
    run_id = _run_row(workspace, "outage")
    database = workspace.store_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:  # a real failure inside SQLite, for every chunk written
        conn.execute("CREATE TRIGGER outage BEFORE INSERT ON metric_chunks BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    writer = Writer(store, background=False)
    with caplog.at_level(logging.WARNING, logger="groundwork.core.writer"):
        for step in range(3):
            writer.points.append((run_id, "loss", step, 1.0, time.time() - 2 * MAX_LAG_S))
            writer.check_backlog()  # an old backlog, but the store is failing: logging goes on
            writer.try_flush()
        assert caplog.text.count("could not write to the store") == 1
        assert "disk trouble" in caplog.text
        assert len(writer.points) == 3
        with sqlite3.connect(database) as conn:
            conn.execute("DROP TRIGGER outage")
        writer.try_flush()
    assert _steps(store, run_id, "loss") == [0, 1, 2]
    assert "works again" in caplog.text


def test_the_run_ends_in_the_transaction_of_its_last_points(workspace: Config) -> None:
    with gw.start_run(name="tail", config=workspace) as run:
        for step in range(5000):
            run.log({"loss": 1.0 / (step + 1), "acc": step / 5000}, step=step)
    r = gw.get_run(run.id, config=workspace)
    assert r.status == "finished"
    assert [p.step for p in r.history("acc")] == list(range(5000))
    assert r.metrics["loss"] == pytest.approx(1 / 5000)
    assert writer_module.pending_writes() is False


# -- the crash promise at full speed -------------------------------------------------------------------

_LOG_AS_FAST_AS_POSSIBLE = """
    import time
    import groundwork as gw
    with gw.start_run(name="full-speed") as run:
        print("RUN", run.id, flush=True)
        step = 0
        while True:  # two series at once, one call per step, as fast as the SDK takes them
            run.log({"loss": 1.0 / (step + 1), "acc": (step % 100) / 100}, step=step)
            step += 1
            if step % 2048 == 0:  # how many steps it has handed over, and when (its own clock)
                print("HANDED", step, repr(time.monotonic()), flush=True)
"""


@pytest.mark.slow
def test_kill_9_at_full_speed_loses_at_most_one_second_of_logging(workspace: Config) -> None:
    """Every point handed over more than a second before the kill is in the store.

    The child logs as fast as the SDK accepts points and reports (steps, time) every
    2,048 steps. Time here is CLOCK_MONOTONIC, one clock for the whole machine: the
    child's marks and the moment of the kill are on it. No limit is put on how long
    anything takes; only what was handed over and when decides.
    """
    environ = {**os.environ, **workspace.child_environ()}
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_LOG_AS_FAST_AS_POSSIBLE)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ,
    )
    assert child.stdout is not None
    run_id = child.stdout.readline().split()[1]
    marks: list[tuple[int, float]] = []
    logging_for = threading.Event()

    def read_marks() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            _, count, at = line.split()
            marks.append((int(count), float(at)))
            if marks[-1][1] - marks[0][1] >= 2.5:  # two and a half seconds of the child's logging
                logging_for.set()

    reader = threading.Thread(target=read_marks, daemon=True)
    reader.start()
    logging_for.wait()
    killed_at = time.monotonic()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    reader.join()

    store = open_metadata_store(workspace.store_url)
    assert store.integrity_check()
    owed = max(count for count, at in marks if at <= killed_at - 1.0)
    for key in ("loss", "acc"):
        steps = _steps(store, run_id, key)
        assert steps == list(range(len(steps))), "points are contiguous: no write was half-done"
        assert len(steps) >= owed, (
            f"{owed - len(steps)} {key} points handed over more than 1 s before the kill are missing "
            f"(stored {len(steps)}, handed over at least {marks[-1][0]})"
        )
    assert gw.get_run(run_id, config=workspace).status == "crashed"


def test_writers_are_per_store_and_process(workspace: Config, tmp_path: Path) -> None:
    first = open_metadata_store(workspace.store_url)
    other = open_metadata_store(f"sqlite:///{tmp_path / 'other.db'}")
    assert writer_module.writer_for(first) is writer_module.writer_for(open_metadata_store(workspace.store_url))
    assert writer_module.writer_for(first) is not writer_module.writer_for(other)


def test_one_process_logging_to_two_projects_of_one_store_keeps_them_apart(workspace: Config) -> None:
    """The writer is per database and project: a second project's runs never land in the first's."""
    vision, speech = (Config(store_url=workspace.store_url, artifacts_url=workspace.artifacts_url, project=name)
                      for name in ("vision", "speech"))
    for config in (vision, speech):
        with gw.start_run(name=f"in-{config.project}", config=config) as run:
            run.log({"loss": 1.0}, step=0)
    assert [r.name for r in gw.runs(config=vision)] == ["in-vision"]
    assert [r.name for r in gw.runs(config=speech)] == ["in-speech"]
    assert gw.get_run("in-speech", config=speech).history("loss")[0].value == 1.0

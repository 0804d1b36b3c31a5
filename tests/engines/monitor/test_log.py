"""The prediction log: drops and counts when full, samples, closes segments; a killed server leaves readable ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.engines.monitor.log import LogOptions, PredictionLog
from groundwork.engines.monitor.report import monitor_report
from groundwork.engines.monitor.segment import read_segment
from groundwork.storage.stores import open_stores


class Listener:
    def __init__(self) -> None:
        self.dropped = 0
        self.segments: list[tuple[str, int, int]] = []
        self.drift: dict[tuple[str, str, str], float] = {}

    def log_dropped(self, model: str) -> None:
        self.dropped += 1

    def log_segment(self, model: str, rows: int, requests: int) -> None:
        self.segments.append((model, rows, requests))

    def log_drift(self, model: str, route: str, feature: str, statistic: str, value: float) -> None:
        self.drift[(route, feature, statistic)] = value


@pytest.fixture
def digits(workspace: Config, tmp_path: Path) -> tuple[Config, np.ndarray, np.ndarray]:
    """digits (LogisticRegression) v1 at production, trained on a logged dataset (its reference)."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    frame = pd.DataFrame(x, columns=[f"pixel_{i}" for i in range(64)])
    frame["label"] = y
    frame.to_parquet(tmp_path / "train.parquet")
    with gw.start_run(name="train", config=workspace, capture_code=False) as run:
        run.log_input(tmp_path / "train.parquet", kind="dataset")
        version = run.log_model(LogisticRegression(max_iter=300).fit(x, y), "digits", example=x[:5])
    gw.promote_model("digits", version.version, alias="production", config=workspace)
    return workspace, x, y


def offer(log: PredictionLog, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> int | None:
    return log.offer("digits", "production", "production", 1, x.astype(np.float32), len(x), y, 0.001, **kwargs)


def test_a_full_queue_drops_and_counts_instead_of_waiting(digits: tuple[Config, np.ndarray, np.ndarray]) -> None:
    config, x, y = digits
    listener = Listener()
    log = PredictionLog(config, LogOptions(max_queue=10), listener=listener)  # not started: nothing drains it
    ids = [offer(log, x[i:i + 1], y[i:i + 1]) for i in range(25)]
    assert sum(i is not None for i in ids) == 10 and log.dropped == 15 and listener.dropped == 15
    log.close()  # writes what was queued
    (segment,) = open_stores(config).monitor.segments("digits")
    assert segment.status == "closed" and segment.requests == 10
    assert listener.segments == [("digits", 10, 10)]


def test_a_sampled_log_keeps_about_that_share_and_a_shadow_follows_its_primary(
        digits: tuple[Config, np.ndarray, np.ndarray]) -> None:
    config, x, y = digits
    log = PredictionLog(config, LogOptions(sample=0.25, max_queue=100_000))
    kept = [offer(log, x[i % 100:i % 100 + 1], y[i % 100:i % 100 + 1]) for i in range(4000)]
    share = sum(k is not None for k in kept) / len(kept)
    assert 0.2 < share < 0.3
    rid = next(k for k in kept if k is not None)
    assert offer(log, x[:1], y[:1], shadow=True, request_id=rid) == rid  # never sampled away from its primary
    assert len(log._queue) == sum(k is not None for k in kept) + 1


def test_records_offered_by_many_threads_while_the_writer_takes_them_are_each_logged_once(
        digits: tuple[Config, np.ndarray, np.ndarray]) -> None:
    config, x, y = digits
    log = PredictionLog(config, LogOptions(flush_interval_s=0.001, drift=False))
    log.start()
    ids: list[int | None] = []

    def client(k: int) -> None:
        ids.extend(offer(log, x[i % 100:i % 100 + 1], y[i % 100:i % 100 + 1]) for i in range(k, k + 3000))

    clients = [threading.Thread(target=client, args=(k * 3000,)) for k in range(4)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    log.close()
    assert None not in ids and log.offered == 12_000 and log.dropped == 0
    artifacts = open_stores(config).artifacts
    logged = [rid for row in open_stores(config).monitor.segments("digits")
              for rid in read_segment(artifacts.get_bytes(row.digest)).column("request_id").to_pylist()]
    assert sorted(logged) == sorted(ids)  # none lost, none twice


def test_the_writer_wakes_for_a_segment_due_before_its_next_turn(digits: tuple[Config, np.ndarray, np.ndarray]) -> None:
    config, x, y = digits
    log = PredictionLog(config, LogOptions(flush_interval_s=30.0, segment_seconds=0.25, drift=False))
    assert log._next_wait() == 30.0  # nothing open: the flush interval
    offer(log, x[:1], y[:1])
    log.flush()  # opens the segment
    assert log._next_wait() <= 0.25
    log.close()


def test_segments_close_by_size_and_the_drift_gauges_are_set(digits: tuple[Config, np.ndarray, np.ndarray]) -> None:
    config, x, y = digits
    listener = Listener()
    log = PredictionLog(config, LogOptions(segment_rows=300), listener=listener)
    shifted = x.copy()
    shifted[:, 10] += 8.0
    for start in range(0, 1600, 400):  # four turns of the writer, 400 rows each: a segment fills at 300
        for i in range(start, start + 400, 4):
            offer(log, shifted[i:i + 4], y[i:i + 4])
        log.flush()
    log.close()
    rows = open_stores(config).monitor.segments("digits")
    assert [r.status for r in rows] == ["closed"] * 6 and sorted(r.rows for r in rows) == [100] + [300] * 5
    assert sum(r.rows for r in rows) == 1600 and log.written == 1600
    assert listener.drift[("production", "pixel_10", "drifted")] == 1.0
    assert listener.drift[("production", "pixel_11", "drifted")] == 0.0
    assert listener.drift[("production", "pixel_10", "psi")] > 0.2


def test_a_burst_larger_than_a_segment_is_split_at_the_segment_size(
        digits: tuple[Config, np.ndarray, np.ndarray]) -> None:
    """One turn of the writer takes 2,500 rows (one-row and batched requests, and failures): no segment passes 1,000."""
    config, x, y = digits
    log = PredictionLog(config, LogOptions(segment_rows=1000, drift=False))
    offered = 0
    for i in range(0, 1700, 10):
        offer(log, x[i:i + 1], y[i:i + 1])  # one row
        offer(log, x[i:i + 9], y[i:i + 9])  # a batch of nine
        offered += 10
    for _ in range(800):
        log.offer("digits", "production", "production", 1, None, 0, None, 0.001, status=500, error="boom")
    log.flush()
    log.close()
    rows = open_stores(config).monitor.segments("digits")
    assert all(r.status == "closed" for r in rows)
    assert sum(r.rows for r in rows) == offered + 800 and max(r.rows for r in rows) <= 1000
    assert sorted(r.rows for r in rows)[1:] == [1000, 1000]  # full segments, and what was left in the last


@pytest.mark.slow
def test_killing_the_server_mid_write_leaves_readable_segments_and_reports_the_lost_one(
        digits: tuple[Config, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    """A real ``groundwork serve`` under load, killed with SIGKILL by PID while its log is writing."""
    config, x, _ = digits
    env = {**os.environ, **config.child_environ(), "PYTHONUNBUFFERED": "1"}
    port_probe = __import__("socket").socket()
    port_probe.bind(("127.0.0.1", 0))
    port = port_probe.getsockname()[1]
    port_probe.close()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "groundwork", "serve", "digits@production", "--port", str(port),
                                 "--log-segment-seconds", "1"], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    answered = [0]

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            i = 0
            while not stop.is_set():
                try:
                    http.post("/v1/models/digits/predict", json={"inputs": x[i % 1700:i % 1700 + 3].tolist()})
                    answered[0] += 1
                except httpx.HTTPError:
                    pass
                i += 3

    threads = [threading.Thread(target=client) for _ in range(2)]
    monitor = open_stores(config).monitor
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")[-2000:]
            time.sleep(0.2)
        for t in threads:
            t.start()
        while len(monitor.segments("digits", statuses=["closed"], summaries=False)) < 2 or \
                not monitor.segments("digits", statuses=["open"], summaries=False):
            assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text(errors="replace")[-2000:]
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)  # mid-write: requests in flight, a segment open
        proc.wait(timeout=30)
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    rows = monitor.segments("digits")
    closed = [r for r in rows if r.status == "closed"]
    still_open = [r for r in rows if r.status == "open"]
    assert len(closed) >= 2 and len(still_open) == 1, [(r.status, r.rows) for r in rows]  # at most the last one lost
    artifacts = open_stores(config).artifacts
    for row in closed:
        assert row.digest is not None
        table = read_segment(artifacts.get_bytes(row.digest))  # whole and verified
        assert table.num_rows == row.rows and set(table.column("status").to_pylist()) == {200}
    report = monitor_report("digits@production", config=config)
    assert [lost["id"] for lost in report.lost] == [still_open[0].id]
    assert report.traffic["requests"] == sum(r.requests for r in closed)
    cli = subprocess.run([sys.executable, "-m", "groundwork", "monitor", "digits@production"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert "Warning: a segment was lost (its server stopped before closing it)" in cli.stderr

"""Prediction-log segments (open, refreshed, closed with their summary) on SQLite and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from groundwork.storage.metadata import SqlMetadataStore
from groundwork.storage.monitor import SqlMonitorStore
from groundwork.storage.registry import ArtifactRow, SqlRegistryStore


@pytest.fixture
def store(store_url: str) -> Iterator[SqlMetadataStore]:
    s = SqlMetadataStore(store_url)
    SqlRegistryStore(s).create_version("digits", artifact=ArtifactRow("a" * 64, 10, True, 2), flavor="sklearn")
    SqlRegistryStore(s).create_version("other", artifact=ArtifactRow("a" * 64, 10, True, 2), flavor="sklearn")
    yield s
    s.close()


def close(monitor: SqlMonitorStore, segment_id: str, first: float, last: float, model: str = "digits") -> None:
    summary = {"format": 1, "groups": [{"route": "production", "requests": 3, "sketch": list(range(500))}]}
    monitor.close_segment(segment_id, model=model, digest=segment_id[0] * 64, size=123, rows=4, requests=3,
                          first_ts=first, last_ts=last, summary=summary, closed_at=last + 1)


def test_a_segment_opens_fills_and_closes_with_its_summary(store: SqlMetadataStore) -> None:
    monitor = SqlMonitorStore(store)
    t0 = 1_000_000.0
    monitor.open_segment("a" * 32, "digits", pid=123, host="box", opened_at=t0)
    monitor.open_segment("a" * 32, "digits", pid=123, host="box", opened_at=t0)  # again: nothing changes
    monitor.touch_segment("a" * 32, rows=40, requests=30, updated_at=t0 + 5)
    (row,) = monitor.segments("digits")
    assert (row.status, row.rows, row.requests, row.updated_at, row.pid, row.host) == ("open", 40, 30, t0 + 5, 123, "box")
    assert row.digest is None and row.summary is None
    close(monitor, "a" * 32, t0, t0 + 50)
    (row,) = monitor.segments("digits")
    assert (row.status, row.rows, row.requests, row.first_ts, row.last_ts, row.digest) == (
        "closed", 4, 3, t0, t0 + 50, "a" * 64)
    assert row.pid == 123 and row.opened_at == t0  # kept from when it opened
    assert row.summary == {"format": 1, "groups": [{"route": "production", "requests": 3, "sketch": list(range(500))}]}
    monitor.touch_segment("a" * 32, rows=1, requests=1, updated_at=t0 + 99)  # a late refresh cannot reopen it
    assert monitor.segments("digits")[0].rows == 4
    assert "summary" not in row.to_dict() and row.to_dict(summary=True)["summary"]["format"] == 1


def test_a_segment_never_opened_can_still_be_closed(store: SqlMetadataStore) -> None:
    monitor = SqlMonitorStore(store)
    close(monitor, "b" * 32, 10.0, 20.0)
    (row,) = monitor.segments("digits", statuses=["closed"])
    assert row.status == "closed" and row.opened_at == 10.0


def test_windows_select_segments_by_their_time_span(store: SqlMetadataStore) -> None:
    monitor = SqlMonitorStore(store)
    close(monitor, "1" * 32, 100.0, 160.0)
    close(monitor, "2" * 32, 160.0, 220.0)
    close(monitor, "3" * 32, 220.0, 280.0)
    close(monitor, "4" * 32, 100.0, 200.0, model="other")
    monitor.open_segment("5" * 32, "digits", pid=1, host="h", opened_at=280.0)
    ids = lambda rows: [r.id[0] for r in rows]  # noqa: E731
    assert ids(monitor.segments("digits")) == ["1", "2", "3", "5"]
    assert ids(monitor.segments("digits", since=200.0)) == ["2", "3", "5"]
    assert ids(monitor.segments("digits", since=200.0, until=210.0)) == ["2"]
    assert ids(monitor.segments("digits", statuses=["closed"], summaries=False)) == ["1", "2", "3"]
    assert monitor.segments("digits", summaries=False)[0].summary is None
    assert monitor.monitored_models() == {"digits": 3, "other": 1}
    assert monitor.segments("nothing") == []


def test_a_window_of_many_segments_reads_only_its_own(store: SqlMetadataStore) -> None:
    monitor = SqlMonitorStore(store)
    for i in range(120):
        close(monitor, f"{i:032x}", i * 60.0, i * 60.0 + 59)
    rows = monitor.segments("digits", since=60.0 * 100)
    assert len(rows) == 20 and all(r.summary is not None for r in rows)
    assert rows[0].first_ts == 6000.0

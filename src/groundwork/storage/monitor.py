"""The monitor contract on SQL: prediction-log segments and their summaries (``prediction_segments``).

A segment's row is written when the segment opens (``open``, with the writing process's
pid and host), refreshed while it fills, and completed when it closes (``closed``: the
digest of its Parquet file in the artifact store, its time span, counts and summary) in
one transaction. The summary is JSON, zlib-compressed (sketches compress ten to one).
Reads are confined to the models of the store's project.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import func, select, update

from groundwork.storage import schema
from groundwork.storage.metadata import SqlMetadataStore
from groundwork.storage.records import SegmentRow


def _pack(summary: Mapping[str, Any] | None) -> bytes | None:
    return None if summary is None else zlib.compress(orjson.dumps(summary, option=orjson.OPT_SERIALIZE_NUMPY), 6)


def unpack_summary(data: bytes | None) -> dict[str, Any] | None:
    """A stored summary, decoded."""
    if data is None:
        return None
    value: dict[str, Any] = orjson.loads(zlib.decompress(data))
    return value


class SqlMonitorStore:
    """The monitor contract (:class:`groundwork.storage.stores.MonitorStore`) on a SQL metadata store."""

    def __init__(self, db: SqlMetadataStore) -> None:
        self.db = db

    def _own_models(self) -> Any:
        return select(schema.models.c.name).where(schema.models.c.project == self.db.project)

    def open_segment(self, segment_id: str, model: str, *, pid: int | None, host: str | None, opened_at: float) -> None:
        """Record a segment that started filling (``open``)."""
        stmt = self.db.dialect_insert(schema.prediction_segments).on_conflict_do_nothing()
        with self.db.write() as conn:
            conn.execute(stmt, {"id": segment_id, "model": model, "status": "open", "pid": pid, "host": host,
                                "opened_at": opened_at, "updated_at": time.time(), "rows": 0, "requests": 0})

    def touch_segment(self, segment_id: str, *, rows: int, requests: int, updated_at: float) -> None:
        """An open segment is still filling: how much it holds now."""
        ps = schema.prediction_segments
        with self.db.write() as conn:
            conn.execute(update(ps).where(ps.c.id == segment_id, ps.c.status == "open")
                         .values(rows=rows, requests=requests, updated_at=updated_at))

    def close_segment(
        self,
        segment_id: str,
        *,
        model: str,
        digest: str,
        size: int,
        rows: int,
        requests: int,
        first_ts: float,
        last_ts: float,
        summary: Mapping[str, Any],
        closed_at: float,
        pid: int | None = None,
        host: str | None = None,
        opened_at: float | None = None,
    ) -> None:
        """A segment is whole: its artifact (recorded as known) and summary, in one transaction."""
        values = {"id": segment_id, "model": model, "status": "closed", "pid": pid, "host": host,
                  "opened_at": opened_at if opened_at is not None else first_ts, "updated_at": closed_at,
                  "closed_at": closed_at, "first_ts": first_ts, "last_ts": last_ts, "rows": rows,
                  "requests": requests, "digest": digest, "size": size, "summary": _pack(summary)}
        stmt = self.db.dialect_insert(schema.prediction_segments)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={k: stmt.excluded[k] for k in values if k not in ("id", "model", "opened_at", "pid", "host")},
        )
        artifact = self.db.dialect_insert(schema.artifacts).on_conflict_do_nothing()
        with self.db.write() as conn:
            conn.execute(artifact, {"digest": digest, "size": size, "is_dir": False, "file_count": 1,
                                    "created_at": closed_at})
            conn.execute(stmt, values)

    def segments(
        self,
        model: str,
        *,
        since: float | None = None,
        until: float | None = None,
        statuses: Sequence[str] | None = None,
        summaries: bool = True,
    ) -> list[SegmentRow]:
        """Segments of ``model`` that hold requests from ``since`` to ``until``, oldest first.

        An open segment (no time span yet) is included when it was refreshed after ``since``.
        """
        ps = schema.prediction_segments
        columns = [c for c in ps.c if summaries or c.name != "summary"]
        query = select(*columns).where(ps.c.model == model, ps.c.model.in_(self._own_models()))
        if since is not None:
            query = query.where(func.coalesce(ps.c.last_ts, ps.c.updated_at) >= since)
        if until is not None:
            query = query.where(func.coalesce(ps.c.first_ts, ps.c.opened_at) <= until)
        if statuses:
            query = query.where(ps.c.status.in_(list(statuses)))
        query = query.order_by(func.coalesce(ps.c.first_ts, ps.c.opened_at), ps.c.id)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [SegmentRow.from_mapping({**row._mapping, "summary": unpack_summary(row._mapping.get("summary"))})
                for row in rows]

    def monitored_models(self) -> dict[str, int]:
        """``{model: closed segments}`` of every model with a prediction log."""
        ps = schema.prediction_segments
        query = (select(ps.c.model, func.count()).where(ps.c.model.in_(self._own_models()), ps.c.status == "closed")
                 .group_by(ps.c.model).order_by(ps.c.model))
        with self.db.read() as conn:
            return {name: int(n) for name, n in conn.execute(query)}

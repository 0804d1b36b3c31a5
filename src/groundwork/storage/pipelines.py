"""Row-level helpers for pipelines and lineage: many runs, links and cache lookups per transaction.

:class:`~groundwork.storage.metadata.SqlMetadataStore` writes one run at a time; a
pipeline records up to one run per step at once (every cached step of a rerun),
and lineage reads the links of many runs and digests per hop. These helpers do
each in one transaction or query, on the same tables, so deciding that a
20-step pipeline is fully cached costs a handful of round trips.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, union, update

from groundwork.errors import InvalidInput
from groundwork.storage import schema
from groundwork.storage.metadata import SqlMetadataStore, check_environment, iter_chunks
from groundwork.storage.records import (  # re-exported: the records live in storage.records
    ArtifactLink as ArtifactLink,
    CacheCandidate as CacheCandidate,
    Link as Link,
    NewRun as NewRun,
    param_number,
    param_text,
    param_type,
)


def _params_rows(run_id: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, value in params.items():
        text = param_text(value)
        rows.append({"run_id": run_id, "key": str(key), "value": text, "value_num": param_number(text),
                     "value_type": param_type(value)})
    return rows

def _links_for_runs(
    conn: Connection, run_ids: Sequence[str], direction: str | None, project: str
) -> dict[str, list[ArtifactLink]]:
    ra, a = schema.run_artifacts, schema.artifacts
    out: dict[str, list[ArtifactLink]] = {}
    for chunk in iter_chunks(list(run_ids), 500):
        query = (
            select(ra, a.c.size, a.c.is_dir, a.c.file_count)
            .join(a, a.c.digest == ra.c.digest)
            .join(schema.runs, schema.runs.c.id == ra.c.run_id)
            .where(ra.c.run_id.in_(list(chunk)), schema.runs.c.project == project)
            .order_by(ra.c.run_id, ra.c.direction, ra.c.name)
        )
        if direction:
            query = query.where(ra.c.direction == direction)
        for row in conn.execute(query):
            link = ArtifactLink(**dict(row._mapping))
            out.setdefault(link.run_id, []).append(link)
    return out


class SqlPipelineStore:
    """The pipeline contract (:class:`groundwork.storage.stores.PipelineStore`) on a SQL metadata store."""

    def __init__(self, db: SqlMetadataStore) -> None:
        self.db = db

    def _write_links(self, conn: Connection, run_id: str, links: Iterable[Link], now: float) -> None:
        links = list(links)
        if not links:
            return
        artifacts = {
            link.digest: {"digest": link.digest, "size": link.size, "is_dir": link.is_dir,
                          "file_count": link.file_count, "created_at": now}
            for link in links
        }
        conn.execute(self.db.dialect_insert(schema.artifacts).on_conflict_do_nothing(), list(artifacts.values()))
        stmt = self.db.dialect_insert(schema.run_artifacts)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "direction", "name"],
            set_={"digest": stmt.excluded.digest, "kind": stmt.excluded.kind, "created_at": now},
        )
        conn.execute(
            stmt,
            [{"run_id": run_id, "direction": link.direction, "name": link.name, "digest": link.digest,
              "kind": link.kind, "created_at": now} for link in links],
        )

    def _write_tags(self, conn: Connection, run_id: str, tags: Mapping[str, Any]) -> None:
        if not tags:
            return
        stmt = self.db.dialect_insert(schema.tags)
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "key"], set_={"value": stmt.excluded.value})
        conn.execute(stmt, [{"run_id": run_id, "key": str(k), "value": str(v)} for k, v in tags.items()])

    def insert_runs(self, runs: Sequence[NewRun]) -> None:
        """Insert runs with their params, tags and artifact links, all in one transaction."""
        if not runs:
            return
        now = time.time()
        with self.db.write() as conn:
            rows = []
            for run in runs:
                values = dict(run.row)
                values["project"] = self.db.project
                if isinstance(values.get("command"), (list, tuple)):
                    values["command"] = json.dumps(list(values["command"]))
                rows.append(values)
            new_ids = {str(values["id"]) for values in rows}
            self.db._check_own(conn, {str(v["parent_id"]) for v in rows if v.get("parent_id")} - new_ids)
            self.db.insert_run_rows(conn, rows)
            params = [p for run in runs for p in _params_rows(run.row["id"], run.params)]
            if params:
                conn.execute(insert(schema.params), params)
            tags = [{"run_id": run.row["id"], "key": str(k), "value": str(v)} for run in runs for k, v in run.tags.items()]
            if tags:
                conn.execute(insert(schema.tags), tags)
            for run in runs:
                self._write_links(conn, run.row["id"], run.links, now)

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        links: Sequence[Link] = (),
        tags: Mapping[str, Any] | None = None,
        error: str | None = None,
        environment: tuple[str, str] | None = None,
    ) -> None:
        """Links, tags, (a worker's) environment and the end of a run, in one transaction.

        Like :meth:`SqlMetadataStore.end_run`, a run that already ended keeps its first ending.
        """
        now = time.time()
        with self.db.write() as conn:
            self.db._check_own(conn, [run_id])
            self._write_links(conn, run_id, links, now)
            self._write_tags(conn, run_id, tags or {})
            values: dict[str, Any] = {"status": status, "ended_at": now, "heartbeat_at": now, "error": error}
            if environment is not None:
                check_environment(environment)
                conn.execute(
                    self.db.dialect_insert(schema.environments).on_conflict_do_nothing(),
                    {"digest": environment[0], "data": environment[1]},
                )
                values["env_digest"] = environment[0]
            conn.execute(
                update(schema.runs)
                .where(schema.runs.c.id == run_id, schema.runs.c.status == "running", self.db._own())
                .values(**values)
            )

    def add_links(self, run_id: str, links: Sequence[Link]) -> None:
        """Artifact links of one run, in one transaction."""
        if links:
            with self.db.write() as conn:
                self.db._check_own(conn, [run_id])
                self._write_links(conn, run_id, links, time.time())

    def find_cached(
        self, cache_keys: Sequence[str], *, per_key: int = 3, tag_keys: Sequence[str] = ()
    ) -> dict[str, list[CacheCandidate]]:
        """For each key, the newest finished runs that recorded it (newest first), with outputs and tags.

        Three queries whatever the number of keys: runs, their output links, their tags.
        Only runs whose status is ``finished`` qualify: a ``cached`` run merely points at one.
        """
        keys = sorted(set(cache_keys))
        if not keys:
            return {}
        runs = schema.runs
        found: dict[str, list[tuple[str, float]]] = {}
        with self.db.read() as conn:
            for chunk in iter_chunks(keys, 500):
                query = (
                    select(runs.c.id, runs.c.cache_key, runs.c.created_at)
                    .where(runs.c.cache_key.in_(list(chunk)), runs.c.status == "finished", self.db._own())
                    .order_by(runs.c.created_at.desc())
                )
                for run_id, key, created in conn.execute(query):
                    bucket = found.setdefault(key, [])
                    if len(bucket) < per_key:
                        bucket.append((run_id, created))
            ids = [run_id for bucket in found.values() for run_id, _ in bucket]
            outputs = _links_for_runs(conn, ids, "output", self.db.project)
            tags: dict[str, dict[str, str]] = {}
            if tag_keys and ids:
                t = schema.tags
                for chunk in iter_chunks(ids, 500):
                    for run_id, key, value in conn.execute(
                        select(t.c.run_id, t.c.key, t.c.value).where(t.c.run_id.in_(list(chunk)), t.c.key.in_(list(tag_keys)))
                    ):
                        tags.setdefault(run_id, {})[key] = value
        return {
            key: [
                CacheCandidate(run_id, key, created, tuple(outputs.get(run_id, ())), tags.get(run_id, {}))
                for run_id, created in bucket
            ]
            for key, bucket in found.items()
        }

    def links_for_runs(self, run_ids: Sequence[str], direction: str | None = None) -> dict[str, list[ArtifactLink]]:
        """The artifact links of many runs at once, by run id."""
        if not run_ids:
            return {}
        with self.db.read() as conn:
            return _links_for_runs(conn, run_ids, direction, self.db.project)

    def links_for_digests(self, digests: Sequence[str], direction: str | None = None) -> dict[str, list[ArtifactLink]]:
        """Every run link to any of ``digests``, by digest, oldest first."""
        if not digests:
            return {}
        ra, a = schema.run_artifacts, schema.artifacts
        out: dict[str, list[ArtifactLink]] = {}
        with self.db.read() as conn:
            for chunk in iter_chunks(list(digests), 500):
                query = (
                    select(ra, a.c.size, a.c.is_dir, a.c.file_count)
                    .join(a, a.c.digest == ra.c.digest)
                    .join(schema.runs, schema.runs.c.id == ra.c.run_id)
                    .where(ra.c.digest.in_(list(chunk)), self.db._own())
                    .order_by(ra.c.created_at)
                )
                if direction:
                    query = query.where(ra.c.direction == direction)
                for row in conn.execute(query):
                    link = ArtifactLink(**dict(row._mapping))
                    out.setdefault(link.digest, []).append(link)
        return out

    def artifact_rows(self, digests: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The ``artifacts`` rows of ``digests`` (size, is_dir, file_count, created_at), by digest."""
        if not digests:
            return {}
        a = schema.artifacts
        out: dict[str, dict[str, Any]] = {}
        with self.db.read() as conn:
            for chunk in iter_chunks(list(digests), 500):
                for row in conn.execute(select(a).where(a.c.digest.in_(self._linked(list(chunk))))):
                    out[row.digest] = dict(row._mapping)
        return out

    def _linked(self, digests: list[str]) -> Any:
        """Those of ``digests`` this project can see: linked by its runs, or its models' versions and exports."""
        ra, mv, e, models = schema.run_artifacts, schema.model_versions, schema.model_exports, schema.models
        own_models = select(models.c.name).where(models.c.project == self.db.project)
        return union(
            select(ra.c.digest).join(schema.runs, schema.runs.c.id == ra.c.run_id)
            .where(ra.c.digest.in_(digests), self.db._own()),
            select(mv.c.artifact_digest).where(mv.c.artifact_digest.in_(digests), mv.c.name.in_(own_models)),
            select(mv.c.onnx_digest).where(mv.c.onnx_digest.in_(digests), mv.c.name.in_(own_models)),
            select(e.c.artifact_digest).where(e.c.artifact_digest.in_(digests), e.c.name.in_(own_models)),
        )

    def runs_citing(self, column: str, run_ids: Sequence[str]) -> dict[str, list[str]]:
        """Ids of runs whose ``column`` (``cached_from`` or ``parent_id``) is one of ``run_ids``."""
        if not run_ids:
            return {}
        if column not in ("cached_from", "parent_id"):
            raise InvalidInput(f"runs cite others by cached_from or parent_id, not {column!r}")
        col = schema.runs.c[column]
        out: dict[str, list[str]] = {}
        with self.db.read() as conn:
            for chunk in iter_chunks(list(run_ids), 500):
                query = (
                    select(schema.runs.c.id, col)
                    .where(col.in_(list(chunk)), self.db._own())
                    .order_by(schema.runs.c.created_at)
                )
                for run_id, cited in conn.execute(query):
                    out.setdefault(cited, []).append(run_id)
        return out

    def runs_tagged(self, key: str, values: Sequence[str]) -> dict[str, list[str]]:
        """Ids of runs with tag ``key`` equal to one of ``values``, by value."""
        if not values:
            return {}
        t = schema.tags
        out: dict[str, list[str]] = {}
        with self.db.read() as conn:
            for chunk in iter_chunks(list(values), 500):
                query = (
                    select(t.c.run_id, t.c.value)
                    .join(schema.runs, schema.runs.c.id == t.c.run_id)
                    .where(t.c.key == key, t.c.value.in_(list(chunk)), self.db._own())
                )
                for run_id, value in conn.execute(query):
                    out.setdefault(value, []).append(run_id)
        return out

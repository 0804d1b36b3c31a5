"""The metadata store: runs, params, tags, metric points, artifacts and logs, on SQLAlchemy.

One class serves SQLite (the embedded default) and PostgreSQL, chosen by URL:

* ``sqlite:///path/meta.db``: WAL journal, a 30 s busy timeout, and every write
  transaction opened with ``BEGIN IMMEDIATE`` so concurrent writers queue on the
  lock instead of failing with "database is locked" when a reader upgrades.
* ``postgresql://user@host/db`` (psycopg 3).

Migrations (Alembic) are applied when a store is opened; a store whose schema
is newer than this groundwork is refused. Writes are batched: a caller hands
over many rows and they land in one transaction.

This module is row-level on purpose: it knows nothing of the SDK's objects.
Query filters arrive as compiled SQLAlchemy clauses (see ``groundwork.storage.search``).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import json
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)

from groundwork._process import pid_alive
from groundwork.config import DEFAULT_PROJECT
from groundwork.errors import (
    AmbiguousReference,
    Conflict,
    InvalidInput,
    RunNotFound,
    SchemaTooNew,
    StoreError,
    UnsupportedURL,
)
from groundwork.filters import Expr, OrderKey
from groundwork.storage import schema
from groundwork.storage.records import (  # re-exported: the records live in storage.records
    TERMINAL_STATUSES as TERMINAL_STATUSES,
    ArtifactLink as ArtifactLink,
    LatestMetric as LatestMetric,
    LogEntry as LogEntry,
    LogLine as LogLine,
    MetricPoint as MetricPoint,
    MetricSegment as MetricSegment,
    MetricSeries as MetricSeries,
    RunCreate as RunCreate,
    RunEnd as RunEnd,
    RunRow as RunRow,
    param_number,
    param_text,
    param_type,
    param_value,
)
from groundwork.storage.search import Plan, all_keys, page_ids, parse_search

#: The newest migration this version of groundwork knows.
HEAD_REVISION = "0008"
_KNOWN_REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008")

#: A running run whose heartbeat is older than this is considered crashed.
HEARTBEAT_TIMEOUT_S = 30.0
#: The run attributes :meth:`SqlMetadataStore.update_run` may change (reopening a run).
_UPDATABLE = frozenset({"name", "status", "ended_at", "error", "exit_code", "pid", "host", "heartbeat_at", "command",
                        "cwd"})
#: How long the number of runs (a planning input) is reused before it is counted again.
_TOTAL_TTL_S = 5.0

_SQLITE_INSERT_CHUNK = (
    "INSERT INTO metric_chunks (run_id, key, count, first_step, last_step, steps, \"values\", timestamps) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

def normalize_store_url(url: str) -> str:
    """``postgresql://`` means psycopg 3; a bare path means a SQLite file."""
    if "://" not in url:
        return f"sqlite:///{url}"
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def _float_or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def check_environment(environment: tuple[str, str]) -> None:
    """Refuse an environment (digest, JSON) whose JSON is not an object: reading it back would fail."""
    try:
        valid = isinstance(json.loads(environment[1]), dict)
    except ValueError:
        valid = False
    if not valid:
        raise InvalidInput(f"the environment {environment[0][:12]!r} is not a JSON object")


def _value_error(exc: DataError) -> InvalidInput:
    """A value the database cannot hold (PostgreSQL: a NUL in text, a number past its column, a string too long)."""
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    return InvalidInput(f"a value does not fit the store: {detail}",
                        hint="text without NUL characters, numbers and names within their limits")


def _column_default(name: str) -> Any:
    """The value a ``runs`` row gets for a column it leaves out (``kind``: "run"; the others: null)."""
    default = schema.runs.c[name].default
    return getattr(default, "arg", None) if default is not None and default.is_scalar else None


class SqlMetadataStore:
    """The metadata store contract (:class:`groundwork.storage.stores.MetadataStore`) on SQLite or PostgreSQL.

    Thread-safe; one per process and URL is plenty. The registry and pipeline stores of
    the same database (:mod:`groundwork.storage.registry`, :mod:`groundwork.storage.pipelines`)
    write through its :meth:`write` transactions and :meth:`dialect_insert`.
    """

    def __init__(self, url: str, *, create: bool = True, project: str = DEFAULT_PROJECT) -> None:
        self.url = normalize_store_url(url)
        #: Every read and write of this store is confined to one project's runs.
        self.project = project
        self._views: dict[str, SqlMetadataStore] = {}
        try:
            sa_url = make_url(self.url)
        except ArgumentError:
            raise UnsupportedURL(
                f"cannot parse the store URL {url!r}",
                hint="use sqlite:///path/meta.db or postgresql://user@host/database",
            ) from None
        backend = sa_url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise UnsupportedURL(
                f"unknown metadata store scheme '{sa_url.drivername}://' in {url!r}",
                hint="use sqlite:///path/meta.db or postgresql://user@host/database",
            )
        self.dialect = backend
        self._sqlite_path: Path | None = None
        if backend == "sqlite":
            self._engine, self._read_engine = self._sqlite_engines(sa_url.database or "", create)
        else:
            try:
                self._engine = create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=10)
            except (NoSuchModuleError, ArgumentError) as exc:
                raise UnsupportedURL(f"cannot open {url!r}: {exc}") from None
            self._read_engine = self._engine
        self._lock = threading.Lock()
        self._known_environments: set[str] = set()
        self._total_cache: tuple[float, int] = (-math.inf, 0)
        self._migrate()

    # -- opening -----------------------------------------------------------
    def _sqlite_engines(self, database: str, create: bool) -> tuple[Engine, Engine]:
        if database in ("", ":memory:"):
            raise UnsupportedURL(
                "an in-memory SQLite store cannot be shared between threads and processes",
                hint="use a file: sqlite:///path/meta.db",
            )
        path = Path(database).expanduser()
        if not create and not path.is_file():
            raise StoreError(
                f"no metadata store at {path}",
                hint="record a run first (groundwork run, or groundwork demo), or point --store at an existing store",
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            probe = path.parent / f".gw-write-probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise StoreError(
                f"cannot write the metadata store at {path}: {exc.strerror or exc}",
                hint="point GROUNDWORK_STORE (or --store) at a writable location",
            ) from None
        self._sqlite_path = path

        def make(immediate: bool) -> Engine:
            engine = create_engine(
                f"sqlite:///{path}",
                connect_args={"timeout": 60, "check_same_thread": False},
                pool_size=5,
                max_overflow=20,
            )

            @event.listens_for(engine, "connect")
            def _connect(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA busy_timeout = 60000")
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.execute("PRAGMA foreign_keys = ON")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

            return engine

        return make(immediate=True), make(immediate=False)

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self._sqlite_path is None:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(727274)"))
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(727274)"))
                    conn.commit()
            return
        lock_path = self._sqlite_path.with_name(self._sqlite_path.name + ".lock")
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _current_revision(self) -> str | None:
        try:
            with self._read_engine.connect() as conn:
                if not inspect(conn).has_table("alembic_version"):
                    return None
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except OperationalError as exc:
            raise self._store_error(exc) from None

    def _migrate(self) -> None:
        revision = self._current_revision()
        if revision == HEAD_REVISION:
            return
        if revision is not None and revision not in _KNOWN_REVISIONS:
            raise SchemaTooNew(
                f"the store at {self.display_url} has schema revision {revision!r}, newer than this "
                f"groundwork understands (newest known: {HEAD_REVISION!r})",
                hint="upgrade groundwork (pip install -U groundwork) or use another store",
            )
        from alembic import command
        from alembic.config import Config as AlembicConfig

        with self._migration_lock():
            if self._current_revision() == HEAD_REVISION:  # another process got there first
                return
            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
            try:
                with self._engine.begin() as conn:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            except OperationalError as exc:
                raise self._store_error(exc) from None

    def for_project(self, project: str) -> SqlMetadataStore:
        """This database, confined to ``project`` (shares connections; made once per project)."""
        if project == self.project:
            return self
        with self._lock:
            view = self._views.get(project)
            if view is None:
                view = copy.copy(self)
                view.project = project
                view._views = self._views
                view._total_cache = (-math.inf, 0)
                self._views[project] = view
            return view

    def _own(self) -> ColumnElement[bool]:
        """``runs.project`` is this store's project."""
        return schema.runs.c.project == self.project

    def _check_own(self, conn: Connection, run_ids: Iterable[str]) -> None:
        """Raise :class:`RunNotFound` unless every run id is a run of this project."""
        wanted = set(run_ids)
        if not wanted:
            return
        runs = schema.runs
        found = {r[0] for r in conn.execute(select(runs.c.id).where(runs.c.id.in_(list(wanted)), self._own()))}
        missing = wanted - found
        if missing:
            raise RunNotFound(
                f"no run {sorted(missing)[0]!r} in project {self.project!r}",
                hint="list runs with: groundwork runs",
            )

    def visible_run_ids(self, run_ids: Sequence[str]) -> set[str]:
        """Which of ``run_ids`` are runs of this project."""
        runs = schema.runs
        out: set[str] = set()
        with self.read() as conn:
            for chunk in iter_chunks(list(dict.fromkeys(run_ids)), 500):
                out.update(r[0] for r in conn.execute(select(runs.c.id).where(runs.c.id.in_(list(chunk)), self._own())))
        return out

    @property
    def display_url(self) -> str:
        """The URL with any password hidden."""
        return make_url(self.url).render_as_string(hide_password=True)

    def _store_error(self, exc: DBAPIError) -> StoreError:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return StoreError(
            f"cannot use the metadata store {self.display_url}: {detail}",
            hint="check GROUNDWORK_STORE (or --store) and that the database is reachable and writable",
        )

    def close(self) -> None:
        self._engine.dispose()
        if self._read_engine is not self._engine:
            self._read_engine.dispose()

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise self._store_error(exc) from None
        except DataError as exc:
            raise _value_error(exc) from None

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self._read_engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise self._store_error(exc) from None
        except DataError as exc:
            raise _value_error(exc) from None

    def dialect_insert(self, table: Any) -> Any:
        """An INSERT of this database's dialect (with ``on_conflict_do_*``), for the stores of this database."""
        return (sqlite.insert if self.dialect == "sqlite" else postgresql.insert)(table)

    @functools.cached_property
    def _statements(self) -> dict[str, Any]:
        """Upserts built once: constructing ``excluded`` costs a millisecond each time."""
        params = self.dialect_insert(schema.params)
        tags = self.dialect_insert(schema.tags)
        latest = self.dialect_insert(schema.latest_metrics)
        lm = schema.latest_metrics
        link = self.dialect_insert(schema.run_artifacts)
        return {
            "artifact": self.dialect_insert(schema.artifacts).on_conflict_do_nothing(),
            "link": link.on_conflict_do_update(
                index_elements=["run_id", "direction", "name"],
                set_={"digest": link.excluded.digest, "kind": link.excluded.kind, "created_at": link.excluded.created_at},
            ),
            "environment": self.dialect_insert(schema.environments).on_conflict_do_nothing(),
            "params": params.on_conflict_do_update(
                index_elements=["run_id", "key"],
                set_={"value": params.excluded.value, "value_num": params.excluded.value_num,
                      "value_type": params.excluded.value_type},
            ),
            "tags": tags.on_conflict_do_update(index_elements=["run_id", "key"], set_={"value": tags.excluded.value}),
            "latest": latest.on_conflict_do_update(
                index_elements=["run_id", "key"],
                set_={"value": latest.excluded.value, "step": latest.excluded.step, "timestamp": latest.excluded.timestamp},
                where=or_(
                    latest.excluded.step > lm.c.step,
                    (latest.excluded.step == lm.c.step) & (latest.excluded.timestamp >= lm.c.timestamp),
                ),
            ),
            "end": update(schema.runs)
            .where(schema.runs.c.id == bindparam("run_id"))
            .where(schema.runs.c.status == "running")
            .where(self._own())
            .values(
                status=bindparam("status"),
                ended_at=bindparam("ended_at"),
                heartbeat_at=bindparam("ended_at"),
                exit_code=bindparam("exit_code"),
                error=bindparam("error"),
            ),
        }

    # -- runs ----------------------------------------------------------------
    def create_run(
        self,
        row: Mapping[str, Any],
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        environment: tuple[str, str] | None = None,
        links: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Insert a run with its params, tags, environment (digest, JSON) and artifact links, in one transaction."""
        self.write_batch(creations=[RunCreate(row, params, tags, environment, links)])

    def _create_run(self, conn: Connection, create: RunCreate) -> None:
        values = dict(create.row)
        values["project"] = self.project
        if isinstance(values.get("command"), (list, tuple)):
            values["command"] = json.dumps(list(values["command"]))
        if values.get("parent_id"):
            self._check_own(conn, [values["parent_id"]])
        environment = create.environment
        if environment is not None and environment[0] not in self._known_environments:
            check_environment(environment)
            conn.execute(self._statements["environment"], {"digest": environment[0], "data": environment[1]})
        self.insert_run_rows(conn, [values])
        if create.params:
            self._upsert_params(conn, values["id"], create.params)
        if create.tags:
            self._upsert_tags(conn, values["id"], create.tags)
        for link in create.links:
            self._link_artifact(conn, values["id"], **link)

    def insert_run_rows(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows of ``runs``: an id taken (or given twice) is a Conflict, an unknown environment bad input.

        Either way the caller's transaction is rolled back: nothing of its batch is written.
        """
        ids = [str(row["id"]) for row in rows]
        columns = set().union(*rows)
        if any(row.keys() != columns for row in rows):  # one statement for all: every row needs every column
            rows = [{key: row.get(key, _column_default(key)) for key in columns} for row in rows]
        if len(set(ids)) < len(ids):
            raise Conflict(f"the run id {next(i for i in ids if ids.count(i) > 1)!r} is given twice in one batch")
        try:
            created = conn.execute(
                self.dialect_insert(schema.runs).on_conflict_do_nothing().returning(schema.runs.c.id), list(rows)
            ).all()
        except IntegrityError:  # a foreign key: stored parents are checked before this, so mostly an environment
            digests = sorted({str(row.get("env_digest")) for row in rows if row.get("env_digest")})
            raise InvalidInput(f"a run names an environment ({', '.join(digests) or 'none'}) or a parent that is not "
                               "in the store", hint="send the environment with the run, and a parent before its "
                               "children") from None
        if len(created) < len(ids):
            taken = sorted(set(ids) - {row[0] for row in created})
            raise Conflict(f"a run with the id {taken[0]!r} exists already", hint="a new run needs a new id")

    def update_run(self, run_id: str, **values: Any) -> None:
        """Change a run's attributes (reopening a run: status, ended_at, error, exit_code, pid, host, heartbeat_at)."""
        unknown = set(values) - _UPDATABLE
        if unknown:
            raise InvalidInput(f"cannot change {', '.join(sorted(unknown))} of a run",
                               hint=f"changeable: {', '.join(sorted(_UPDATABLE))}")
        emptied = sorted(key for key, value in values.items() if value is None and not schema.runs.c[key].nullable)
        if emptied:
            raise InvalidInput(f"a run's {', '.join(emptied)} cannot be null")
        if isinstance(values.get("command"), (list, tuple)):
            values["command"] = json.dumps(list(values["command"]))
        with self.write() as conn:
            self._check_own(conn, [run_id])
            if values:  # nothing to change is no statement (an empty SET is not SQL)
                conn.execute(update(schema.runs).where(schema.runs.c.id == run_id).values(**values))

    def end_run(
        self, run_id: str, status: str, *, exit_code: int | None = None, error: str | None = None
    ) -> None:
        """Record the end of a run. A run already ended keeps its first ending."""
        self.write_batch(end=RunEnd(run_id, status, exit_code, error))

    def heartbeat(self, run_ids: Sequence[str], now: float | None = None) -> None:
        if not run_ids:
            return
        with self.write() as conn:
            conn.execute(
                update(schema.runs)
                .where(schema.runs.c.id.in_(list(run_ids)))
                .where(schema.runs.c.status == "running")
                .where(self._own())
                .values(heartbeat_at=now or time.time())
            )

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        with self.write() as conn:
            self._check_own(conn, [run_id])
            self._upsert_params(conn, run_id, params)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        with self.write() as conn:
            self._check_own(conn, [run_id])
            self._upsert_tags(conn, run_id, tags)

    def _upsert_params(self, conn: Connection, run_id: str, params: Mapping[str, Any]) -> None:
        rows = []
        for key, value in params.items():
            text_value = param_text(value)
            rows.append({"run_id": run_id, "key": str(key), "value": text_value, "value_num": param_number(text_value),
                         "value_type": param_type(value)})
        if rows:  # an INSERT of no rows is not SQL
            conn.execute(self._statements["params"], rows)

    def _upsert_tags(self, conn: Connection, run_id: str, tags: Mapping[str, Any]) -> None:
        rows = [{"run_id": run_id, "key": str(k), "value": str(v)} for k, v in tags.items()]
        if rows:
            conn.execute(self._statements["tags"], rows)

    def delete_tag(self, run_id: str, key: str) -> None:
        with self.write() as conn:
            self._check_own(conn, [run_id])
            conn.execute(delete(schema.tags).where(schema.tags.c.run_id == run_id, schema.tags.c.key == key))

    # -- batched writes --------------------------------------------------------
    def write_batch(
        self,
        points: Sequence[MetricPoint] = (),
        logs: Sequence[LogLine] = (),
        heartbeat_ids: Sequence[str] = (),
        end: RunEnd | None = None,
        *,
        segments: Sequence[MetricSegment] = (),
        creations: Sequence[RunCreate] = (),
        batch_id: str | None = None,
    ) -> bool:
        """New runs, metric points, log lines, heartbeats and a run's end, all in one transaction.

        A ``batch_id`` (made by the client) makes the write idempotent: a batch whose id was
        applied before is skipped whole. Returns whether the batch was applied now.
        """
        if not (points or logs or heartbeat_ids or end or segments or creations):
            return False
        with self.write() as conn:
            if batch_id is not None:
                fresh = conn.execute(
                    self.dialect_insert(schema.applied_batches)
                    .on_conflict_do_nothing()
                    .returning(schema.applied_batches.c.batch_id),
                    {"batch_id": batch_id, "applied_at": time.time()},
                ).first()
                if fresh is None:  # applied before: a retry after a lost answer
                    return False
            for create in creations:
                self._create_run(conn, create)
            touched = {p[0] for p in points} | {g.run_id for g in segments} | {x[0] for x in logs}
            if end is not None:
                touched.add(end.run_id)
            self._check_own(conn, touched - {str(c.row["id"]) for c in creations})
            if points or segments:
                self._insert_series(conn, points, segments)
            if logs:
                conn.execute(
                    insert(schema.run_logs),
                    [{"run_id": r, "stream": s, "timestamp": t, "text": x} for r, s, t, x in logs],
                )
            if heartbeat_ids:
                conn.execute(
                    update(schema.runs)
                    .where(schema.runs.c.id.in_(list(heartbeat_ids)))
                    .where(schema.runs.c.status == "running")
                    .where(self._own())
                    .values(heartbeat_at=time.time())
                )
            if end is not None:
                conn.execute(
                    self._statements["end"],
                    {"run_id": end.run_id, "status": end.status, "ended_at": time.time(),
                     "exit_code": end.exit_code, "error": end.error},
                )
        for create in creations:
            if create.environment is not None:
                self._known_environments.add(create.environment[0])
        return True

    def log_metrics(self, points: Sequence[MetricPoint]) -> None:
        self.write_batch(points=points)

    def _insert_series(
        self, conn: Connection, points: Sequence[MetricPoint], segments: Sequence[MetricSegment]
    ) -> None:
        """One chunk row per series, and the series' newest point into ``latest_metrics``."""
        series: list[MetricSegment] = []
        if points:
            # Transpose in C, then split by series (usually there is one, or a few).
            run_ids, keys, steps, values, stamps = zip(*points, strict=True)
            step_array = np.array(steps, dtype=np.int64)
            value_array = np.array(values, dtype=np.float64)
            stamp_array = np.array(stamps, dtype=np.float64)
            count = len(run_ids)
            if run_ids.count(run_ids[0]) == count and keys.count(keys[0]) == count:
                series.append(MetricSegment(run_ids[0], keys[0], step_array, value_array, stamp_array))
            else:
                pairs = list(zip(run_ids, keys, strict=True))
                index: dict[tuple[str, str], list[int]] = {pair: [] for pair in set(pairs)}
                for i, pair in enumerate(pairs):
                    index[pair].append(i)
                for (run_id, key), rows in index.items():
                    take = np.array(rows, dtype=np.intp)
                    series.append(MetricSegment(run_id, key, step_array[take], value_array[take], stamp_array[take]))
        series.extend(segment for segment in segments if len(segment.steps))
        chunks = []
        latest: dict[tuple[str, str], tuple[int, float, float]] = {}
        for seg in series:
            packed = seg.steps.astype("<i8", copy=False)
            chunks.append(
                (seg.run_id, seg.key, int(packed.shape[0]), int(packed.min()), int(packed.max()), packed.tobytes(),
                 seg.values.astype("<f8", copy=False).tobytes(), seg.timestamps.astype("<f8", copy=False).tobytes())
            )
            last = int(np.lexsort((seg.timestamps, packed))[-1])
            candidate = (int(packed[last]), float(seg.values[last]), float(seg.timestamps[last]))
            current = latest.get((seg.run_id, seg.key))
            if current is None or (candidate[0], candidate[2]) >= (current[0], current[2]):
                latest[(seg.run_id, seg.key)] = candidate
        if self.dialect == "sqlite":
            conn.exec_driver_sql(_SQLITE_INSERT_CHUNK, chunks)
        else:
            names = ("run_id", "key", "count", "first_step", "last_step", "steps", "values", "timestamps")
            conn.execute(insert(schema.metric_chunks), [dict(zip(names, chunk, strict=True)) for chunk in chunks])
        conn.execute(
            self._statements["latest"],
            [
                {"run_id": r, "key": k, "step": step, "value": None if math.isnan(v) else v, "timestamp": t}
                for (r, k), (step, v, t) in latest.items()
            ],
        )

    # -- artifacts -------------------------------------------------------------
    def add_artifact_link(
        self,
        run_id: str,
        direction: str,
        name: str,
        *,
        digest: str,
        size: int,
        is_dir: bool,
        file_count: int,
        kind: str = "file",
    ) -> None:
        with self.write() as conn:
            self._check_own(conn, [run_id])
            self._link_artifact(
                conn, run_id, direction=direction, name=name, digest=digest, size=size,
                is_dir=is_dir, file_count=file_count, kind=kind,
            )

    def _link_artifact(
        self,
        conn: Connection,
        run_id: str,
        *,
        direction: str,
        name: str,
        digest: str,
        size: int,
        is_dir: bool,
        file_count: int,
        kind: str = "file",
    ) -> None:
        if direction not in ("input", "output"):
            raise InvalidInput(f"direction must be input or output, not {direction!r}")
        now = time.time()
        conn.execute(
            self._statements["artifact"],
            {"digest": digest, "size": size, "is_dir": is_dir, "file_count": file_count, "created_at": now},
        )
        conn.execute(
            self._statements["link"],
            {"run_id": run_id, "direction": direction, "name": name, "digest": digest, "kind": kind, "created_at": now},
        )

    def run_artifacts(self, run_id: str, direction: str | None = None) -> list[ArtifactLink]:
        ra, a = schema.run_artifacts, schema.artifacts
        query = (
            select(ra, a.c.size, a.c.is_dir, a.c.file_count)
            .join(a, a.c.digest == ra.c.digest)
            .join(schema.runs, schema.runs.c.id == ra.c.run_id)
            .where(ra.c.run_id == run_id, self._own())
            .order_by(ra.c.direction, ra.c.name)
        )
        if direction:
            query = query.where(ra.c.direction == direction)
        with self.read() as conn:
            return [ArtifactLink(**dict(r._mapping)) for r in conn.execute(query)]

    def artifact_users(self, digest: str) -> list[ArtifactLink]:
        """Every run that read or wrote the artifact ``digest``."""
        ra, a = schema.run_artifacts, schema.artifacts
        query = (
            select(ra, a.c.size, a.c.is_dir, a.c.file_count)
            .join(a, a.c.digest == ra.c.digest)
            .join(schema.runs, schema.runs.c.id == ra.c.run_id)
            .where(ra.c.digest == digest, self._own())
            .order_by(ra.c.created_at)
        )
        with self.read() as conn:
            return [ArtifactLink(**dict(r._mapping)) for r in conn.execute(query)]

    def find_artifacts(self, prefix: str) -> list[str]:
        """Up to three digests starting with ``prefix`` that runs of this project read or wrote."""
        ra = schema.run_artifacts
        with self.read() as conn:
            rows = conn.execute(
                select(ra.c.digest)
                .join(schema.runs, schema.runs.c.id == ra.c.run_id)
                .where(ra.c.digest.startswith(prefix), self._own())
                .distinct()
                .limit(3)
            )
            return [r[0] for r in rows]

    # -- reads -------------------------------------------------------------------
    def environment(self, digest: str) -> dict[str, Any] | None:
        with self.read() as conn:
            data = conn.execute(
                select(schema.environments.c.data).where(schema.environments.c.digest == digest)
            ).scalar()
        return json.loads(data) if data else None

    def resolve_run(self, ref: str) -> str:
        """A full run id from an id, a unique id prefix, or a run name (the newest run of that name)."""
        ref = ref.strip()
        if not ref:
            raise RunNotFound("empty run reference", hint="give a run id, a unique id prefix or a run name")
        runs = schema.runs
        with self.read() as conn:
            if conn.execute(select(runs.c.id).where(runs.c.id == ref, self._own())).first():
                return ref
            if all(c in "0123456789abcdef" for c in ref.lower()) and len(ref) >= 4:
                ids = [
                    r[0]
                    for r in conn.execute(
                        select(runs.c.id).where(runs.c.id.startswith(ref.lower()), self._own()).limit(6)
                    )
                ]
                if len(ids) == 1:
                    return str(ids[0])
                if len(ids) > 1:
                    shown = ", ".join(i[:12] for i in ids[:5])
                    raise AmbiguousReference(
                        f"run prefix {ref!r} matches {'more than 5' if len(ids) > 5 else len(ids)} runs ({shown})",
                        hint="type more characters of the id",
                    )
            named = conn.execute(
                select(runs.c.id).where(runs.c.name == ref, self._own()).order_by(runs.c.created_at.desc()).limit(1)
            ).first()
            if named:
                return str(named[0])
        raise RunNotFound(f"no run with id, id prefix or name {ref!r}", hint="list runs with: groundwork runs")

    def get_run(self, run_id: str) -> RunRow:
        rows = self.get_runs([run_id])
        if not rows:
            raise RunNotFound(f"no run with id {run_id!r}", hint="list runs with: groundwork runs")
        return rows[0]

    def get_runs(self, run_ids: Sequence[str]) -> list[RunRow]:
        ids = list(run_ids)
        if not ids:
            return []
        with self.read() as conn:
            query = select(schema.runs).where(schema.runs.c.id.in_(ids), self._own())
            rows = [RunRow.from_mapping(dict(r)) for r in conn.execute(query).mappings().all()]
            self._attach(conn, rows)
        order = {run_id: i for i, run_id in enumerate(ids)}
        rows.sort(key=lambda r: order[r.id])
        return self._detect_crashes(rows)

    def search_runs(
        self,
        filter: str | Expr | None = None,
        order_by: str | Sequence[str] | Sequence[OrderKey] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[RunRow]:
        """Runs matching a filter (``groundwork.filters`` text or tree), newest first unless ``order_by`` says otherwise.

        Planned so that a page costs what it shows (see :mod:`groundwork.storage.search`):
        a selective condition starts the query from its index, one metric or param sort
        walks its index.
        """
        expr, keys = parse_search(filter, order_by)
        plan = Plan(expr)
        with self.read() as conn:
            where = plan.for_page(conn, (limit or 0) + offset, self._total_runs(conn)) if limit is not None else plan.where
            ids = page_ids(conn, self._own() if where is None else and_(self._own(), where), keys, limit, offset)
        return self.get_runs(ids)

    def count_runs(self, filter: str | Expr | None = None) -> int:
        """How many runs match a filter (every run without one)."""
        expr, _ = parse_search(filter, None)
        plan = Plan(expr)
        with self.read() as conn:
            where = plan.for_count(conn)
            if where is None:
                return self._total_runs(conn, fresh=True)
            query = select(func.count()).select_from(schema.runs).where(self._own(), where)
            return int(conn.execute(query).scalar() or 0)

    def _total_runs(self, conn: Connection, fresh: bool = False) -> int:
        """The number of runs, for planning (recounted at most every few seconds unless ``fresh``)."""
        stamp, total = self._total_cache
        if fresh or time.monotonic() - stamp > _TOTAL_TTL_S:
            total = int(conn.execute(select(func.count()).select_from(schema.runs).where(self._own())).scalar() or 0)
            self._total_cache = (time.monotonic(), total)
        return total

    def child_runs(self, parent_id: str, limit: int | None = None, offset: int = 0) -> list[RunRow]:
        """A run's children (a pipeline's steps, a sweep's trials), oldest first."""
        runs = schema.runs
        query = (
            select(runs.c.id).where(runs.c.parent_id == parent_id, self._own()).order_by(runs.c.created_at, runs.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.read() as conn:
            ids = [r[0] for r in conn.execute(query.offset(offset))]
        return self.get_runs(ids)

    def child_counts(self, parent_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """How many children each of ``parent_ids`` has, by status (every parent present, maybe empty)."""
        runs = schema.runs
        out: dict[str, dict[str, int]] = {p: {} for p in parent_ids}
        with self.read() as conn:
            for chunk in iter_chunks(list(out), 500):
                for parent, status, n in conn.execute(
                    select(runs.c.parent_id, runs.c.status, func.count())
                    .where(runs.c.parent_id.in_(list(chunk)), self._own())
                    .group_by(runs.c.parent_id, runs.c.status)
                ):
                    out[parent][str(status)] = int(n)
        return out

    def keys(self, limit: int = 2000) -> dict[str, list[str]]:
        """Every param, metric and tag key in the store (up to ``limit`` of each), sorted."""
        with self.read() as conn:
            return all_keys(conn, limit, None if self._alone(conn) else self.project)

    def _alone(self, conn: Connection) -> bool:
        """Whether every run of the database is in this project (then key listings need no join)."""
        runs = schema.runs
        return conn.execute(select(runs.c.id).where(runs.c.project != self.project).limit(1)).first() is None

    def _visible(self, conn: Connection, run_id: str) -> bool:
        """Whether ``run_id`` is a run of this project (reads of any other run find nothing)."""
        return conn.execute(select(schema.runs.c.id).where(schema.runs.c.id == run_id, self._own())).first() is not None

    def latest_metrics(self, run_id: str) -> list[LatestMetric]:
        """The last point of each of a run's series, by key."""
        lm = schema.latest_metrics
        with self.read() as conn:
            if not self._visible(conn, run_id):
                return []
            return [
                LatestMetric(k, _float_or_nan(v), int(step), float(t))
                for k, v, step, t in conn.execute(
                    select(lm.c.key, lm.c.value, lm.c.step, lm.c.timestamp).where(lm.c.run_id == run_id).order_by(lm.c.key)
                )
            ]

    def _attach(self, conn: Connection, rows: list[RunRow]) -> None:
        if not rows:
            return
        by_id = {r.id: r for r in rows}
        ids = list(by_id)
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            p = schema.params
            for run_id, key, value, kind in conn.execute(
                select(p.c.run_id, p.c.key, p.c.value, p.c.value_type).where(p.c.run_id.in_(chunk))
            ).all():
                by_id[run_id].params[key] = param_value(value, kind)
            for run_id, key, value in conn.execute(
                select(schema.tags.c.run_id, schema.tags.c.key, schema.tags.c.value).where(schema.tags.c.run_id.in_(chunk))
            ).all():
                by_id[run_id].tags[key] = value
            lm = schema.latest_metrics
            for run_id, key, value in conn.execute(
                select(lm.c.run_id, lm.c.key, lm.c.value).where(lm.c.run_id.in_(chunk))
            ).all():
                by_id[run_id].metrics[key] = _float_or_nan(value)

    def _detect_crashes(self, rows: list[RunRow]) -> list[RunRow]:
        """Mark running runs whose process is gone (or whose heartbeat stopped) as crashed."""
        suspects = [r for r in rows if r.status == "running" and _is_dead(r)]
        if suspects:
            ids = [r.id for r in suspects]
            with self.write() as conn:
                conn.execute(
                    update(schema.runs)
                    .where(schema.runs.c.id.in_(ids))
                    .where(schema.runs.c.status == "running")
                    .values(
                        status="crashed",
                        ended_at=case(
                            (schema.runs.c.heartbeat_at.is_not(None), schema.runs.c.heartbeat_at),
                            else_=schema.runs.c.created_at,
                        ),
                    )
                )
                fresh = {
                    r.id: (r.status, r.ended_at)
                    for r in conn.execute(
                        select(schema.runs.c.id, schema.runs.c.status, schema.runs.c.ended_at).where(
                            schema.runs.c.id.in_(ids)
                        )
                    )
                }
            for row in suspects:
                row.status, row.ended_at = fresh.get(row.id, (row.status, row.ended_at))
        return rows

    def metric_series(
        self, run_id: str, key: str, step_min: int | None = None, step_max: int | None = None
    ) -> MetricSeries:
        """One series as arrays ordered by step, optionally only ``step_min <= step <= step_max``."""
        mc = schema.metric_chunks
        query = select(mc.c.steps, mc.c["values"], mc.c.timestamps).where(mc.c.run_id == run_id, mc.c.key == key)
        if step_min is not None:
            query = query.where(mc.c.last_step >= step_min)
        if step_max is not None:
            query = query.where(mc.c.first_step <= step_max)
        with self.read() as conn:
            blobs = conn.execute(query.order_by(mc.c.id)).all() if self._visible(conn, run_id) else []
        if not blobs:
            empty_f = np.empty(0, dtype=np.float64)
            return MetricSeries(np.empty(0, dtype=np.int64), empty_f, empty_f.copy())
        steps = np.concatenate([np.frombuffer(b[0], dtype="<i8") for b in blobs])
        values = np.concatenate([np.frombuffer(b[1], dtype="<f8") for b in blobs])
        stamps = np.concatenate([np.frombuffer(b[2], dtype="<f8") for b in blobs])
        if steps.shape[0] > 1 and not bool(np.all(steps[1:] >= steps[:-1])):
            order = np.argsort(steps, kind="stable")
            steps, values, stamps = steps[order], values[order], stamps[order]
        if step_min is not None or step_max is not None:
            keep = np.ones(steps.shape[0], dtype=bool)
            if step_min is not None:
                keep &= steps >= step_min
            if step_max is not None:
                keep &= steps <= step_max
            steps, values, stamps = steps[keep], values[keep], stamps[keep]
        return MetricSeries(steps, values, stamps)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        """Every point of one series as (step, value, timestamp), ordered by step."""
        series = self.metric_series(run_id, key)
        return list(zip(series.steps.tolist(), series.values.tolist(), series.timestamps.tolist(), strict=True))

    def metric_keys(self, run_id: str) -> list[str]:
        lm = schema.latest_metrics
        with self.read() as conn:
            if not self._visible(conn, run_id):
                return []
            return [r[0] for r in conn.execute(select(lm.c.key).where(lm.c.run_id == run_id).order_by(lm.c.key))]

    def logs(self, run_id: str, stream: str | None = None, tail: int | None = None) -> list[LogLine]:
        lg = schema.run_logs
        query = select(lg.c.run_id, lg.c.stream, lg.c.timestamp, lg.c.text).where(lg.c.run_id == run_id)
        if stream:
            query = query.where(lg.c.stream == stream)
        query = query.order_by(lg.c.id.desc()).limit(tail) if tail else query.order_by(lg.c.id)
        with self.read() as conn:
            visible = self._visible(conn, run_id)
            rows: list[LogLine] = [(r[0], r[1], r[2], r[3]) for r in conn.execute(query)] if visible else []
        if tail:
            rows.reverse()
        return rows

    def log_entries(
        self,
        run_id: str,
        *,
        stream: str | None = None,
        tail: int | None = None,
        after: int | None = None,
        contains: str | None = None,
    ) -> list[LogEntry]:
        """Captured output with ids: the last ``tail`` chunks, or the first ``tail`` after id ``after``,
        optionally only chunks containing ``contains`` (case-insensitive)."""
        lg = schema.run_logs
        query = select(lg.c.id, lg.c.stream, lg.c.timestamp, lg.c.text).where(lg.c.run_id == run_id)
        if stream:
            query = query.where(lg.c.stream == stream)
        if contains:
            escaped = contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(lg.c.text.ilike(f"%{escaped}%", escape="\\"))
        if after is not None:
            query = query.where(lg.c.id > after).order_by(lg.c.id)
        else:
            query = query.order_by(lg.c.id.desc())
        if tail is not None:
            query = query.limit(tail)
        with self.read() as conn:
            visible = self._visible(conn, run_id)
            rows = [LogEntry(int(i), s, float(t), x) for i, s, t, x in conn.execute(query)] if visible else []
        if after is None:
            rows.reverse()
        return rows

    def integrity_check(self) -> bool:
        """SQLite's own integrity check (True on PostgreSQL)."""
        if self.dialect != "sqlite":
            return True
        with self.read() as conn:
            return conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def _is_dead(row: RunRow, now: float | None = None) -> bool:
    """Whether a ``running`` run's process has gone without ending it."""
    import socket

    now = now or time.time()
    beat = row.heartbeat_at or row.created_at
    if now - beat > HEARTBEAT_TIMEOUT_S:
        return True
    if row.pid and row.host == socket.gethostname():
        return not pid_alive(row.pid)
    return False


_stores: dict[tuple[int, str], SqlMetadataStore] = {}
_stores_lock = threading.Lock()


def open_metadata_store(url: str, *, create: bool = True) -> SqlMetadataStore:
    """The process-wide store for ``url`` (opened, and migrated, once).

    With ``create=False`` a SQLite store must exist already (:class:`StoreError` otherwise):
    viewers such as ``groundwork ui`` never make a store, nor its folder.
    """
    key = (os.getpid(), normalize_store_url(url))
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = SqlMetadataStore(url, create=create)
            _stores[key] = store
        return store


def iter_chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

"""Reading recorded runs: :class:`Run` snapshots, search with the filter language, histories."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from groundwork.config import Config
from groundwork.errors import InvalidInput
from groundwork.filters import Comparison, Field
from groundwork.storage.records import ArtifactLink, RunRow
from groundwork.storage.stores import MetadataStore, open_stores

MAX_LIMIT = 10_000


class MetricPoint(NamedTuple):
    """One point of a metric series."""

    step: int
    value: float
    timestamp: float


class Run:
    """A snapshot of one recorded run, read from the store.

    ``params`` come back with the type they were logged with (text from ``--param``),
    ``tags`` as text; ``metrics`` holds each
    series' last value. :meth:`history` reads a whole series.
    """

    def __init__(self, row: RunRow, store: MetadataStore) -> None:
        self._row = row
        self._store = store

    def __repr__(self) -> str:
        return f"<Run {self.id[:12]} {self.name!r} {self.status}>"

    id = property(lambda self: self._row.id)
    name = property(lambda self: self._row.name)
    kind = property(lambda self: self._row.kind)
    status = property(lambda self: self._row.status)
    parent_id = property(lambda self: self._row.parent_id)
    command = property(lambda self: self._row.command)
    cwd = property(lambda self: self._row.cwd)
    user = property(lambda self: self._row.user)
    host = property(lambda self: self._row.host)
    created_at = property(lambda self: self._row.created_at)
    ended_at = property(lambda self: self._row.ended_at)
    exit_code = property(lambda self: self._row.exit_code)
    error = property(lambda self: self._row.error)
    git_commit = property(lambda self: self._row.git_commit)
    git_branch = property(lambda self: self._row.git_branch)
    git_dirty = property(lambda self: self._row.git_dirty)
    diff_digest = property(lambda self: self._row.diff_digest)
    cache_key = property(lambda self: self._row.cache_key)
    cached_from = property(lambda self: self._row.cached_from)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._row.params)

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._row.tags)

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self._row.metrics)

    @property
    def duration(self) -> float | None:
        end = self._row.ended_at or self._row.heartbeat_at
        return None if end is None else max(0.0, end - self._row.created_at)

    @property
    def environment(self) -> dict[str, Any]:
        """The captured environment (Python, packages, OS, CPU and its features, memory, GPUs)."""
        if not self._row.env_digest:
            return {}
        return self._store.environment(self._row.env_digest) or {}

    def history(self, key: str) -> list[MetricPoint]:
        """Every point of the series ``key``, ordered by step."""
        series = self._store.metric_series(self.id, key)
        return list(map(MetricPoint, series.steps.tolist(), series.values.tolist(), series.timestamps.tolist()))

    def series(self, key: str, step_min: int | None = None, step_max: int | None = None) -> Any:
        """The series ``key`` as numpy arrays (``.steps``, ``.values``, ``.timestamps``)."""
        return self._store.metric_series(self.id, key, step_min, step_max)

    def metric_keys(self) -> list[str]:
        return self._store.metric_keys(self.id)

    @property
    def inputs(self) -> list[ArtifactLink]:
        return self._store.run_artifacts(self.id, "input")

    @property
    def outputs(self) -> list[ArtifactLink]:
        return self._store.run_artifacts(self.id, "output")

    def logs(self, stream: str | None = None, tail: int | None = None) -> str:
        """Captured stdout/stderr text (both interleaved unless ``stream`` is given)."""
        return "".join(text for _, _, _, text in self._store.logs(self.id, stream=stream, tail=tail))

    def children(self) -> list[Run]:
        return [Run(r, self._store) for r in self._store.child_runs(self.id)]

    def to_dict(self, *, environment: bool = False) -> dict[str, Any]:
        """A JSON-able view (what ``--json`` prints)."""
        row = self._row
        out: dict[str, Any] = {
            "id": row.id,
            "name": row.name,
            "kind": row.kind,
            "status": row.status,
            "parent_id": row.parent_id,
            "created_at": row.created_at,
            "ended_at": row.ended_at,
            "duration": self.duration,
            "command": row.command,
            "cwd": row.cwd,
            "user": row.user,
            "host": row.host,
            "exit_code": row.exit_code,
            "error": row.error,
            "git": {"commit": row.git_commit, "branch": row.git_branch, "dirty": row.git_dirty, "diff_digest": row.diff_digest},
            "params": dict(row.params),
            "metrics": {k: (None if v != v else v) for k, v in row.metrics.items()},
            "tags": dict(row.tags),
        }
        if row.cache_key:
            out["cache_key"] = row.cache_key
            out["cached_from"] = row.cached_from
        if environment:
            out["environment"] = self.environment
            out["inputs"] = [_link_dict(a) for a in self.inputs]
            out["outputs"] = [_link_dict(a) for a in self.outputs]
        return out


def _link_dict(link: ArtifactLink) -> dict[str, Any]:
    return {
        "name": link.name,
        "digest": link.digest,
        "kind": link.kind,
        "size": link.size,
        "is_dir": link.is_dir,
        "file_count": link.file_count,
    }


_FULL_ID = re.compile(r"^[0-9a-f]{32}$")


def _store(config: Config | None) -> MetadataStore:
    from groundwork.core.writer import flush_all, pending_writes, send_spooled

    if pending_writes():  # read-your-writes: runs this process started are written first
        flush_all()
    store = open_stores(config or Config.from_env()).metadata
    send_spooled(store)  # and, through a server, what an earlier process could not send before it exited
    return store


#: How many runs of one name a look-up weighs (the newest first).
_NAME_CANDIDATES = 200


def find_run(store: MetadataStore, ref: str) -> RunRow:
    """The run ``ref`` names: an id, a unique id prefix, or a name.

    A name means the newest run of that name, preferring, in this order, runs that are
    neither pipeline steps nor reproductions (``reproduces`` tag), then steps that are not
    reproductions, then any: a user's run ``baseline`` wins over a pipeline's step of the
    same name, and ``groundwork reproduce train`` finds the step, not its last reproduction.
    """
    ref = ref.strip()
    rows = store.get_runs([ref]) if _FULL_ID.match(ref) else []
    if rows:
        return rows[0]
    row = store.get_run(store.resolve_run(ref))
    if row.name != ref or row.id.startswith(ref.lower()):
        return row  # an id prefix
    named = store.search_runs(Comparison(Field("attr", "name"), "=", ref), limit=_NAME_CANDIDATES)
    return min(named or [row], key=lambda r: (_name_rank(r), -r.created_at))


def _name_rank(row: RunRow) -> int:
    reproduction = bool(row.tags.get("reproduces"))
    return 2 if reproduction else 1 if row.kind == "step" else 0


def get_run(ref: str, *, config: Config | None = None) -> Run:
    """One run by id, unique id prefix, or name (see :func:`find_run` for which run a name means)."""
    store = _store(config)
    return Run(find_run(store, ref), store)


def runs(
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = 100,
    offset: int = 0,
    *,
    config: Config | None = None,
) -> list[Run]:
    """Runs matching ``filter`` (see docs/filters.md), ordered, newest first by default.

    >>> gw.runs(filter="metrics.acc > 0.9 and params.lr = 0.01", order_by="-metrics.acc")
    """
    if limit is not None and not 0 < limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    if offset < 0:
        raise InvalidInput(f"offset must not be negative, not {offset}")
    store = _store(config)
    return [Run(row, store) for row in store.search_runs(filter, order_by, limit=limit, offset=offset)]


def count_runs(filter: str | None = None, *, config: Config | None = None) -> int:
    """How many runs match ``filter`` (every run without one)."""
    return _store(config).count_runs(filter)

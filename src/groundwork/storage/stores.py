"""The store interface: what every layer above storage reads and writes through.

Four contracts over one database, each a :class:`typing.Protocol` (see
docs/design/stores.md for why):

* :class:`MetadataStore`: runs, params, tags, metric series, captured logs, artifact
  links and environments, and run search (the filter language of docs/filters.md).
* :class:`RegistryStore`: models, versions, aliases and their history, and exports.
* :class:`PipelineStore`: what pipelines and lineage ask in bulk: many runs written in one
  transaction, cache look-ups, the links of many runs or digests at once.
* :class:`MonitorStore`: segments of the prediction log ``groundwork serve`` writes, with
  their summaries.

:func:`open_stores` is the one way to open them (and the artifact store) for a
:class:`~groundwork.config.Config`: SQLite or PostgreSQL by the store URL today; the team
server's HTTP client implements the same contracts. Records are
:mod:`groundwork.storage.records`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from groundwork.filters import Expr, OrderKey
from groundwork.storage.records import (
    AliasMove,
    ArtifactLink,
    ArtifactRow,
    CacheCandidate,
    ExportRow,
    LatestMetric,
    Link,
    LogEntry,
    LogLine,
    MetricPoint,
    MetricSegment,
    MetricSeries,
    ModelRow,
    NewRun,
    RunCreate,
    RunEnd,
    RunRow,
    SegmentRow,
    VersionRow,
)

if TYPE_CHECKING:
    from groundwork.config import Config
    from groundwork.storage.artifacts import ArtifactStore
    from groundwork.storage.records import (
        AuditEntry,
        MembershipRow,
        ProjectRow,
        TokenGrant,
        TokenRow,
        UserRow,
    )


class MetadataStore(Protocol):
    """Runs and what they recorded. Implementations: SQL (:mod:`groundwork.storage.metadata`)."""

    url: str

    @property
    def display_url(self) -> str:
        """The store's URL with any password hidden."""
        ...

    def close(self) -> None:
        """Release connections (the store may not be used afterwards)."""
        ...


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
        ...

    def update_run(self, run_id: str, **values: Any) -> None:
        ...

    def end_run(
        self, run_id: str, status: str, *, exit_code: int | None = None, error: str | None = None
    ) -> None:
        """Record the end of a run. A run already ended keeps its first ending."""
        ...

    def heartbeat(self, run_ids: Sequence[str], now: float | None = None) -> None:
        ...

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        ...

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        ...

    def delete_tag(self, run_id: str, key: str) -> None:
        ...

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
        """New runs, points, log lines, heartbeats and a run's end in one transaction; a ``batch_id``
        already applied is skipped (returns False), so a retried batch is written once."""
        ...

    def log_metrics(self, points: Sequence[MetricPoint]) -> None:
        ...

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
        ...

    def run_artifacts(self, run_id: str, direction: str | None = None) -> list[ArtifactLink]:
        ...

    def artifact_users(self, digest: str) -> list[ArtifactLink]:
        """Every run that read or wrote the artifact ``digest``."""
        ...

    def find_artifacts(self, prefix: str) -> list[str]:
        ...

    def environment(self, digest: str) -> dict[str, Any] | None:
        ...

    def resolve_run(self, ref: str) -> str:
        """A full run id from an id, a unique id prefix, or a run name (the newest run of that name)."""
        ...

    def get_run(self, run_id: str) -> RunRow:
        ...

    def get_runs(self, run_ids: Sequence[str]) -> list[RunRow]:
        ...

    def search_runs(
        self,
        filter: str | Expr | None = None,
        order_by: str | Sequence[str] | Sequence[OrderKey] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[RunRow]:
        """Runs matching a filter (``groundwork.filters`` text or tree), newest first unless ``order_by`` says otherwise."""
        ...

    def count_runs(self, filter: str | Expr | None = None) -> int:
        """How many runs match a filter (every run without one)."""
        ...

    def child_runs(self, parent_id: str, limit: int | None = None, offset: int = 0) -> list[RunRow]:
        """A run's children (a pipeline's steps, a sweep's trials), oldest first."""
        ...

    def child_counts(self, parent_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """How many children each of ``parent_ids`` has, by status (every parent present, maybe empty)."""
        ...

    def keys(self, limit: int = 2000) -> dict[str, list[str]]:
        """Every param, metric and tag key in the store (up to ``limit`` of each), sorted."""
        ...

    def latest_metrics(self, run_id: str) -> list[LatestMetric]:
        """The last point of each of a run's series, by key."""
        ...

    def metric_series(
        self, run_id: str, key: str, step_min: int | None = None, step_max: int | None = None
    ) -> MetricSeries:
        """One series as arrays ordered by step, optionally only ``step_min <= step <= step_max``."""
        ...

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        """Every point of one series as (step, value, timestamp), ordered by step."""
        ...

    def metric_keys(self, run_id: str) -> list[str]:
        ...

    def logs(self, run_id: str, stream: str | None = None, tail: int | None = None) -> list[LogLine]:
        ...

    def log_entries(
        self,
        run_id: str,
        *,
        stream: str | None = None,
        tail: int | None = None,
        after: int | None = None,
        contains: str | None = None,
    ) -> list[LogEntry]:
        """Captured output with ids: the last ``tail`` chunks, or the first ``tail`` after id ``after``,"""
        ...

class RegistryStore(Protocol):
    """Models, versions and aliases. Implementations: SQL (:mod:`groundwork.storage.registry`)."""

    def create_version(
        self,
        name: str,
        *,
        artifact: ArtifactRow,
        flavor: str,
        run_id: str | None = None,
        onnx_digest: str | None = None,
        signature: Mapping[str, Any] | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        info: Mapping[str, Any] | None = None,
        user: str | None = None,
        link_name: str | None = None,
    ) -> int:
        """Insert version N+1 of ``name`` (creating the model on first use); returns N+1."""
        ...

    def set_description(self, name: str, description: str | None, version: int | None = None) -> None:
        ...

    def set_alias(
        self, name: str, alias: str, version: int | None, *, who: str | None, reason: str | None = None
    ) -> int | None:
        """Point ``alias`` at ``version`` (None removes it) and record the move; returns the old version."""
        ...

    def add_export(
        self,
        name: str,
        version: int,
        *,
        target: str,
        precision: str,
        artifact: ArtifactRow,
        verification: Mapping[str, Any],
        location: str | None = None,
        user: str | None = None,
    ) -> int:
        """Record a passed export of ``name``/``version`` and its bundle artifact (one transaction); returns its id."""
        ...

    def get_model(self, name: str) -> ModelRow | None:
        ...

    def list_models(self) -> list[ModelRow]:
        ...

    def model_names(self) -> list[str]:
        ...

    def get_version(self, name: str, version: int) -> VersionRow | None:
        ...

    def latest_version(self, name: str) -> int | None:
        """The highest existing version number of ``name`` (None when it has none)."""
        ...

    def list_versions(self, name: str) -> list[VersionRow]:
        ...

    def version_numbers(self, name: str) -> list[int]:
        ...

    def versions_for_run(self, run_id: str) -> list[VersionRow]:
        ...

    def versions_for_artifact(self, digest: str) -> list[VersionRow]:
        ...

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` of one model, sorted by alias."""
        ...

    def all_aliases(self) -> dict[str, dict[str, int]]:
        """``{model: {alias: version}}`` for every model that has an alias."""
        ...

    def alias_version(self, name: str, alias: str) -> int | None:
        """Where ``alias`` of ``name`` points (one indexed read: cheap enough to poll)."""
        ...

    def alias_history(self, name: str, alias: str | None = None, limit: int | None = None) -> list[AliasMove]:
        """Alias moves of ``name``, newest first."""
        ...

    def exports(self, name: str, version: int | None = None) -> list[ExportRow]:
        """Recorded exports of ``name`` (optionally one version), newest first."""
        ...

    def get_export(self, export_id: int) -> ExportRow | None:
        ...

    def exports_for_artifact(self, digest: str) -> list[ExportRow]:
        """Exports whose bundle is the artifact ``digest``."""
        ...

class PipelineStore(Protocol):
    """Bulk run writes and look-ups for pipelines and lineage. Implementations: SQL (:mod:`groundwork.storage.pipelines`)."""

    def insert_runs(self, runs: Sequence[NewRun]) -> None:
        """Insert runs with their params, tags and artifact links, all in one transaction."""
        ...

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
        """Links, tags, (a worker's) environment and the end of a run, in one transaction."""
        ...

    def add_links(self, run_id: str, links: Sequence[Link]) -> None:
        """Artifact links of one run, in one transaction."""
        ...

    def find_cached(
        self, cache_keys: Sequence[str], *, per_key: int = 3, tag_keys: Sequence[str] = ()
    ) -> dict[str, list[CacheCandidate]]:
        """For each key, the newest finished runs that recorded it (newest first), with outputs and tags."""
        ...

    def links_for_runs(self, run_ids: Sequence[str], direction: str | None = None) -> dict[str, list[ArtifactLink]]:
        """The artifact links of many runs at once, by run id."""
        ...

    def links_for_digests(self, digests: Sequence[str], direction: str | None = None) -> dict[str, list[ArtifactLink]]:
        """Every run link to any of ``digests``, by digest, oldest first."""
        ...

    def artifact_rows(self, digests: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The ``artifacts`` rows of ``digests`` (size, is_dir, file_count, created_at), by digest."""
        ...

    def runs_citing(self, column: str, run_ids: Sequence[str]) -> dict[str, list[str]]:
        """Ids of runs whose ``column`` (``cached_from`` or ``parent_id``) is one of ``run_ids``."""
        ...

    def runs_tagged(self, key: str, values: Sequence[str]) -> dict[str, list[str]]:
        """Ids of runs with tag ``key`` equal to one of ``values``, by value."""
        ...

class MonitorStore(Protocol):
    """Segments of the prediction log and their summaries. Implementations: SQL (:mod:`groundwork.storage.monitor`)."""

    def open_segment(self, segment_id: str, model: str, *, pid: int | None, host: str | None, opened_at: float) -> None:
        """Record a segment that started filling (``open``; a second call for the same id does nothing)."""
        ...

    def touch_segment(self, segment_id: str, *, rows: int, requests: int, updated_at: float) -> None:
        """An open segment is still filling: how much it holds now."""
        ...

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
        """A segment is whole: its Parquet artifact ``digest`` and its summary, in one transaction."""
        ...

    def segments(
        self,
        model: str,
        *,
        since: float | None = None,
        until: float | None = None,
        statuses: Sequence[str] | None = None,
        summaries: bool = True,
    ) -> list[SegmentRow]:
        """Segments of ``model`` holding requests from ``since`` to ``until``, oldest first."""
        ...

    def monitored_models(self) -> dict[str, int]:
        """``{model: closed segments}`` of every model with a prediction log."""
        ...


@dataclass(frozen=True)
class Stores:
    """Everything one configuration stores to: metadata (runs), registry, pipelines, artifact bytes, prediction log."""

    metadata: MetadataStore
    registry: RegistryStore
    pipelines: PipelineStore
    artifacts: ArtifactStore
    monitor: MonitorStore


_opened: dict[tuple[int, str, str, str, bool], Stores] = {}
_lock = threading.Lock()


def open_stores(config: Config, *, create: bool = True) -> Stores:
    """The stores of ``config``, confined to its project, opened (and migrated) once per process.

    ``create=False`` refuses a SQLite store that does not exist yet (viewers such as
    ``groundwork ui`` never make one, nor its folder). With ``config.server_url`` the
    stores are the team server's HTTP client (:mod:`groundwork.storage.http`).
    """
    if config.server_url:
        from groundwork.storage.http import open_http_stores

        return open_http_stores(config)
    key = (os.getpid(), config.store_url, config.artifacts_url, config.project, create)
    with _lock:
        found = _opened.get(key)
        if found is not None:
            return found
    from groundwork.storage.artifacts import ArtifactStore
    from groundwork.storage.metadata import open_metadata_store
    from groundwork.storage.monitor import SqlMonitorStore
    from groundwork.storage.pipelines import SqlPipelineStore
    from groundwork.storage.registry import SqlRegistryStore

    db = open_metadata_store(config.store_url, create=create).for_project(config.project)
    stores = Stores(db, SqlRegistryStore(db), SqlPipelineStore(db), ArtifactStore.from_url(config.artifacts_url),
                    SqlMonitorStore(db))
    with _lock:
        return _opened.setdefault(key, stores)


class TeamStore(Protocol):
    """Who may do what on a team server: users, projects, memberships, tokens and the audit log.

    Server-side only (not part of :class:`Stores`: clients never open it). Implementation:
    SQL (:mod:`groundwork.storage.team`), in the same database as the runs. Names are
    checked by the server; this contract stores what it is given. Roles are names from
    :data:`groundwork.storage.records.ROLES`; times are UNIX seconds.
    """

    @property
    def display_url(self) -> str:
        """The database's URL with any password hidden."""
        ...

    def close(self) -> None:
        ...

    # -- users ---------------------------------------------------------------------------
    def add_user(self, name: str, *, password_hash: str | None, server_admin: bool = False) -> UserRow:
        """Insert a user (:class:`~groundwork.errors.Conflict` when the name is taken)."""
        ...

    def get_user(self, name: str) -> UserRow | None:
        ...

    def list_users(self) -> list[UserRow]:
        ...

    def count_users(self) -> int:
        """How many users are not disabled."""
        ...

    def update_user(
        self, name: str, *, password_hash: str | None = None, disabled: bool | None = None,
        server_admin: bool | None = None,
    ) -> UserRow:
        """Change what is given (``None``: keep); :class:`~groundwork.errors.NotFound` for an unknown user."""
        ...

    # -- projects and memberships ---------------------------------------------------------
    def add_project(self, name: str, *, description: str | None = None) -> ProjectRow:
        """Insert a project (:class:`~groundwork.errors.Conflict` when it exists)."""
        ...

    def get_project(self, name: str) -> ProjectRow | None:
        ...

    def list_projects(self) -> list[ProjectRow]:
        ...

    def grant(self, user: str, project: str, role: str) -> MembershipRow:
        """Make ``user`` a member of ``project`` with ``role`` (replacing an earlier role)."""
        ...

    def revoke(self, user: str, project: str) -> bool:
        """End ``user``'s membership of ``project``; False when there was none."""
        ...

    def memberships(self, *, user: str | None = None, project: str | None = None) -> list[MembershipRow]:
        ...

    # -- tokens ---------------------------------------------------------------------------
    def create_token(
        self, *, token_id: str, secret_hash: str, user: str, project: str, role: str, name: str,
        expires_at: float | None, kind: str = "api",
    ) -> TokenRow:
        ...

    def get_token(self, token_id: str) -> TokenRow | None:
        ...

    def token_grant(self, token_id: str) -> TokenGrant | None:
        """The token ``token_id`` with its user and the user's role in its project, in one read."""
        ...

    def list_tokens(
        self, *, user: str | None = None, project: str | None = None, kind: str | None = "api",
        include_revoked: bool = False,
    ) -> list[TokenRow]:
        """Tokens, newest first (revoked ones only when asked; expired ones are listed)."""
        ...

    def revoke_token(self, token_id: str) -> bool:
        """Revoke a token; False when it does not exist or was already revoked."""
        ...

    def touch_token(self, token_id: str, at: float) -> None:
        """Record that the token was used at ``at``."""
        ...

    # -- the audit log --------------------------------------------------------------------
    def add_audit(self, entry: AuditEntry) -> int:
        """Append an entry; returns its id."""
        ...

    def audit_entries(
        self, *, project: str | None = None, since: float | None = None, until: float | None = None,
        actor: str | None = None, action: str | None = None, before_id: int | None = None, limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries matching every filter given, newest first (``before_id`` pages back)."""
        ...

    def audit_times(
        self, action: str, since: float, *, actor: str | None = None, address: str | None = None
    ) -> list[float]:
        """When ``action`` was recorded since ``since`` for ``actor`` or from ``address``, oldest first."""
        ...


def open_team_store(url: str, *, create: bool = True) -> TeamStore:
    """The team store in the database at ``url`` (migrated on open, like :func:`open_stores`)."""
    from groundwork.storage.metadata import open_metadata_store
    from groundwork.storage.team import SqlTeamStore

    return SqlTeamStore(open_metadata_store(url, create=create))


__all__ = [
    "MetadataStore",
    "MonitorStore",
    "PipelineStore",
    "RegistryStore",
    "Stores",
    "TeamStore",
    "open_stores",
    "open_team_store",
]

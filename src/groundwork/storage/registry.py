"""Rows of the model registry: models, versions, aliases, alias history, exports.

Row-level on purpose, like :mod:`groundwork.storage.metadata` (whose connections and
transactions it uses): it stores and reads rows, and knows nothing of flavors,
signatures or references. :mod:`groundwork.core.registry` builds the SDK on it.

Concurrency: a new version is numbered by incrementing ``models.latest_version``
inside the transaction that inserts it. On SQLite the whole transaction holds the
write lock (``BEGIN IMMEDIATE``); on PostgreSQL the ``UPDATE`` takes the model row's
lock, so concurrent writers queue on it and each gets the next number. Alias moves
take the same row lock before reading the alias, so history never loses a move.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from groundwork.errors import Conflict, ModelNotFound
from groundwork.storage import schema
from groundwork.storage.metadata import SqlMetadataStore
from groundwork.storage.records import (  # re-exported: the records live in storage.records
    AliasMove as AliasMove,
    ArtifactRow as ArtifactRow,
    ExportRow as ExportRow,
    ModelRow as ModelRow,
    VersionRow as VersionRow,
)


def _insert_artifact(db: SqlMetadataStore, conn: Any, artifact: ArtifactRow, now: float) -> None:
    """The ``artifacts`` row of ``artifact`` (kept when it exists), in the caller's transaction."""
    conn.execute(
        db.dialect_insert(schema.artifacts).on_conflict_do_nothing(),
        {"digest": artifact.digest, "size": artifact.size, "is_dir": artifact.is_dir,
         "file_count": artifact.file_count, "created_at": now},
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class SqlRegistryStore:
    """The registry contract (:class:`groundwork.storage.stores.RegistryStore`) on a SQL metadata store."""

    def __init__(self, db: SqlMetadataStore) -> None:
        self.db = db

    # -- projects: model names are unique in a store; a model belongs to one project ----------------
    def _own_names(self) -> Any:
        return select(schema.models.c.name).where(schema.models.c.project == self.db.project)

    def _check_model(self, conn: Any, name: str, *, create: bool = False) -> None:
        """Raise unless ``name`` is a model of this project (or, with ``create``, not a model of another)."""
        owner = conn.execute(select(schema.models.c.project).where(schema.models.c.name == name)).scalar()
        if owner is None and create:
            return
        if owner is None:
            raise ModelNotFound(f"no model named {name!r}", hint="list models with: groundwork models list")
        if owner != self.db.project:
            if create:
                raise Conflict(f"the model name {name!r} is taken by another project", hint="choose another name")
            raise ModelNotFound(f"no model named {name!r} in project {self.db.project!r}")

    # -- writes ------------------------------------------------------------------------
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
        """Insert version N+1 of ``name`` (creating the model on first use); returns N+1.

        In the same transaction the artifact row is recorded and, when ``run_id`` is
        given, linked as an output of that run (``kind="model"``, named ``link_name``).
        """
        now = time.time()
        db = self.db
        with db.write() as conn:
            self._check_model(conn, name, create=True)
            if run_id is not None:
                db._check_own(conn, [run_id])
            _insert_artifact(db, conn, artifact, now)
            conn.execute(
                db.dialect_insert(schema.models).on_conflict_do_nothing(),
                {"name": name, "description": None, "created_at": now, "latest_version": 0, "project": db.project},
            )
            models = schema.models
            conn.execute(
                update(models).where(models.c.name == name).values(latest_version=models.c.latest_version + 1)
            )
            version = int(conn.execute(select(models.c.latest_version).where(models.c.name == name)).scalar_one())
            conn.execute(
                insert(schema.model_versions),
                {
                    "name": name,
                    "version": version,
                    "run_id": run_id,
                    "artifact_digest": artifact.digest,
                    "flavor": flavor,
                    "onnx_digest": onnx_digest,
                    "signature": _dumps(dict(signature)) if signature is not None else None,
                    "description": description,
                    "tags": _dumps(dict(tags)) if tags else None,
                    "info": _dumps(dict(info)) if info else None,
                    "user": user,
                    "created_at": now,
                },
            )
            if run_id is not None:
                stmt = db.dialect_insert(schema.run_artifacts)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["run_id", "direction", "name"],
                    set_={"digest": stmt.excluded.digest, "kind": stmt.excluded.kind, "created_at": now},
                )
                conn.execute(
                    stmt,
                    {"run_id": run_id, "direction": "output", "name": link_name or f"models/{name}/{version}",
                     "digest": artifact.digest, "kind": "model", "created_at": now},
                )
        return version

    def set_description(self, name: str, description: str | None, version: int | None = None) -> None:
        with self.db.write() as conn:
            self._check_model(conn, name)
            if version is None:
                conn.execute(update(schema.models).where(schema.models.c.name == name).values(description=description))
            else:
                mv = schema.model_versions
                conn.execute(
                    update(mv).where(mv.c.name == name, mv.c.version == version).values(description=description)
                )

    def set_alias(
        self, name: str, alias: str, version: int | None, *, who: str | None, reason: str | None = None
    ) -> int | None:
        """Point ``alias`` at ``version`` (None removes it) and record the move; returns the old version.

        A move to the version the alias already points at records nothing.
        """
        now = time.time()
        models, aliases = schema.models, schema.model_aliases
        with self.db.write() as conn:
            # Take the model row's lock (PostgreSQL; SQLite already holds the write lock).
            conn.execute(select(models.c.name).where(models.c.name == name).with_for_update()).first()
            self._check_model(conn, name)
            current = conn.execute(
                select(aliases.c.version).where(aliases.c.name == name, aliases.c.alias == alias)
            ).scalar()
            previous = None if current is None else int(current)
            if previous == version:
                return previous
            if version is None:
                conn.execute(delete(aliases).where(aliases.c.name == name, aliases.c.alias == alias))
            else:
                stmt = self.db.dialect_insert(aliases)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["name", "alias"],
                    set_={"version": stmt.excluded.version, "updated_at": stmt.excluded.updated_at},
                )
                conn.execute(stmt, {"name": name, "alias": alias, "version": version, "updated_at": now})
            conn.execute(
                insert(schema.alias_history),
                {"name": name, "alias": alias, "from_version": previous, "to_version": version,
                 "who": who, "changed_at": now, "reason": reason},
            )
        return previous

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
        now = time.time()
        db = self.db
        with db.write() as conn:
            self._check_model(conn, name)
            _insert_artifact(db, conn, artifact, now)
            result = conn.execute(
                insert(schema.model_exports),
                {"name": name, "version": version, "target": target, "precision": precision,
                 "artifact_digest": artifact.digest, "verification": _dumps(dict(verification)),
                 "location": location, "user": user, "created_at": now},
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    # -- reads -------------------------------------------------------------------------
    def get_model(self, name: str) -> ModelRow | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(schema.models).where(schema.models.c.name == name, schema.models.c.project == self.db.project)
            ).first()
        return ModelRow(**dict(row._mapping)) if row else None

    def list_models(self) -> list[ModelRow]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(schema.models).where(schema.models.c.project == self.db.project).order_by(schema.models.c.name)
            )
            return [ModelRow(**dict(r._mapping)) for r in rows]

    def model_names(self) -> list[str]:
        with self.db.read() as conn:
            return [r[0] for r in conn.execute(self._own_names().order_by(schema.models.c.name))]

    def get_version(self, name: str, version: int) -> VersionRow | None:
        mv = schema.model_versions
        with self.db.read() as conn:
            row = conn.execute(
                select(mv).where(mv.c.name == name, mv.c.version == version, mv.c.name.in_(self._own_names()))
            ).first()
        return VersionRow.from_mapping(row._mapping) if row else None

    def latest_version(self, name: str) -> int | None:
        """The highest existing version number of ``name`` (None when it has none)."""
        mv = schema.model_versions
        with self.db.read() as conn:
            value = conn.execute(
                select(func.max(mv.c.version)).where(mv.c.name == name, mv.c.name.in_(self._own_names()))
            ).scalar()
        return None if value is None else int(value)

    def list_versions(self, name: str) -> list[VersionRow]:
        mv = schema.model_versions
        with self.db.read() as conn:
            rows = conn.execute(
                select(mv).where(mv.c.name == name, mv.c.name.in_(self._own_names())).order_by(mv.c.version)
            )
            return [VersionRow.from_mapping(r._mapping) for r in rows]

    def version_numbers(self, name: str) -> list[int]:
        mv = schema.model_versions
        with self.db.read() as conn:
            query = select(mv.c.version).where(mv.c.name == name, mv.c.name.in_(self._own_names()))
            return [int(r[0]) for r in conn.execute(query.order_by(mv.c.version))]

    def versions_for_run(self, run_id: str) -> list[VersionRow]:
        mv = schema.model_versions
        with self.db.read() as conn:
            rows = conn.execute(
                select(mv).where(mv.c.run_id == run_id, mv.c.name.in_(self._own_names())).order_by(mv.c.name, mv.c.version)
            )
            return [VersionRow.from_mapping(r._mapping) for r in rows]

    def versions_for_artifact(self, digest: str) -> list[VersionRow]:
        mv = schema.model_versions
        with self.db.read() as conn:
            rows = conn.execute(
                select(mv)
                .where((mv.c.artifact_digest == digest) | (mv.c.onnx_digest == digest), mv.c.name.in_(self._own_names()))
                .order_by(mv.c.name, mv.c.version)
            )
            return [VersionRow.from_mapping(r._mapping) for r in rows]

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` of one model, sorted by alias."""
        a = schema.model_aliases
        with self.db.read() as conn:
            rows = conn.execute(
                select(a.c.alias, a.c.version).where(a.c.name == name, a.c.name.in_(self._own_names())).order_by(a.c.alias)
            )
            return {alias: int(version) for alias, version in rows}

    def all_aliases(self) -> dict[str, dict[str, int]]:
        """``{model: {alias: version}}`` for every model that has an alias."""
        a = schema.model_aliases
        out: dict[str, dict[str, int]] = {}
        with self.db.read() as conn:
            for name, alias, version in conn.execute(
                select(a.c.name, a.c.alias, a.c.version)
                .where(a.c.name.in_(self._own_names()))
                .order_by(a.c.name, a.c.alias)
            ):
                out.setdefault(name, {})[alias] = int(version)
        return out

    def alias_version(self, name: str, alias: str) -> int | None:
        """Where ``alias`` of ``name`` points (one indexed read: cheap enough to poll)."""
        a = schema.model_aliases
        with self.db.read() as conn:
            value = conn.execute(
                select(a.c.version).where(a.c.name == name, a.c.alias == alias, a.c.name.in_(self._own_names()))
            ).scalar()
        return None if value is None else int(value)

    def alias_history(self, name: str, alias: str | None = None, limit: int | None = None) -> list[AliasMove]:
        """Alias moves of ``name``, newest first."""
        h = schema.alias_history
        query = select(h).where(h.c.name == name, h.c.name.in_(self._own_names()))
        if alias is not None:
            query = query.where(h.c.alias == alias)
        query = query.order_by(h.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.db.read() as conn:
            return [AliasMove(**dict(r._mapping)) for r in conn.execute(query)]

    def exports(self, name: str, version: int | None = None) -> list[ExportRow]:
        """Recorded exports of ``name`` (optionally one version), newest first."""
        e = schema.model_exports
        query = select(e).where(e.c.name == name, e.c.name.in_(self._own_names()))
        if version is not None:
            query = query.where(e.c.version == version)
        with self.db.read() as conn:
            return [ExportRow.from_mapping(r._mapping) for r in conn.execute(query.order_by(e.c.id.desc()))]

    def get_export(self, export_id: int) -> ExportRow | None:
        e = schema.model_exports
        with self.db.read() as conn:
            row = conn.execute(select(e).where(e.c.id == export_id, e.c.name.in_(self._own_names()))).first()
        return ExportRow.from_mapping(row._mapping) if row else None

    def exports_for_artifact(self, digest: str) -> list[ExportRow]:
        """Exports whose bundle is the artifact ``digest``."""
        e = schema.model_exports
        with self.db.read() as conn:
            rows = conn.execute(
                select(e).where(e.c.artifact_digest == digest, e.c.name.in_(self._own_names())).order_by(e.c.id)
            )
            return [ExportRow.from_mapping(r._mapping) for r in rows]

"""Alembic environment: groundwork runs migrations programmatically on an open connection."""

from __future__ import annotations

from alembic import context

from groundwork.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through MetadataStore
    raise RuntimeError("groundwork migrations run through groundwork.storage.metadata.MetadataStore")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

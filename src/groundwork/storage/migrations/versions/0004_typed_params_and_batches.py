"""Params keep their type; metric batches carry ids so that a retried batch is written once.

* ``params.value_type``: ``int``, ``float``, ``bool``, ``null`` or ``json`` for values that
  were not text when logged (NULL: text, as before). ``value`` keeps the text form the
  filter language compares.
* ``applied_batches``: the ids of the write batches already applied (a client that
  retries after a lost answer sends the same id again).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("params") as batch:
        batch.add_column(sa.Column("value_type", sa.String(length=8), nullable=True))
    op.create_table(
        "applied_batches",
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("applied_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id"),
    )
    op.create_index("ix_applied_batches_applied_at", "applied_batches", ["applied_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_applied_batches_applied_at", table_name="applied_batches")
    op.drop_table("applied_batches")
    with op.batch_alter_table("params") as batch:
        batch.drop_column("value_type")

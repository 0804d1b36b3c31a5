"""The prediction log: segments that ``groundwork serve`` writes, with their summaries.

* ``prediction_segments``: one row per segment of a model's prediction log: ``open``
  while a server fills it (its pid and host, refreshed), ``closed`` once its Parquet file
  (an artifact) and its summary (zlib-compressed JSON) are stored.
* ``prediction_samples`` is dropped: the prediction log supersedes the 1% sample.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_segments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("first_ts", sa.Float(), nullable=True),
        sa.Column("last_ts", sa.Float(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("summary", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["digest"], ["artifacts.digest"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_prediction_segments_model_last_ts", "prediction_segments", ["model", "last_ts"], unique=False)
    op.create_index("ix_prediction_segments_status", "prediction_segments", ["status"], unique=False)
    op.drop_index("ix_prediction_samples_model_ts", table_name="prediction_samples")
    op.drop_table("prediction_samples")


def downgrade() -> None:
    _RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "prediction_samples",
        sa.Column("id", _RowId, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("outputs", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_prediction_samples_model_ts", "prediction_samples", ["model", "timestamp"], unique=False)
    op.drop_index("ix_prediction_segments_status", table_name="prediction_segments")
    op.drop_index("ix_prediction_segments_model_last_ts", table_name="prediction_segments")
    op.drop_table("prediction_segments")

"""The model registry: models, model_versions, model_aliases, alias_history, prediction_samples.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("artifact_digest", sa.String(length=64), nullable=False),
        sa.Column("flavor", sa.String(length=32), nullable=False),
        sa.Column("onnx_digest", sa.String(length=64), nullable=True),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("info", sa.Text(), nullable=True),
        sa.Column("user", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["artifact_digest"], ["artifacts.digest"]),
        sa.ForeignKeyConstraint(["name"], ["models.name"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    op.create_index("ix_model_versions_artifact_digest", "model_versions", ["artifact_digest"], unique=False)
    op.create_index("ix_model_versions_run_id", "model_versions", ["run_id"], unique=False)
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["name"], ["models.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("name", "alias"),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("who", sa.String(length=255), nullable=True),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["name"], ["models.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alias_history_name", "alias_history", ["name", "id"], unique=False)
    op.create_table(
        "prediction_samples",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("outputs", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_prediction_samples_model_ts", "prediction_samples", ["model", "timestamp"], unique=False)


def downgrade() -> None:
    for table in ("prediction_samples", "alias_history", "model_aliases", "model_versions", "models"):
        op.drop_table(table)

"""Projects: every run and every model belongs to one (``default`` for what came before).

A team server scopes each token to a project; on a laptop the project is
``GROUNDWORK_PROJECT`` (default ``default``). Model names stay unique across a store
(a name another project uses is refused), so registry references never need a project.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("project", sa.String(length=64), nullable=False, server_default="default"))
    op.create_index("ix_runs_project_created_at", "runs", ["project", "created_at"], unique=False)
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("project", sa.String(length=64), nullable=False, server_default="default"))
    op.create_index("ix_models_project", "models", ["project"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_models_project", table_name="models")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("project")
    op.drop_index("ix_runs_project_created_at", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("project")

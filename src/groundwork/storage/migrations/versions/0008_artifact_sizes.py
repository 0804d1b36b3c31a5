"""Artifact sizes are 64-bit: a file of 2 GiB or more did not fit ``artifacts.size`` on PostgreSQL.

SQLite's INTEGER already holds 64 bits (and rebuilding a table other tables point at is
not worth it there): only PostgreSQL's column changes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("artifacts", "size", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("artifacts", "size", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)

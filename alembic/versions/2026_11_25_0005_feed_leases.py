"""feed leases and singleton job runs, for several daemons on one database

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("lease_token", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "singleton_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("run_key", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_singleton_runs")),
        sa.UniqueConstraint("job", "run_key", name=op.f("uq_singleton_runs_job_run_key")),
    )


def downgrade() -> None:
    op.drop_table("singleton_runs")
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_token")
        batch.drop_column("lease_owner")

"""feed polling: what the adaptive polling policy remembers about each feed, and feed moves

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_polling",
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=True),
        sa.Column("activity", sa.Float(), nullable=True),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("unchanged_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unchanged_checks", sa.Integer(), nullable=False),
        sa.Column("revalidate", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["feed_id"], ["feeds.id"], name=op.f("fk_feed_polling_feed_id_feeds"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("feed_id", name=op.f("pk_feed_polling")),
    )
    op.create_table(
        "feed_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("old_url", sa.Text(), nullable=False),
        sa.Column("new_url", sa.Text(), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_moves")),
        sa.UniqueConstraint("old_url", name=op.f("uq_feed_moves_old_url")),
    )


def downgrade() -> None:
    op.drop_table("feed_moves")
    op.drop_table("feed_polling")

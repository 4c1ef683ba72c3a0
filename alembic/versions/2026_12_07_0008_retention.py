"""retention: deleted articles' URLs kept in pruned_articles; articles indexed by first seen

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pruned_articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pruned_articles")),
        sa.UniqueConstraint("url", name=op.f("uq_pruned_articles_url")),
    )
    op.create_index(op.f("ix_articles_fetched_at"), "articles", ["fetched_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_articles_fetched_at"), table_name="articles")
    op.drop_table("pruned_articles")

"""story name sightings: what confident matches taught each story

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "story_name_sightings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("outlet", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name=op.f("fk_story_name_sightings_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_name_sightings")),
        sa.UniqueConstraint("story_id", "name", "article_id",
                            name=op.f("uq_story_name_sightings_story_id_name_article_id")),
    )
    op.create_index(op.f("ix_story_name_sightings_article_id"), "story_name_sightings", ["article_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_story_name_sightings_article_id"), table_name="story_name_sightings")
    op.drop_table("story_name_sightings")

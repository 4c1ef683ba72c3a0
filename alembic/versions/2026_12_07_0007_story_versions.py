"""story model versions, judgments and near misses; matches name their version and logit

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("matches") as batch:
        batch.add_column(sa.Column("model_version", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("logit", sa.Float(), nullable=True))
    op.create_table(
        "near_misses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Text(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("logit", sa.Float(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], name=op.f("fk_near_misses_article_id_articles"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_near_misses")),
        sa.UniqueConstraint("story_id", "article_id", name=op.f("uq_near_misses_story_id_article_id")),
    )
    op.create_index(op.f("ix_near_misses_article_id"), "near_misses", ["article_id"])
    op.create_table(
        "story_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Text(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("definition", sa.String(length=32), nullable=False),
        sa.Column("learned", sa.JSON(), nullable=False),
        sa.Column("judgments", sa.JSON(), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_versions")),
        sa.UniqueConstraint("story_id", "version", name=op.f("uq_story_versions_story_id_version")),
    )
    op.create_index(op.f("ix_story_versions_story_id"), "story_versions", ["story_id"])
    op.create_table(
        "judgments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("label", sa.String(length=8), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judgments")),
    )
    op.create_index(op.f("ix_judgments_story_id"), "judgments", ["story_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_judgments_story_id"), table_name="judgments")
    op.drop_table("judgments")
    op.drop_index(op.f("ix_story_versions_story_id"), table_name="story_versions")
    op.drop_table("story_versions")
    op.drop_index(op.f("ix_near_misses_article_id"), table_name="near_misses")
    op.drop_table("near_misses")
    with op.batch_alter_table("matches") as batch:
        batch.drop_column("logit")
        batch.drop_column("model_version")

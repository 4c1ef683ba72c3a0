"""The database schema: one declarative base, one class per table.

Alembic migrations (the top-level `alembic/` folder) create this schema; tests check that the
migrated database and these models agree.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Float, ForeignKey, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns aware UTC datetimes, also on SQLite, which keeps no offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive datetime is ambiguous; every datetime in monitor is aware (see _types).
            raise ValueError(f"naive datetime {value.isoformat()} given where an aware UTC datetime is required")
        # SQLite keeps no offset and compares datetimes as text: all must be in one zone.
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class SafeText(TypeDecorator[str]):
    """Text from outside (feeds, pages) made storable in every backend.

    PostgreSQL refuses NUL characters and no driver can encode lone surrogates; a hostile page
    must not be able to make a write fail, so both are replaced on the way in.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return clean_text(str(value))


def clean_text(text: str) -> str:
    """`text` as SafeText stores it."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


# Named constraints let Alembic's batch mode (SQLite) and PostgreSQL refer to them stably.
_NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING_CONVENTION)


class Feed(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(SafeText, unique=True)
    title: Mapped[str | None] = mapped_column(SafeText)
    source: Mapped[str] = mapped_column(String(16))          # "config", "cli" or "opml"
    enabled: Mapped[bool] = mapped_column(default=True)
    interval_seconds: Mapped[int | None]
    etag: Mapped[str | None] = mapped_column(SafeText)
    last_modified: Mapped[str | None] = mapped_column(SafeText)
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(SafeText)
    error_count: Mapped[int] = mapped_column(default=0)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The daemon working on the feed now (monitor.db.leases); the token grows with every claim
    # and fences the result of a daemon whose lease was taken over.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_token: Mapped[int] = mapped_column(default=0, server_default="0")
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Entry(Base):
    """A feed item already seen: the record that keeps anything from being processed twice."""

    __tablename__ = "entries"
    __table_args__ = (UniqueConstraint("feed_id", "entry_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    entry_key: Mapped[str] = mapped_column(SafeText)
    article_url: Mapped[str | None] = mapped_column(SafeText)   # canonical
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(SafeText, unique=True)     # canonical: the identity
    final_url: Mapped[str] = mapped_column(SafeText)
    feed_url: Mapped[str] = mapped_column(SafeText)
    entry_key: Mapped[str | None] = mapped_column(SafeText)
    title: Mapped[str] = mapped_column(SafeText)
    author: Mapped[str | None] = mapped_column(SafeText)
    outlet: Mapped[str | None] = mapped_column(SafeText)
    published: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lang: Mapped[str | None] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(SafeText, default="")
    body: Mapped[str] = mapped_column(SafeText)
    source: Mapped[str] = mapped_column(String(32))             # "page", "feed-content", "summary"
    # first seen; indexed for retention (monitor.db.retention), which walks articles by age
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    content_hash: Mapped[str] = mapped_column(String(64))       # sha256 of the body, hex


class PrunedArticle(Base):
    """An article retention deleted (monitor.db.retention): its canonical URL stays known, so no
    feed brings it back to be fetched again."""

    __tablename__ = "pruned_articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(SafeText, unique=True)     # canonical
    pruned_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Match(Base):
    __tablename__ = "matches"
    __table_args__ = (UniqueConstraint("story_id", "article_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[str] = mapped_column(Text)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    score: Mapped[float] = mapped_column(Float)
    evidence: Mapped[list[str]] = mapped_column(JSON)
    rule_versions: Mapped[dict[str, str]] = mapped_column(JSON)
    best_passage: Mapped[str | None] = mapped_column(SafeText)
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The story model version that decided (monitor.db.story_models) and its logit; None for
    # matches stored before versions existed.
    model_version: Mapped[str | None] = mapped_column(String(32))
    logit: Mapped[float | None] = mapped_column(Float)


class NearMiss(Base):
    """A decision that fell short of a story's threshold by a small margin: the "why not"."""

    __tablename__ = "near_misses"
    __table_args__ = (UniqueConstraint("story_id", "article_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[str] = mapped_column(Text)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    score: Mapped[float] = mapped_column(Float)
    logit: Mapped[float] = mapped_column(Float)
    evidence: Mapped[list[str]] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(32))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoryVersion(Base):
    """One version of a story's model: its definition, the names it learned and the judgments it
    follows, fixed together under a content hash. Decisions name the version that made them."""

    __tablename__ = "story_versions"
    __table_args__ = (UniqueConstraint("story_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[str] = mapped_column(Text, index=True)
    version: Mapped[str] = mapped_column(String(32))
    definition: Mapped[str] = mapped_column(String(32))      # hash of the configured story alone
    learned: Mapped[list[str]] = mapped_column(JSON)
    judgments: Mapped[dict[str, str]] = mapped_column(JSON)  # canonical URL -> on / off / brief
    terms: Mapped[dict[str, float] | None] = mapped_column(JSON)   # the profile, when judgments moved it
    reason: Mapped[str] = mapped_column(SafeText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Judgment(Base):
    """An analyst's label on an article for a story; the latest per (story, URL) counts."""

    __tablename__ = "judgments"

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[str] = mapped_column(Text, index=True)
    url: Mapped[str] = mapped_column(SafeText)                # canonical
    label: Mapped[str] = mapped_column(String(8))             # on, off, brief
    note: Mapped[str | None] = mapped_column(SafeText)
    author: Mapped[str] = mapped_column(SafeText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PageFailure(Base):
    """An article page that could not be fetched; retried on later passes up to a limit."""

    __tablename__ = "page_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(SafeText, unique=True)     # canonical
    feed_url: Mapped[str] = mapped_column(SafeText)
    error: Mapped[str] = mapped_column(SafeText)
    attempts: Mapped[int] = mapped_column(default=1)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SingletonRun(Base):
    """A job run that must happen once across every daemon (monitor.db.leases.run_once_per)."""

    __tablename__ = "singleton_runs"
    __table_args__ = (UniqueConstraint("job", "run_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(200))
    run_key: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoryNameSighting(Base):
    """A name a confident match brought to a story; names seen often enough are learned
    (monitor.matching.evolve, monitor.db.story_state)."""

    __tablename__ = "story_name_sightings"
    __table_args__ = (UniqueConstraint("story_id", "name", "article_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(SafeText)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    outlet: Mapped[str] = mapped_column(SafeText)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertState(Base):
    """A configured alert's batching state, shared by every daemon (monitor.db.alerts)."""

    __tablename__ = "alert_states"

    alert_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    story_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)     # matches from then on are sent
    next_send_at: Mapped[datetime] = mapped_column(UTCDateTime)   # no message goes before this
    failures: Mapped[int] = mapped_column(default=0)              # failed attempts in a row
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(SafeText)


class AlertDelivery(Base):
    """An article an alert owes its destination: claimed before sending, marked sent after."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "article_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(200))
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))                # pending, sending, sent, failed
    batch: Mapped[str | None] = mapped_column(String(32))         # the claim that is sending it
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(SafeText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DigestRun(Base):
    """One scheduled digest time: whoever inserts the row sends it, so it goes out once."""

    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("digest_id", "scheduled_for"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[str] = mapped_column(String(200))
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16))                # sending, sent, failed, given-up
    attempts: Mapped[int] = mapped_column(default=1)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(SafeText)


class FeedPolling(Base):
    """What the polling policy (monitor.schedule.next_check) remembers about a feed between checks."""

    __tablename__ = "feed_polling"

    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"), primary_key=True)
    interval_seconds: Mapped[float | None] = mapped_column(Float)   # adapted interval; None = configured
    activity: Mapped[float | None] = mapped_column(Float)           # smoothed new entries per check
    checks: Mapped[int] = mapped_column(default=0)                  # successful checks so far
    unchanged_since: Mapped[datetime | None] = mapped_column(UTCDateTime)   # start of the run of 304s
    unchanged_checks: Mapped[int] = mapped_column(default=0)
    revalidate: Mapped[bool] = mapped_column(default=False)         # next request without validators
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FeedMove(Base):
    """A feed URL that answered 301/308: a configuration still naming it is pointed at the new one."""

    __tablename__ = "feed_moves"

    id: Mapped[int] = mapped_column(primary_key=True)
    old_url: Mapped[str] = mapped_column(SafeText, unique=True)
    new_url: Mapped[str] = mapped_column(SafeText)
    moved_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InboxItem(Base):
    """Entries another aggregator handed over (reader, Miniflux), waiting to be processed.

    Accepting entries is one short insert, so it can happen inside reader's update call or a
    webhook request; a worker processes them later and deletes the row only once its articles
    are stored, so entries survive a crash in between. `claimed_until` keeps two workers from
    processing the same row at once (it is only a hint on SQLite: processing is idempotent).
    """

    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    origin: Mapped[str] = mapped_column(String(16))              # "reader", "miniflux"
    feed_url: Mapped[str] = mapped_column(SafeText)
    feed_title: Mapped[str | None] = mapped_column(SafeText)
    entries: Mapped[str] = mapped_column(Text)                   # JSON list of FeedEntry fields
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)


class ArchiveFile(Base):
    """How far `monitor ingest warc` got in one archive file: an interrupted run resumes there."""

    __tablename__ = "archive_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(SafeText, unique=True)     # absolute
    fingerprint: Mapped[str] = mapped_column(String(64))        # sha256 of its first 64 KiB: another file starts over
    next_offset: Mapped[int] = mapped_column(BigInteger)        # every record before it is stored
    records: Mapped[int] = mapped_column(BigInteger, default=0)  # records read before `next_offset`
    pages: Mapped[int] = mapped_column(BigInteger, default=0)    # HTML pages among them
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

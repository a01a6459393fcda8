"""The state store schema (SQLAlchemy 2). Change it only together with a migration."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite has no 64-bit autoincrement other than INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back tz-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: D102
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: D102
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, tz-aware UTC (bookkeeping times only: statement content never uses it)."""
    return datetime.now(UTC)


class OutboxStatus(StrEnum):
    """Where an outbox row is in its life."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Site(Base):
    """A configured source seen by the store (a Moodle site, a CoP group...)."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Cursor(Base):
    """How far one stream of one site has been pulled.

    Guard: written only by :func:`lms_bridge.store.commit_batch`, in the same
    transaction as the outbox rows it covers (the cursor rule, docs/design.md).
    """

    __tablename__ = "cursors"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stream: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: JSON text: the stream's own position (a timestamp, a page, a line number...).
    position: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Person(Base):
    """A civil servant, keyed by NIP (18 digits, stored as text)."""

    __tablename__ = "persons"
    # A report of one unit (or of the units under a prefix: an institution's) starts from its people;
    # on PostgreSQL the pattern operator class serves both ``= code`` and ``LIKE 'prefix%'``.
    __table_args__ = (Index("ix_persons_unit_code", "unit_code", postgresql_ops={"unit_code": "varchar_pattern_ops"}),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    nip: Mapped[str] = mapped_column(String(18), unique=True)
    employee_type: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Roster fields (None: not on the HR roster).
    name: Mapped[str | None] = mapped_column(Text)
    unit_code: Mapped[str | None] = mapped_column(String(64))
    unit_name: Mapped[str | None] = mapped_column(Text)
    position: Mapped[str | None] = mapped_column(Text)
    #: SIASN's own person id (``pns/data-utama/{nip}`` ``data.id``): the ``pnsOrangId`` of a SIASN export.
    siasn_id: Mapped[str | None] = mapped_column(String(64))
    roster_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdentityLink(Base):
    """One source-local identity (Moodle user, chat pseudonym) and the person it belongs to."""

    __tablename__ = "identity_links"
    __table_args__ = (UniqueConstraint("source", "site_id", "local_id", name="uq_identity_links_local"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[str] = mapped_column(String(64))
    #: Moodle user id or chat pseudonym: never a raw phone number.
    local_id: Mapped[str] = mapped_column(String(128))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OutboxRow(Base):
    """A statement waiting for (or done with) its trip to the LRS.

    ``body`` is the exact JSON posted: it is never re-serialised (but for a void an older
    version queued with ``context.platform``, repaired once and stored before it is posted:
    ``xapi/repair.py``), so a re-post is byte-equal: the LRS answers 204, or 409 and reads
    back equal (docs/lrs.md §3).
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_due", "status", "next_attempt_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    statement_id: Mapped[str] = mapped_column(String(36), unique=True)
    body: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str | None] = mapped_column(String(64))
    stream: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Evidence(Base):
    """The facts of one statement that JP rules read (written with its outbox row).

    The person is resolved when JP is computed, not when the activity is read: an
    account linked to a NIP later still brings its past activity (the relink rule).
    """

    __tablename__ = "evidence"
    __table_args__ = (
        Index("ix_evidence_actor", "source", "site_id", "local_actor"),
        # A display-name link (``people link-names``) names a chat actor within one community.
        Index("ix_evidence_community_actor", "community", "local_actor"),
        # Reply edges of the CoP report: a reply joined to the item it answers, within one site.
        Index("ix_evidence_site_reply_to", "site_id", "reply_to"),
        Index("ix_evidence_site_object", "site_id", "object_key"),
    )

    statement_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[str] = mapped_column(String(64))
    #: Moodle user id or chat pseudonym (never a raw phone number).
    local_actor: Mapped[str] = mapped_column(String(128))
    #: A NIP the source itself gave (e.g. an LMS export), else None.
    nip: Mapped[str | None] = mapped_column(String(18), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    #: What the activity was about: course id, meeting id, group id...
    object_key: Mapped[str] = mapped_column(Text)
    #: The Community of Practice it belongs to, when it does.
    community: Mapped[str | None] = mapped_column(Text)
    #: JSON text: small facts the rules read (course idnumber, category, session minutes...).
    facts: Mapped[str] = mapped_column(Text, default="{}")
    #: The source's own reply link: the object key (same site) of the item this one answers
    #: (a Moodle parent post, a Telegram ``reply_to_message_id``); None when the source has none.
    reply_to: Mapped[str | None] = mapped_column(Text)


class JPRecord(Base):
    """A JP credit posted (or voided) as an ``earned`` statement.

    One active revision per (person, rule, period, activity key); a change of
    evidence or rule version voids it and adds revision + 1.
    """

    __tablename__ = "jp_records"
    __table_args__ = (
        UniqueConstraint("nip", "rule_id", "period", "activity_key", "revision", name="uq_jp_records_key"),
        Index("ix_jp_records_nip_status", "nip", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    nip: Mapped[str] = mapped_column(String(18))
    rule_id: Mapped[str] = mapped_column(String(64))
    rule_version: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(32))
    activity_key: Mapped[str] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer)
    #: Decimal as text (exact, the same on SQLite and PostgreSQL).
    jp: Mapped[str] = mapped_column(String(16))
    evidence_hash: Mapped[str] = mapped_column(String(64))
    statement_id: Mapped[str] = mapped_column(String(36), unique=True)
    #: The statement's timestamp (its latest evidence); a voiding statement reuses it.
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JPPending(Base):
    """A JP credit held back: its course's program JP is unknown (never a silent 0).

    Rewritten for the years each ``jp compute`` reads; nothing is posted for it. Once the
    course is configured the next ``jp compute`` posts the record and the row goes away.
    """

    __tablename__ = "jp_pending"
    __table_args__ = (
        UniqueConstraint("nip", "rule_id", "period", "activity_key", name="uq_jp_pending_key"),
        Index("ix_jp_pending_nip_day", "nip", "period_day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    nip: Mapped[str] = mapped_column(String(18))
    rule_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(32))
    period_day: Mapped[date] = mapped_column(Date)
    activity_key: Mapped[str] = mapped_column(Text)
    site_id: Mapped[str] = mapped_column(String(64))
    #: How ``rules check`` names the course to configure (shortname, idnumber or category).
    course: Mapped[str] = mapped_column(Text)
    #: JSON text: the evidence statement ids held.
    evidence_ids: Mapped[str] = mapped_column(Text)
    evidence_count: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Run(Base):
    """One command run against a site (a sync, an import, a flush)."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    command: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="running")
    #: JSON text: counts per stream (pulled, new, unchanged, errors...).
    counts: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str | None] = mapped_column(Text)
    #: The owner string (``host:pid:id``) of the lock the run held, if any: while that lock is
    #: held the run may be alive; once it is gone a ``running`` run was killed (lms_bridge.store.runs).
    owner: Mapped[str | None] = mapped_column(String(200))


class Lock(Base):
    """A lock row (owner and expiry) so two runs never sync one site at once."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PersonUnit(Base):
    """A person's work unit from a date on (roster history: reports use the unit at the as-of date)."""

    __tablename__ = "person_units"
    __table_args__ = (
        UniqueConstraint("nip", "valid_from", name="uq_person_units_nip_from"),
        # Who was in a unit (or under a unit prefix) by a date: the people a unit's report starts from.
        Index("ix_person_units_unit", "unit_code", "valid_from", postgresql_ops={"unit_code": "varchar_pattern_ops"}),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    nip: Mapped[str] = mapped_column(String(18), index=True)
    unit_code: Mapped[str | None] = mapped_column(String(64))
    unit_name: Mapped[str | None] = mapped_column(Text)
    valid_from: Mapped[date] = mapped_column(Date)
    #: The next row's ``valid_from`` for the same NIP, NULL for the latest: kept by a trigger (migration 0013),
    #: so that the row in force on a day is ``valid_from <= day < valid_to`` (an index range for a unit prefix).
    valid_to: Mapped[date | None] = mapped_column(Date)


class LedgerRecord(Base):
    """A JP record mirrored from the LRS (``ledger sync``): what HR reports count.

    Any ``earned`` statement with the JP extension counts, whoever posted it; a
    record whose id a voiding statement names is kept with ``voided`` set.

    On PostgreSQL the table is partitioned by year of ``period_day`` (migration 0011) and
    its primary key is ``(statement_id, period_day)`` (a partitioned table's keys must hold
    the partition key; a statement's ``period_day`` never changes, so the id stays unique in
    practice); :data:`RECORD_KEY` gives the upsert's conflict columns per dialect. SQLite
    keeps the plain table keyed by ``statement_id``.
    """

    __tablename__ = "ledger_records"
    # Covering (nip, day, voided, jp): the compliance sum reads the index alone, in NIP order.
    __table_args__ = (
        Index("ix_ledger_records_nip_day", "nip", "period_day", "voided", "jp"),
        Index("ix_ledger_records_day", "period_day"),
        # An institution's records as one index range (by the roster unit the trigger tags them with).
        Index(
            "ix_ledger_records_unit",
            "unit_code",
            "nip",
            "period_day",
            "voided",
            "jp",
            postgresql_ops={"unit_code": "varchar_pattern_ops"},
        ),
    )

    statement_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    nip: Mapped[str] = mapped_column(String(18))
    #: Decimal as text (exact on SQLite and PostgreSQL).
    jp: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[str | None] = mapped_column(String(64))
    rule_version: Mapped[int | None] = mapped_column(Integer)
    rule_code: Mapped[str | None] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(32))
    #: The first local day of the period (what years, months and as-of dates compare).
    period_day: Mapped[date] = mapped_column(Date)
    object_id: Mapped[str] = mapped_column(Text)
    #: JSON text: the evidence statement ids the record lists.
    evidence_ids: Mapped[str] = mapped_column(Text, default="[]")
    evidence_count: Mapped[int] = mapped_column(Integer, default=0)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    stored: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The roster's current unit of ``nip`` (``persons.unit_code``; NULL without a person row), denormalised
    #: and kept by triggers on both tables (migration 0013): never written by lms-bridge's code.
    unit_code: Mapped[str | None] = mapped_column(String(64))


#: The columns of ``ledger_records``' primary key, per dialect (the upsert's conflict target).
RECORD_KEY = {"postgresql": ("statement_id", "period_day"), "sqlite": ("statement_id",)}
_PARTITION = re.compile(r"ledger_records_(y\d{4}|default)")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's ``include_name``: leave out the yearly partitions of ``ledger_records`` (migration 0011).

    They are made by the migration, not described by a model; their indexes are the parent's,
    so autogenerate compares the partitioned parent alone.
    """
    if type_ == "table":
        return name is None or not _PARTITION.fullmatch(name)
    if type_ == "index":
        table = parent_names.get("table_name") if isinstance(parent_names, dict) else None
        return not (isinstance(table, str) and _PARTITION.fullmatch(table))
    return True


class LedgerEvidence(Base):
    """What an auditor needs of an evidence statement, mirrored from the LRS (no bodies, no names)."""

    __tablename__ = "ledger_evidence"

    statement_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    verb: Mapped[str] = mapped_column(Text)
    object_id: Mapped[str] = mapped_column(Text)
    object_type: Mapped[str | None] = mapped_column(Text)
    object_name: Mapped[str | None] = mapped_column(Text)
    platform: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)


class LedgerVoid(Base):
    """A statement id some voiding statement names (kept even if the target is not mirrored yet)."""

    __tablename__ = "ledger_voids"

    statement_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    voided_by: Mapped[str] = mapped_column(String(36))


class ForgottenPerson(Base):
    """A tombstone left by ``lms-bridge forget``, so no source or roster brings the person back.

    Only keyed digests are kept (:func:`lms_bridge.identity.resolver.forgotten_digest`): one of the NIP and one
    of each source account and chat pseudonym the person had. Never a NIP or an account id itself.
    """

    __tablename__ = "forgotten_people"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    forgotten_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebUser(Base):
    """An HR user of the read-only web page (``lms-bridge users add``); only a password hash is kept."""

    __tablename__ = "web_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    #: ``scrypt$n$r$p$salt-hex$hash-hex`` (hashlib.scrypt): never the password.
    password_hash: Mapped[str] = mapped_column(Text)
    #: Unit codes the user may see, comma-separated; empty: every unit.
    units: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: ``hr`` (every page) or ``organiser`` (CoP organiser: the *Komunitas Belajar* page only, aggregates).
    role: Mapped[str] = mapped_column(String(16), default="hr", server_default="hr")


class WebSession(Base):
    """One login to the web page (issue 20): the cookie holds a random token, the store only its SHA-256.

    Logout deletes the row and ``users disable`` deletes all of a user's rows, so a copied cookie
    stops working at once; ``created_at`` bounds a session's whole life, ``seen_at`` its idle time.
    """

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebLoginThrottle(Base):
    """Login attempts counted per client address and per (address, name) in a fixed window (issue 20).

    ``key`` is the SHA-256 of the scope, the address and the name typed, so neither a typed name (maybe a
    password typed in the wrong field) nor an address is kept. The count is raised by one conditional
    UPDATE, so concurrent guesses cannot pass the limit.
    """

    __tablename__ = "web_login_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class InboxFile(Base):
    """A file an inbox pass saw but did not finish (``lms_bridge.ingest.inbox``).

    Keyed by a digest of the inbox folder and the file name (a name may hold a person's name:
    it is not stored). ``size``/``mtime_ns``/``inode`` are what the last pass saw: a file is
    imported only when two passes saw the same. ``attempts`` counts imports started and not
    finished (an unexpected error, or a process killed while importing): after a few the file is
    moved to ``failed/``, so one upload cannot keep ``serve`` in a loop.
    """

    __tablename__ = "inbox_files"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: The class of the last unexpected error (never its message: it may quote the file).
    last_error: Mapped[str | None] = mapped_column(String(200))


class ReportVersion(Base):
    """One counter row: bumped by every transaction that can change the compliance report.

    The report reads ``ledger_records``, ``persons``, ``person_units`` and ``jp_pending``; each
    writer of those tables (``ledger sync``, ``people import``, ``jp compute``, ``forget``) bumps
    the counter in its own transaction (:mod:`lms_bridge.store.report_version`), so the web page
    can keep a computed report until the counter moves (migration 0012, docs/operations.md).
    """

    __tablename__ = "report_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

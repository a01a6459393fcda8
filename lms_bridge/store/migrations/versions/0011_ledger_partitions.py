"""A national ledger: ``ledger_records`` partitioned by year on PostgreSQL; unit indexes for reports.

On PostgreSQL ``ledger_records`` becomes a declarative RANGE partition on ``period_day``, one
partition a year (``ledger_records_y2026``) and a DEFAULT partition for a year outside the range
made here. A report of one year reads one partition; a closed year is vacuumed once and stays
all-visible (index-only scans). The primary key must hold the partition key, so it becomes
``(statement_id, period_day)``: a statement's ``period_day`` comes from the statement itself,
which never changes, so a statement id is still found once (``ledger sync`` upserts on both).
Every existing row is copied into the partitioned table. SQLite keeps the plain table (the
small-institution default): partitioning is a PostgreSQL feature and a small ledger does not need it.

Both dialects get indexes on the roster's unit codes (``persons.unit_code``,
``person_units(unit_code, valid_from)``): a report of one unit or one institution's units
starts from the people of those units instead of summing the whole ledger (docs/scaling.md).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: Yearly partitions made at least for these years (more when the ledger already holds others).
FIRST_YEAR = 2015
LAST_YEAR = 2040

_COLUMNS = (
    "statement_id, nip, jp, rule_id, rule_version, rule_code, period, period_day, object_id, "
    "evidence_ids, evidence_count, timestamp, stored, voided"
)
_DEFINITION = """(
    statement_id VARCHAR(36) NOT NULL,
    nip VARCHAR(18) NOT NULL,
    jp VARCHAR(16) NOT NULL,
    rule_id VARCHAR(64),
    rule_version INTEGER,
    rule_code VARCHAR(16),
    period VARCHAR(32) NOT NULL,
    period_day DATE NOT NULL,
    object_id TEXT NOT NULL,
    evidence_ids TEXT NOT NULL,
    evidence_count INTEGER NOT NULL,
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    stored TIMESTAMP WITH TIME ZONE,
    voided BOOLEAN NOT NULL
)"""


def partition_sql(year: int) -> str:
    """The DDL of one year's partition (also what an operator runs for a year beyond the range)."""
    return (
        f"CREATE TABLE IF NOT EXISTS ledger_records_y{year} PARTITION OF ledger_records "
        f"FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01')"
    )


def _unit_indexes_up() -> None:
    # varchar_pattern_ops (PostgreSQL): the index serves `= code` and `LIKE 'prefix%'` in any collation.
    pattern = {"unit_code": "varchar_pattern_ops"}
    op.create_index("ix_persons_unit_code", "persons", ["unit_code"], postgresql_ops=pattern)
    op.create_index("ix_person_units_unit", "person_units", ["unit_code", "valid_from"], postgresql_ops=pattern)


def _unit_indexes_down() -> None:
    op.drop_index("ix_person_units_unit", table_name="person_units")
    op.drop_index("ix_persons_unit_code", table_name="persons")


def upgrade() -> None:  # noqa: D103
    _unit_indexes_up()
    if op.get_bind().dialect.name != "postgresql":
        return
    bind = op.get_bind()
    low, high = bind.execute(
        sa.text("SELECT EXTRACT(YEAR FROM MIN(period_day)), EXTRACT(YEAR FROM MAX(period_day)) FROM ledger_records")
    ).one()
    first = min(FIRST_YEAR, int(low)) if low is not None else FIRST_YEAR
    last = max(LAST_YEAR, int(high)) if high is not None else LAST_YEAR
    op.execute("ALTER TABLE ledger_records RENAME TO ledger_records_plain")
    op.execute("ALTER TABLE ledger_records_plain RENAME CONSTRAINT ledger_records_pkey TO ledger_records_plain_pkey")
    op.execute("DROP INDEX ix_ledger_records_nip_day")
    op.execute("DROP INDEX ix_ledger_records_day")
    op.execute(f"CREATE TABLE ledger_records {_DEFINITION} PARTITION BY RANGE (period_day)")
    for year in range(first, last + 1):
        op.execute(partition_sql(year))
    op.execute("CREATE TABLE ledger_records_default PARTITION OF ledger_records DEFAULT")
    # Rows first, keys and indexes after: one sort per index instead of one insert per row.
    op.execute(f"INSERT INTO ledger_records ({_COLUMNS}) SELECT {_COLUMNS} FROM ledger_records_plain")  # noqa: S608 - constants
    op.execute("DROP TABLE ledger_records_plain")
    op.execute("ALTER TABLE ledger_records ADD CONSTRAINT ledger_records_pkey PRIMARY KEY (statement_id, period_day)")
    op.create_index("ix_ledger_records_nip_day", "ledger_records", ["nip", "period_day", "voided", "jp"])
    op.create_index("ix_ledger_records_day", "ledger_records", ["period_day"])


def downgrade() -> None:  # noqa: D103
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE ledger_records RENAME TO ledger_records_partitioned")
        op.execute("ALTER INDEX ix_ledger_records_nip_day RENAME TO ix_ledger_records_partitioned_nip_day")
        op.execute("ALTER INDEX ix_ledger_records_day RENAME TO ix_ledger_records_partitioned_day")
        op.execute(
            "ALTER TABLE ledger_records_partitioned RENAME CONSTRAINT ledger_records_pkey "
            "TO ledger_records_partitioned_pkey"
        )
        op.execute(f"CREATE TABLE ledger_records {_DEFINITION}")
        op.execute(f"INSERT INTO ledger_records ({_COLUMNS}) SELECT {_COLUMNS} FROM ledger_records_partitioned")  # noqa: S608
        op.execute("DROP TABLE ledger_records_partitioned")  # its partitions go with it
        op.execute("ALTER TABLE ledger_records ADD CONSTRAINT ledger_records_pkey PRIMARY KEY (statement_id)")
        op.create_index("ix_ledger_records_nip_day", "ledger_records", ["nip", "period_day", "voided", "jp"])
        op.create_index("ix_ledger_records_day", "ledger_records", ["period_day"])
    _unit_indexes_down()

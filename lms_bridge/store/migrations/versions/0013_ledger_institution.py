"""An institution's report reads ranges, not one probe per member: a unit tag on the records, a valid_to on history.

Two denormalised columns, each kept right by database triggers (so by every writer, the tests' direct
inserts included), on both dialects:

- ``ledger_records.unit_code``: the roster's current unit (``persons.unit_code``) of the record's NIP,
  NULL when the NIP has no ``persons`` row. Set when a record is inserted; re-set on every record of a
  NIP when the person row is inserted, deleted, or its NIP or unit changes (a mover's records follow
  them). The index ``ix_ledger_records_unit (unit_code, nip, period_day, voided, jp)`` (per yearly
  partition on PostgreSQL) gives the JP of everyone the roster puts under a unit prefix as one
  contiguous index range instead of one probe per person (docs/scaling.md, "The national ledger").
- ``person_units.valid_to``: the next history row's ``valid_from`` for the same NIP (NULL for the
  latest row), re-computed for a NIP whenever one of its history rows is inserted, deleted, or its
  NIP or ``valid_from`` changes. A person's unit on a day is then the one row with
  ``valid_from <= day < valid_to``, found by a range read of ``ix_person_units_unit`` for a unit
  prefix instead of one probe per person.

Both are filled for the rows already there. On a large PostgreSQL ledger the fill rewrites every record
(one UPDATE): plan it like migration 0011. The reports of SQLite do not use the columns (its plain
path is fast enough at an institution's size) but the triggers keep them right there too.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_PATTERN = {"unit_code": "varchar_pattern_ops"}

#: The history chain of one NIP (``{nip}``: NEW.nip or OLD.nip): each row's valid_to is the next row's valid_from.
_CHAIN = (
    "UPDATE person_units SET valid_to = (SELECT min(q.valid_from) FROM person_units q "
    "WHERE q.nip = person_units.nip AND q.valid_from > person_units.valid_from) WHERE nip = {nip}"
)
#: Every record of one NIP takes the unit ``{unit}`` (NEW.unit_code, or NULL when the person row goes).
#: (SQLite's ``IS NOT`` is PostgreSQL's ``IS DISTINCT FROM``.)
_TAG = "UPDATE ledger_records SET unit_code = {unit} WHERE nip = {nip} AND unit_code {distinct} {unit}"

_POSTGRESQL = (
    """CREATE FUNCTION lmsb_ledger_record_unit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.unit_code := (SELECT unit_code FROM persons WHERE nip = NEW.nip);
    RETURN NEW;
END $$""",
    "CREATE TRIGGER lmsb_ledger_record_unit BEFORE INSERT OR UPDATE OF nip, unit_code ON ledger_records "
    "FOR EACH ROW EXECUTE FUNCTION lmsb_ledger_record_unit()",
    f"""CREATE FUNCTION lmsb_person_ledger_unit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.nip IS DISTINCT FROM NEW.nip) THEN
        {_TAG.format(unit="NULL::varchar", nip="OLD.nip", distinct="IS DISTINCT FROM")};
    END IF;
    IF TG_OP <> 'DELETE' THEN
        {_TAG.format(unit="NEW.unit_code", nip="NEW.nip", distinct="IS DISTINCT FROM")};
    END IF;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER lmsb_person_ledger_unit AFTER INSERT OR DELETE OR UPDATE OF nip, unit_code ON persons "
    "FOR EACH ROW EXECUTE FUNCTION lmsb_person_ledger_unit()",
    f"""CREATE FUNCTION lmsb_person_units_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.nip IS DISTINCT FROM NEW.nip) THEN
        {_CHAIN.format(nip="OLD.nip")};
    END IF;
    IF TG_OP <> 'DELETE' THEN
        {_CHAIN.format(nip="NEW.nip")};
    END IF;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER lmsb_person_units_chain AFTER INSERT OR DELETE OR UPDATE OF nip, valid_from ON person_units "
    "FOR EACH ROW EXECUTE FUNCTION lmsb_person_units_chain()",
)
_POSTGRESQL_DOWN = (
    "DROP TRIGGER lmsb_person_units_chain ON person_units",
    "DROP FUNCTION lmsb_person_units_chain()",
    "DROP TRIGGER lmsb_person_ledger_unit ON persons",
    "DROP FUNCTION lmsb_person_ledger_unit()",
    "DROP TRIGGER lmsb_ledger_record_unit ON ledger_records",
    "DROP FUNCTION lmsb_ledger_record_unit()",
)

# SQLite: the same rules as statement lists (its triggers cannot assign NEW, so an insert is tagged after).
_SQLITE = (
    "CREATE TRIGGER lmsb_ledger_record_unit AFTER INSERT ON ledger_records BEGIN "
    "UPDATE ledger_records SET unit_code = (SELECT unit_code FROM persons WHERE nip = NEW.nip) "
    "WHERE statement_id = NEW.statement_id; END",
    "CREATE TRIGGER lmsb_ledger_record_unit_update AFTER UPDATE OF nip, unit_code ON ledger_records BEGIN "
    "UPDATE ledger_records SET unit_code = (SELECT unit_code FROM persons WHERE nip = NEW.nip) "
    "WHERE statement_id = NEW.statement_id "
    "AND unit_code IS NOT (SELECT unit_code FROM persons WHERE nip = NEW.nip); END",
    f"CREATE TRIGGER lmsb_person_ledger_unit_insert AFTER INSERT ON persons BEGIN "
    f"{_TAG.format(unit='NEW.unit_code', nip='NEW.nip', distinct='IS NOT')}; END",
    f"CREATE TRIGGER lmsb_person_ledger_unit_update AFTER UPDATE OF nip, unit_code ON persons BEGIN "
    f"{_TAG.format(unit='NULL', nip='OLD.nip', distinct='IS NOT')} AND OLD.nip IS NOT NEW.nip; "
    f"{_TAG.format(unit='NEW.unit_code', nip='NEW.nip', distinct='IS NOT')}; END",
    f"CREATE TRIGGER lmsb_person_ledger_unit_delete AFTER DELETE ON persons BEGIN "
    f"{_TAG.format(unit='NULL', nip='OLD.nip', distinct='IS NOT')}; END",
    f"CREATE TRIGGER lmsb_person_units_chain_insert AFTER INSERT ON person_units BEGIN "
    f"{_CHAIN.format(nip='NEW.nip')}; END",
    f"CREATE TRIGGER lmsb_person_units_chain_update AFTER UPDATE OF nip, valid_from ON person_units BEGIN "
    f"{_CHAIN.format(nip='OLD.nip')}; {_CHAIN.format(nip='NEW.nip')}; END",
    f"CREATE TRIGGER lmsb_person_units_chain_delete AFTER DELETE ON person_units BEGIN "
    f"{_CHAIN.format(nip='OLD.nip')}; END",
)
_SQLITE_DOWN = tuple(
    f"DROP TRIGGER {name}"
    for name in (
        "lmsb_ledger_record_unit",
        "lmsb_ledger_record_unit_update",
        "lmsb_person_ledger_unit_insert",
        "lmsb_person_ledger_unit_update",
        "lmsb_person_ledger_unit_delete",
        "lmsb_person_units_chain_insert",
        "lmsb_person_units_chain_update",
        "lmsb_person_units_chain_delete",
    )
)


def upgrade() -> None:  # noqa: D103
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.add_column("person_units", sa.Column("valid_to", sa.Date(), nullable=True))
    op.add_column("ledger_records", sa.Column("unit_code", sa.String(64), nullable=True))
    # Fill the rows already there before the index and the triggers exist (one pass each).
    op.execute(
        "UPDATE person_units SET valid_to = (SELECT min(q.valid_from) FROM person_units q "
        "WHERE q.nip = person_units.nip AND q.valid_from > person_units.valid_from)"
    )
    op.execute(
        "UPDATE ledger_records SET unit_code = (SELECT p.unit_code FROM persons p WHERE p.nip = ledger_records.nip) "
        "WHERE EXISTS (SELECT 1 FROM persons p WHERE p.nip = ledger_records.nip AND p.unit_code IS NOT NULL)"
    )
    op.create_index(
        "ix_ledger_records_unit",
        "ledger_records",
        ["unit_code", "nip", "period_day", "voided", "jp"],
        postgresql_ops=_PATTERN,
    )
    for statement in _POSTGRESQL if postgresql else _SQLITE:
        op.execute(statement)


def downgrade() -> None:  # noqa: D103
    for statement in _POSTGRESQL_DOWN if op.get_bind().dialect.name == "postgresql" else _SQLITE_DOWN:
        op.execute(statement)
    op.drop_index("ix_ledger_records_unit", table_name="ledger_records")
    with op.batch_alter_table("ledger_records") as batch:
        batch.drop_column("unit_code")
    with op.batch_alter_table("person_units") as batch:
        batch.drop_column("valid_to")

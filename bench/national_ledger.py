"""Issue 23 item 2 benchmark: a national JP ledger on PostgreSQL (partitioned by year, migration 0011).

    .venv/bin/python -m bench.national_ledger                                  # 4,000,000 people, 100,000,000 records
    .venv/bin/python -m bench.national_ledger --people 800000 --records 20000000
    .venv/bin/python -m bench.national_ledger --people 200000 --records 5000000 --keep   # keep the database

A throw-away database (``--db``, default ``lmsb_national``) on ``--pg-server`` (127.0.0.1:5432, trust auth) is
migrated to head by lms-bridge itself (``store.open_engine``: the partitioned ledger) and filled directly in
PostgreSQL with ``INSERT ... SELECT`` over ``generate_series`` (no Python in the loop), in two stages so that one
run measures the same queries at two ledger sizes:

- stage 1: ``--first-share`` of the people (default 0.2) with all their records; stage 2: the rest.
- people: 18-digit NIPs scattered over the NIP space (an institution's people are not neighbours in NIP order);
  600 institutions (``--institutions``); institution ``I000`` holds the first ``--big`` people (50,000) in 50
  units of 1,000 (``I000-U00`` ... ``I000-U49``), the others share the rest in 10 units each; a unit code is
  ``<institution>-U<nn>``, so an institution is a unit-code prefix (``report compliance --unit-prefix I000-``).
  2 % of the people changed unit on 2025-07-01 (unit history in ``person_units``). Stage 1 holds all of I000.
- records: ``--records / --people`` per person, spread evenly over 2021-2025 (five yearly partitions), written
  in time order (every person's k-th record, then the (k+1)-th), 2 % voided; ``VACUUM ANALYZE`` after each stage
  of the measured year's partition and the roster (what autovacuum does to a ledger filled by syncs; without it no
  page is all-visible), ``ANALYZE`` of the others (only counted, never read by the measured reports).

After each stage, measured warm (best and median of ``--repeat``):

- ``compliance(year=2025, unit_prefix="I000-")``: one institution of 50,000 people (goal < 1 s) and
  ``compliance(year=2025, unit="I000-U07")``: one unit of 1,000 (goal < 200 ms); their sums are checked against
  a plain SQL aggregate, and the plan (``EXPLAIN ANALYZE``) is printed once;
- ``ledger sync`` (``lms_bridge.ledger.mirror.sync_ledger``) of one day of new JP statements (``--day``, default
  55,000 = 100 M / 5 years / 365 days) and of a quarter of that: the time must follow the day's size, not the
  ledger's. The statements are built with lms-bridge's own builder and served by an in-process client (this
  measures the store side; paging an LRS is BENCHMARKS "Report"'s Ralph figure).

The database is dropped at the end unless ``--keep``. Check ``df -h`` first: 100 M records took 43 GB (8 Dec 2026),
plus ~10 GB while the 2025 partition is rewritten LOGGED. ``--load-only --keep`` loads; ``--reuse`` measures later.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Report, print_machine  # noqa: E402

YEARS = (2021, 2022, 2023, 2024, 2025)
YEAR = 2025
INSTITUTION = "I000-"
UNIT = "I000-U07"
INSTITUTION_GOAL = 1.0
UNIT_GOAL = 0.2
DROP_KEYS = (
    "ALTER TABLE ledger_records DROP CONSTRAINT ledger_records_pkey",
    "DROP INDEX ix_ledger_records_nip_day",
    "DROP INDEX ix_ledger_records_day",
    "DROP INDEX ix_ledger_records_unit",
)
MAKE_KEYS = (
    "ALTER TABLE ledger_records ADD CONSTRAINT ledger_records_pkey PRIMARY KEY (statement_id, period_day)",
    "CREATE INDEX ix_ledger_records_nip_day ON ledger_records (nip, period_day, voided, jp)",
    "CREATE INDEX ix_ledger_records_day ON ledger_records (period_day)",
    "CREATE INDEX ix_ledger_records_unit ON ledger_records "
    "(unit_code varchar_pattern_ops, nip, period_day, voided, jp)",
)
#: The tables whose triggers (migration 0013) keep ``ledger_records.unit_code`` and ``person_units.valid_to``:
#: off during a bulk load, which writes both columns itself (what a restore does), on again after.
TRIGGERED = ("persons", "person_units", "ledger_records")


#: NIP fields in mixed radix: birth day (20 years), appointment year offset, month, sex, sequence.
_RADIX = (7300, 10, 12, 2, 999)
_SPACE = 7300 * 10 * 12 * 2 * 999
_SCATTER = 2654435761  # coprime with _SPACE: i -> i * _SCATTER % _SPACE is a bijection


def _nip_sql(index: str) -> str:
    """A valid 18-digit NIP for person ``index`` (SQL); people of one institution are scattered in NIP order."""
    h = f"(({index})::bigint * {_SCATTER} % {_SPACE})"
    birth = f"(DATE '1965-01-01' + ({h} % 7300)::int)"
    return (
        f"to_char({birth}, 'YYYYMMDD') || (extract(year FROM {birth})::int + 20 + {h} / 7300 % 10)::text"
        f" || lpad((1 + {h} / 73000 % 12)::text, 2, '0') || (1 + {h} / 876000 % 2)::text"
        f" || lpad((1 + {h} / 1752000 % 999)::text, 3, '0')"
    )


def _nip(index: int) -> str:
    """:func:`_nip_sql` in Python."""
    h = index * _SCATTER % _SPACE
    birth = date(1965, 1, 1) + timedelta(days=h % 7300)
    return (
        f"{birth:%Y%m%d}{birth.year + 20 + h // 7300 % 10}{1 + h // 73000 % 12:02d}"
        f"{1 + h // 876000 % 2}{1 + h // 1752000 % 999:03d}"
    )


def _unit_sql(big: int, institutions: int) -> tuple[str, str]:
    """(institution number, unit number) of person ``i`` (SQL expressions)."""
    others = institutions - 1
    inst = f"(CASE WHEN i < {big} THEN 0 ELSE 1 + (i - {big}) % {others} END)"
    unit = f"(CASE WHEN i < {big} THEN i / 1000 ELSE ((i - {big}) / {others}) % 10 END)"
    return inst, unit


def without_indexes(connection: Any, table: str) -> list[str]:
    """Drop the secondary indexes and unique constraints of ``table``; return the DDL that makes them again.

    A bulk insert into a table with B-trees on random keys (NIPs) is a random write per row and index in
    a 128 MB ``shared_buffers``: 4,000,000 persons took ~6 min that way, under load (8 Dec 2026).
    """
    again = []
    constraints = connection.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'u'",
        (table,),
    ).fetchall()
    for name, definition in constraints:
        connection.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        again.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    indexes = connection.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        (table, table),
    ).fetchall()
    for name, definition in indexes:
        connection.execute(f"DROP INDEX {name}")
        again.append(definition)
    return again


def load_people(connection: Any, start: int, stop: int, big: int, institutions: int) -> None:
    """Roster rows and unit history of people ``start <= i < stop`` (their secondary indexes built after)."""
    again = without_indexes(connection, "persons") + without_indexes(connection, "person_units")
    inst, unit = _unit_sql(big, institutions)
    code = f"'I' || lpad({inst}::text, 3, '0') || '-U' || lpad({unit}::text, 2, '0')"
    units = f"(CASE WHEN i < {big} THEN 50 ELSE 10 END)"
    moved = f"'I' || lpad({inst}::text, 3, '0') || '-U' || lpad((({unit} + 1) % {units})::text, 2, '0')"
    connection.execute(
        f"INSERT INTO persons (nip, employee_type, created_at, name, unit_code, unit_name, roster_updated_at) "
        f"SELECT {_nip_sql('i')}, 'PNS', now(), 'Pegawai ' || i, "
        f"CASE WHEN i % 50 = 7 THEN {moved} ELSE {code} END, 'Unit', now() "
        f"FROM generate_series({start}, {stop - 1}) i"
    )
    connection.execute(
        f"INSERT INTO person_units (nip, unit_code, unit_name, valid_from, valid_to) "
        f"SELECT {_nip_sql('i')}, {code}, 'Unit', DATE '2020-01-01', "
        f"CASE WHEN i % 50 = 7 THEN DATE '2025-07-01' END FROM generate_series({start}, {stop - 1}) i "
        f"UNION ALL SELECT {_nip_sql('i')}, {moved}, 'Unit', DATE '2025-07-01', NULL "
        f"FROM generate_series({start}, {stop - 1}) i WHERE i % 50 = 7"
    )
    for statement in again:
        connection.execute(statement)
    # Each person's NIP and roster unit once, for the record loader (not part of lms-bridge's schema).
    connection.execute("CREATE UNLOGGED TABLE IF NOT EXISTS bench_people (i integer PRIMARY KEY, nip text, unit text)")
    connection.execute(
        f"INSERT INTO bench_people SELECT i, {_nip_sql('i')}, CASE WHEN i % 50 = 7 THEN {moved} ELSE {code} END "
        f"FROM generate_series({start}, {stop - 1}) i"
    )


def load_records(url: str, start: int, stop: int, per_person: int, jobs: int, on_progress: Any) -> None:
    """``per_person`` JP records of each person ``start <= i < stop``: record k lies in year 2021 + k % 5.

    One ``INSERT ... SELECT`` per record slot k straight into its year's partition (no routing), ``jobs``
    slots at a time on as many connections; the NIP and the unit tag come from ``bench_people``.
    """
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    jp = "(ARRAY['0.5','1','1','1.5','2','2','3','4'])[1 + (p.i + {k}) % 8]"
    day = "(make_date({year}, 1, 1) + ((p.i * 31 + {k} * 97) % 365))"

    def one(k: int) -> int:
        period_day = day.format(k=k, year=YEARS[k % 5])
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("SET synchronous_commit = off")
            connection.execute(
                f"INSERT INTO ledger_records_y{YEARS[k % 5]} (statement_id, nip, jp, rule_id, rule_version, "
                "rule_code, period, period_day, object_id, evidence_ids, evidence_count, timestamp, stored, voided, "
                "unit_code) "
                f"SELECT md5('r' || p.i || '-{k}')::uuid::text, p.nip, {jp.format(k=k)}, 'moodle-course', 1, 'C3', "
                f"{period_day}::text, {period_day}, 'https://lms.example.go.id/course/' || ((p.i + {k}) % 5000), "
                f"'[\"' || md5('e' || p.i || '-{k}')::uuid::text || '\"]', 1, "
                f"{period_day}::timestamptz + interval '3 hours', {period_day}::timestamptz + interval '4 hours', "
                f"(p.i + {k}) % 50 = 0, p.unit "
                f"FROM bench_people p WHERE p.i >= {start} AND p.i < {stop}"
            )
        return k

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for done, _k in enumerate(pool.map(one, range(per_person)), start=1):
            on_progress(done)


def vacuum(url: str) -> float:
    """``VACUUM ANALYZE`` of what the measurements read (the year's partition, the roster), ``ANALYZE`` of the rest.

    The closed years' partitions are only counted here, never read by a 2025 report: vacuuming them (every
    page of 80 % of the ledger written once more) would add ~10 min to a 100 M load and change no figure.
    """
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"VACUUM ANALYZE ledger_records_y{YEAR}, persons, person_units, bench_people")
        connection.execute("ANALYZE ledger_records")
    return time.perf_counter() - started


def expected(connection: Any, end: date, *, prefix: str | None, unit: str | None) -> tuple[int, Decimal]:
    """People and unvoided JP of 2025 for the people in ``unit`` (or under ``prefix``) on ``end``: plain SQL."""
    match = "u.unit_code = %(unit)s" if unit else "u.unit_code LIKE %(prefix)s"
    row = connection.execute(
        "WITH at AS (SELECT DISTINCT ON (nip) nip, unit_code FROM person_units WHERE valid_from <= %(end)s "
        "ORDER BY nip, valid_from DESC), "
        f"members AS (SELECT u.nip FROM at u WHERE {match}) "
        "SELECT (SELECT count(*) FROM members), "
        "(SELECT COALESCE(sum(jp::numeric), 0) FROM ledger_records r WHERE r.nip IN (SELECT nip FROM members) "
        "AND NOT r.voided AND r.period_day BETWEEN %(start)s AND %(end)s)",
        {"end": end, "start": date(end.year, 1, 1), "unit": unit, "prefix": f"{prefix}%"},
    ).fetchone()
    return int(row[0]), Decimal(row[1])


def _server_cpu(engine: Any) -> float:
    """CPU seconds (user + system) of every server process connected to the bench database (same machine)."""
    from sqlalchemy import text

    with engine.connect() as connection:
        pids = connection.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars()
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def time_compliance(engine: Any, settings: Any, repeat: int, **filters: Any) -> tuple[list[float], list[float], Any]:
    """Wall times and CPU times (this process + the server's) of ``repeat`` reports, and the last report.

    CPU time is stated too because this 2-core machine is shared: under a load average of 10+ the wall
    time measures the queue for a core as much as the report.
    """
    from lms_bridge.ledger.reports import compliance

    times, cpu, report = [], [], None
    for _ in range(repeat):
        server = _server_cpu(engine)
        client = time.process_time()
        started = time.perf_counter()
        report = compliance(engine, settings, YEAR, **filters)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - client + _server_cpu(engine) - server)
    return times, cpu, report


def _queries(engine: Any, **filters: Any) -> dict[str, Any]:
    """The report's query now (``ranges``: migration 0013's index ranges) and before (``probes``: per member)."""
    from lms_bridge.ledger.reports import _members, _ranges_query, _standings_query

    end = date(YEAR, 12, 31)
    unit, prefix = filters.get("unit"), filters.get("unit_prefix")
    members = _members(end, unit, prefix)
    return {
        "ranges": _ranges_query(date(YEAR, 1, 1), end, unit, prefix),
        "probes": _standings_query("postgresql", date(YEAR, 1, 1), end, members=members),
    }


def explain(engine: Any, query: Any) -> list[str]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of a report query as ``compliance()`` sends it."""
    from lms_bridge.ledger.reports import _probe_settings

    compiled = query.compile(dialect=engine.dialect)  # bound parameters, as compliance() sends them
    with engine.connect() as connection:
        _probe_settings(connection)  # as compliance() does
        plan = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}", compiled.params)
        return [row[0] for row in plan]


def time_query(engine: Any, query: Any, repeat: int) -> tuple[list[float], list[float], int]:
    """CPU times (client + server) and wall times of running ``query`` and fetching its rows (no report)."""
    from lms_bridge.ledger.reports import _probe_settings

    cpu, wall, rows = [], [], 0
    for _ in range(repeat):
        server = _server_cpu(engine)
        client = time.process_time()
        started = time.perf_counter()
        with engine.connect() as connection:
            _probe_settings(connection)
            rows = len(connection.execute(query).all())
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - client + _server_cpu(engine) - server)
    return cpu, wall, rows


class _DayClient:
    """An in-process LRS client serving one day of JP statements (``iter_statements`` only)."""

    def __init__(self, bodies: list[dict[str, Any]]) -> None:
        self.bodies = bodies

    def iter_statements(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from self.bodies


def day_statements(settings: Any, count: int, people: int, tag: str, day: date) -> list[dict[str, Any]]:
    """``count`` JP statements of ``day`` for people spread over the whole roster (lms-bridge's own builder)."""
    from lms_bridge.config.statements import statement_settings
    from xapi.statements import JPCreditIn, build_jp_statement

    built = statement_settings(settings)
    stored = datetime(day.year, day.month, day.day, 20, tzinfo=UTC)
    bodies = []
    for n in range(count):
        body = json.loads(
            build_jp_statement(
                built,
                JPCreditIn(
                    nip=_nip((n * 7919) % people),
                    rule_id="moodle-course",
                    rule_version=1,
                    rule_code="C3",
                    period=day.isoformat(),
                    activity_key=f"{tag}-{n}",
                    revision=1,
                    jp=Decimal("2"),
                    evidence_ids=(str(uuid.UUID(int=n + 1)),),
                    occurred_at=datetime(day.year, day.month, day.day, 3, tzinfo=UTC),
                ),
                authority=settings.deployment.identity_authority,
            ).body
        )
        body["stored"] = (stored + timedelta(microseconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        bodies.append(body)
    return bodies


def time_sync(engine: Any, settings: Any, bodies: list[dict[str, Any]]) -> tuple[float, float, int]:
    """Wall time, CPU time (this process + the server's) and records written of one ``sync_ledger``."""
    from lms_bridge.ledger.mirror import sync_ledger

    server = _server_cpu(engine)
    client = time.process_time()
    started = time.perf_counter()
    result = sync_ledger(engine, settings, _DayClient(bodies), full=True)  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    return wall, time.process_time() - client + _server_cpu(engine) - server, result.records


def measure(stage: str, url: str, args: argparse.Namespace, report: Report, people_now: int, records_now: int) -> None:
    import psycopg

    from lms_bridge import store
    from lms_bridge.config.settings import Settings

    settings = Settings()
    engine = store.open_engine(url)
    end = date(YEAR, 12, 31)
    size = f"ledger of {records_now:,} records, {people_now:,} people"
    with psycopg.connect(url) as connection:
        want = {
            "institution": expected(connection, end, prefix=INSTITUTION, unit=None),
            "unit": expected(connection, end, prefix=None, unit=UNIT),
        }
        table_mb = connection.execute("SELECT pg_total_relation_size('ledger_records_y2025') / 1e6").fetchone()[0]
        total_mb = connection.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) / 1e6 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'ledger_records'::regclass"
        ).fetchone()[0]
    report.note(f"{stage}: {size}; ledger {float(total_mb):,.0f} MB, partition 2025 {float(table_mb):,.0f} MB")
    for name, filters, goal in (
        ("institution", {"unit_prefix": INSTITUTION}, INSTITUTION_GOAL),
        ("unit", {"unit": UNIT}, UNIT_GOAL),
    ):
        time_compliance(engine, settings, 1, **filters)  # warm-up: the first read of the index pages
        times, cpu, result = time_compliance(engine, settings, args.repeat, **filters)
        people, jp = want[name]
        got_jp = sum((row.jp for row in result.rows), Decimal(0))
        if len(result.rows) != people or got_jp != jp:
            raise SystemExit(f"{name}: report gives {len(result.rows)} people / {got_jp} JP, SQL {people} / {jp}")
        best = min(times)
        report.figure(
            f"{stage}_compliance_{name}",
            round(best * 1000, 1),
            "ms",
            goal=f"< {goal * 1000:.0f} ms",
            met=best < goal,
            detail=f"{people:,} people, {jp} JP checked; median {statistics.median(times) * 1000:.0f} ms "
            f"of {args.repeat}; CPU (client + server) best {min(cpu) * 1000:.0f} ms, "
            f"median {statistics.median(cpu) * 1000:.0f} ms; load average {os.getloadavg()[0]:.1f}; {size}",
        )
        # The query alone, this code's and the one before migration 0013, side by side in this run.
        queries = _queries(engine, **filters)
        figures = {}
        for label in ("probes", "ranges", "probes", "ranges"):  # interleaved: the same load for both
            cpu_q, wall_q, count = time_query(engine, queries[label], args.repeat)
            figures.setdefault(label, []).extend(cpu_q)
            figures.setdefault(f"{label} wall", []).extend(wall_q)
            figures[f"{label} rows"] = [count]
        report.note(
            f"{stage} {name}: query + fetch, CPU (client + server) best/median: before 0013 (probes per member) "
            f"{min(figures['probes']) * 1000:.0f}/{statistics.median(figures['probes']) * 1000:.0f} ms, "
            f"now (ranges) {min(figures['ranges']) * 1000:.0f}/{statistics.median(figures['ranges']) * 1000:.0f} ms"
            f" ({figures['probes rows'][0]:,} / {figures['ranges rows'][0]:,} rows); wall best "
            f"{min(figures['probes wall']) * 1000:.0f} / {min(figures['ranges wall']) * 1000:.0f} ms; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        if args.explain and stage != "stage1":
            for label in ("ranges", "probes"):
                plan = "\n".join(explain(engine, queries[label]))
                print(f"--- EXPLAIN ANALYZE, {name}, {label} ---\n{plan}", flush=True)
    for count in (args.day // 4, args.day) if args.day else ():
        bodies = day_statements(settings, count, people_now, f"{stage}-{count}", date(YEAR, 12, 30))
        seconds, cpu_s, written = time_sync(engine, settings, bodies)
        if written != count:
            raise SystemExit(f"ledger sync wrote {written} records of {count}")
        report.figure(
            f"{stage}_sync_{count}",
            round(seconds, 2),
            "s",
            detail=f"{count:,} new JP statements of one day ({count / seconds:,.0f}/s); CPU (client + server) "
            f"{cpu_s:.2f} s ({count / cpu_s:,.0f}/s); load average {os.getloadavg()[0]:.1f}; {size}",
        )
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=4_000_000)
    parser.add_argument("--records", type=int, default=100_000_000)
    parser.add_argument("--institutions", type=int, default=600)
    parser.add_argument("--big", type=int, default=50_000, help="people of the measured institution I000")
    parser.add_argument("--first-share", type=float, default=0.2, help="share of the people loaded in stage 1")
    parser.add_argument("--day", type=int, default=55_000, help="new JP statements of one day for ledger sync")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="connections loading record slots side by side")
    parser.add_argument("--load-only", action="store_true", help="load (with --keep), measure later with --reuse")
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db", default="lmsb_national")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--no-explain", dest="explain", action="store_false")
    parser.add_argument("--reuse", action="store_true", help="measure the kept database --db again, no loading")
    args = parser.parse_args()
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    if args.records % args.people or args.records // args.people % len(YEARS):
        raise SystemExit("--records must be --people x a multiple of 5 (records per person, spread over 5 years)")
    first = max(args.big, int(args.people * args.first_share))
    per_person = args.records // args.people
    print_machine()
    report = Report("national_ledger")
    url = make_conninfo(**{**conninfo_to_dict(args.pg_server), "dbname": args.db})
    parts = conninfo_to_dict(url)
    engine_url = f"postgresql://{parts.get('user', 'postgres')}@{parts.get('host', '127.0.0.1')}:"
    engine_url += f"{parts.get('port', '5432')}/{args.db}"
    if args.reuse:  # measure a database kept by an earlier --keep run, as it is
        with psycopg.connect(url) as connection:
            people_now = connection.execute("SELECT count(*) FROM persons").fetchone()[0]
            records_now = connection.execute("SELECT count(*) FROM ledger_records").fetchone()[0]
        measure("reuse", engine_url, args, report, people_now, records_now)
        return report.finish()
    with psycopg.connect(args.pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.db}"')
        admin.execute(f'CREATE DATABASE "{args.db}"')
    try:
        from lms_bridge import store

        store.open_engine(engine_url).dispose()  # migrate to head: the partitioned ledger
        loaded_people = 0
        for stage, stop in (("stage1", first), ("stage2", args.people)):
            if stop <= loaded_people:
                continue
            started = time.perf_counter()
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("SET synchronous_commit = off")
                connection.execute("SET maintenance_work_mem = '1GB'")
                for table in TRIGGERED:
                    connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                load_people(connection, loaded_people, stop, args.big, args.institutions)
                # A bulk load without the ledger's key and indexes, which are then built by one sort each
                # (the same DDL as migrations 0011 and 0013): what a restore does; syncs insert row by row.
                # The yearly partitions are UNLOGGED while loading (no WAL for the rows and the index builds).
                for statement in DROP_KEYS:
                    connection.execute(statement)
                for year in YEARS:
                    connection.execute(f"ALTER TABLE ledger_records_y{year} SET UNLOGGED")

                def progress(k: int, stage: str = stage, started: float = started) -> None:
                    print(
                        f"  {stage}: record slot {k}/{per_person} ({time.perf_counter() - started:.0f} s)", flush=True
                    )

                load_records(url, loaded_people, stop, per_person, args.jobs, progress)
                indexed = time.perf_counter()
                for statement in MAKE_KEYS:
                    connection.execute(statement)
                report.note(f"{stage}: key and indexes built in {time.perf_counter() - indexed:.0f} s")
                logged = time.perf_counter()
                # The year ledger sync writes to is made LOGGED again (a rewrite), so a sync is measured with
                # its WAL; the closed years are only read here and stay UNLOGGED (reads are the same).
                connection.execute(f"ALTER TABLE ledger_records_y{YEAR} SET LOGGED")
                report.note(f"{stage}: partition {YEAR} set LOGGED in {time.perf_counter() - logged:.0f} s")
                for table in TRIGGERED:
                    connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            load_s = time.perf_counter() - started
            vacuum_s = vacuum(url)
            added = (stop - loaded_people) * per_person
            report.note(
                f"{stage}: loaded {stop - loaded_people:,} people and {added:,} records in {load_s:.0f} s "
                f"({added / load_s:,.0f} records/s), VACUUM ANALYZE {vacuum_s:.0f} s"
            )
            loaded_people = stop
            if args.load_only:
                continue
            measure(stage, engine_url, args, report, loaded_people, loaded_people * per_person)
    finally:
        if not args.keep:
            with psycopg.connect(args.pg_server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
            report.note(f"dropped database {args.db}")
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())

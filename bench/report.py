"""Issue 7 benchmark: the compliance report over a big ledger (SQLite and PostgreSQL) against paging Ralph.

    .venv/bin/python -m bench.report                      # ~10 min: 100,000 people, 2,000,000 records
    .venv/bin/python -m bench.report --engines sqlite --skip-ralph --people 10000 --records 200000
    .venv/bin/python -m bench.report --profile            # also a cProfile profile of one report

The ledger is filled directly (bulk ``executemany`` on SQLite, ``COPY`` on PostgreSQL) with deterministic
data (``--seed``): ``--people`` persons on the roster over ``--units`` units, ~20 % of them with a unit
change during the year (unit history in ``person_units``), ``--records`` non-voided JP records spread over
the year (about 1 % of them from NIPs not on the roster) plus ``--void-share`` voided ones. Then
``lms_bridge.ledger.reports.compliance(engine, settings, year)`` runs ``--repeat`` times for the whole year in a
fresh subprocess per engine (so its peak RSS is the report's alone, not the loader's); the result is
checked against totals computed while generating, and the report query's plan is checked to read the
ledger through the covering index ``ix_ledger_records_nip_day``. PostgreSQL: a throw-away database on
``--pg-server`` (default 127.0.0.1:5432, trust auth), dropped at the end; it is vacuumed after the bulk
load (``VACUUM ANALYZE``, what autovacuum does to a ledger filled by syncs), else no page is marked
all-visible yet and PostgreSQL cannot answer from the index alone (``--no-vacuum`` measures that state).

The Ralph comparison: paging millions of statements out of Ralph is infeasible here, so ``--ralph-sample``
JP statements are posted (batches of 1,000) into a fresh Ralph 5.1.0 and paged out with
``LRSClient.iter_statements`` (limit 100); the time is extrapolated linearly to ``--records``. Linear is
optimistic: Ralph's fs backend slows as its store grows.

Figures print as ``FIGURE`` lines; the exit code is 1 when the report misses the goal on either engine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Report, print_machine, scratch  # noqa: E402

YEAR = 2026
GOAL_SECONDS = 2.0
JP_VALUES = ("0.5", "1", "1", "1", "1.5", "2", "2", "2", "3", "4", "8")
RULES = (("cop", "C10"), ("webinar", "C2"), ("training-completed", "B4"), ("self-study", "C7"))
CHUNK = 50_000


# ------------------------------------------------------------------------------------------ data


def _nip(index: int) -> str:
    """An 18-digit NIP: birth date, TMT (year+month), sex, sequence."""
    birth = date(1965, 1, 1) + timedelta(days=index // 100)
    return f"{birth:%Y%m%d}{2000 + index % 24:04d}{1 + index % 12:02d}{1 + index % 2}{1 + index % 100:03d}"


def _sid(seed: int, index: int) -> str:
    return str(uuid.UUID(int=(seed << 96) | index, version=4))


class Data:
    """Deterministic roster and ledger rows, with the totals the report must give."""

    def __init__(self, people: int, units: int, records: int, void_share: float, seed: int) -> None:
        self.seed = seed
        rng = random.Random(seed)
        self.now = datetime(YEAR, 12, 31, 12, tzinfo=UTC)
        self.nips = sorted({_nip(i) for i in range(people)})
        if len(self.nips) != people:
            raise SystemExit("NIP generator collided: change _nip")
        self.outsiders = [f"1999{i:014d}" for i in range(max(1, people // 100))]
        self.units = [(f"U{u:04d}", f"Unit Kerja {u}") for u in range(units)]
        self.person_unit: dict[str, int] = {}
        self.history: list[tuple[str, str, str, date]] = []
        for nip in self.nips:
            first = rng.randrange(units)
            self.history.append((nip, *self.units[first], date(2015 + rng.randrange(10), 1 + rng.randrange(12), 1)))
            final = first
            if rng.random() < 0.2:
                final = rng.randrange(units)
                self.history.append((nip, *self.units[final], date(YEAR, 1 + rng.randrange(12), 1 + rng.randrange(28))))
            self.person_unit[nip] = final
        # Records per NIP: roster people and ~1 % of the records from outsiders, exactly ``records`` in all.
        owners = self.nips + self.outsiders
        weights = [2 * records // (people * 1.0) if i < people else 0 for i in range(len(owners))]
        counts = [rng.randint(0, int(w)) for w in weights]
        outsider_total = records // 100
        for k in range(outsider_total):
            counts[people + k % len(self.outsiders)] += 1
        diff = records - sum(counts)
        while diff:
            i = rng.randrange(people)
            if diff > 0:
                counts[i] += 1
                diff -= 1
            elif counts[i] > 0:
                counts[i] -= 1
                diff += 1
        self.owners, self.counts = owners, counts
        self.records = records
        self.voids = int(records * void_share)
        self.expected_jp = Decimal(0)
        self.expected_totals: dict[str, Decimal] = {}

    def persons(self) -> list[tuple]:
        rng = random.Random(self.seed + 1)
        rows = []
        for nip in self.nips:
            code, name = self.units[self.person_unit[nip]]
            rows.append(
                (
                    nip,
                    "PPPK" if rng.random() < 0.1 else "PNS",
                    self.now,
                    f"Pegawai {nip[-6:]}",
                    code,
                    name,
                    "Analis",
                    self.now,
                )
            )
        return rows

    def ledger_chunks(self):
        """Yield lists of ledger rows (non-voided ones, then voided ones), ``CHUNK`` at a time."""
        rng = random.Random(self.seed + 2)
        start = date(YEAR, 1, 1)
        index = 0
        chunk: list[tuple] = []
        totals: dict[str, Decimal] = {}
        void_every = self.records // self.voids if self.voids else 0
        for nip, count in zip(self.owners, self.counts, strict=True):
            for _ in range(count):
                chunk.append(self._row(rng, index, nip, start, voided=False, totals=totals))
                index += 1
                if void_every and index % void_every == 0:
                    chunk.append(self._row(rng, index + 10**9, nip, start, voided=True, totals=totals))
                if len(chunk) >= CHUNK:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk
        self.expected_totals = totals
        self.expected_jp = sum(totals.values(), Decimal(0))

    def _row(
        self, rng: random.Random, index: int, nip: str, start: date, *, voided: bool, totals: dict[str, Decimal]
    ) -> tuple:
        day = start + timedelta(days=rng.randrange(365))
        jp = rng.choice(JP_VALUES)
        rule, code = RULES[rng.randrange(len(RULES))]
        if not voided:
            totals[nip] = totals.get(nip, Decimal(0)) + Decimal(jp)
        moment = datetime(day.year, day.month, day.day, 3, tzinfo=UTC)
        sid = _sid(self.seed, index)
        return (
            sid,
            nip,
            jp,
            rule,
            1,
            code,
            day.isoformat(),
            day,
            f"https://lms-bridge.example.go.id/jp/{rule}/{day.isoformat()}/day",
            json.dumps([_sid(self.seed + 7, index)]),
            1,
            moment,
            moment,
            voided,
        )


LEDGER_COLUMNS = (
    "statement_id",
    "nip",
    "jp",
    "rule_id",
    "rule_version",
    "rule_code",
    "period",
    "period_day",
    "object_id",
    "evidence_ids",
    "evidence_count",
    "timestamp",
    "stored",
    "voided",
)
PERSON_COLUMNS = (
    "nip",
    "employee_type",
    "created_at",
    "name",
    "unit_code",
    "unit_name",
    "position",
    "roster_updated_at",
)
UNIT_COLUMNS = ("nip", "unit_code", "unit_name", "valid_from")


def _sqlite_value(value: object) -> object:
    # What SQLAlchemy's SQLite types store: DATETIME as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC), DATE as ISO text.
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def load(engine, data: Data, *, vacuum: bool = True) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Bulk-insert the roster and the ledger; returns (seconds, ledger rows)."""
    started = time.perf_counter()
    raw = engine.raw_connection()
    rows = 0
    try:
        dbapi = raw.driver_connection
        tables = (("persons", PERSON_COLUMNS, data.persons()), ("person_units", UNIT_COLUMNS, data.history))
        if engine.dialect.name == "sqlite":
            cur = dbapi.cursor()
            cur.execute("PRAGMA synchronous=OFF")

            def put(table: str, columns: tuple[str, ...], batch: list[tuple]) -> None:
                marks = ",".join("?" * len(columns))
                cur.executemany(
                    f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})",  # noqa: S608
                    [tuple(_sqlite_value(v) for v in row) for row in batch],
                )
        else:
            cur = dbapi.cursor()

            def put(table: str, columns: tuple[str, ...], batch: list[tuple]) -> None:
                with cur.copy(f"COPY {table} ({','.join(columns)}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)

        for table, columns, batch in tables:
            put(table, columns, batch)
        for batch in data.ledger_chunks():
            put("ledger_records", LEDGER_COLUMNS, batch)
            rows += len(batch)
        dbapi.commit()
        if engine.dialect.name == "sqlite":
            cur.execute("ANALYZE")
            dbapi.commit()
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            # VACUUM cannot run in a transaction. It sets the visibility map autovacuum would set
            # on a ledger filled by syncs over time, which index-only scans need.
            dbapi.autocommit = True
            cur.execute("VACUUM ANALYZE" if vacuum else "ANALYZE")
    finally:
        raw.close()
    return time.perf_counter() - started, rows


# ------------------------------------------------------------------------------------------ timing


def _peak_rss_mb() -> float:
    """This process's peak RSS in MB.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` keeps the parent's peak across fork + exec, so in
    this subprocess it would report the loader's ~190-210 MB however little the report uses.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(url: str, repeat: int, expect: str, profile: bool) -> None:
    """Run in a fresh process: time ``compliance`` ``repeat`` times, print one JSON line."""
    from lms_bridge.config.settings import Settings
    from lms_bridge.ledger.reports import compliance
    from lms_bridge.store.db import make_engine

    engine = make_engine(url)
    settings = Settings()
    with engine.connect():
        pass
    base_rss = _peak_rss_mb()
    times = []
    report = None
    for _ in range(repeat):
        report = None  # let the previous result go before the next run (peak RSS = one report)
        started = time.perf_counter()
        report = compliance(engine, settings, YEAR)
        times.append(time.perf_counter() - started)
    assert report is not None
    peak = _peak_rss_mb()
    want = json.loads(expect)
    total = sum((r.jp for r in report.rows), Decimal(0))
    check = {
        "rows": len(report.rows),
        "units": len(report.units),
        "met": sum(1 for r in report.rows if r.met),
        "jp": str(total),
        "ok": len(report.rows) == want["rows"] and total == Decimal(want["jp"]),
    }
    # The suggested fix's floor: the per-person sum done by the database (GROUP BY), exact to 0.001 JP.
    from sqlalchemy import text

    if engine.dialect.name == "sqlite":  # +period_day: the covering index, as the report reads it
        aggregate = (
            "SELECT nip, SUM(CAST(ROUND(jp * 1000) AS INTEGER)) FROM ledger_records "
            "WHERE voided = 0 AND +period_day >= :start AND +period_day <= :end GROUP BY nip"
        )
    else:
        aggregate = (
            "SELECT nip, SUM(jp::numeric) FROM ledger_records "
            "WHERE NOT voided AND period_day >= :start AND period_day <= :end GROUP BY nip"
        )
    sql_times = []
    for _ in range(repeat):
        started = time.perf_counter()
        with engine.connect() as connection:
            sums = connection.execute(text(aggregate), {"start": date(YEAR, 1, 1), "end": date(YEAR, 12, 31)}).all()
        sql_times.append(time.perf_counter() - started)
    plan = _plan(engine)
    profile_text = ""
    if profile:
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        compliance(engine, settings, YEAR)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        profile_text = out.getvalue()
    engine.dispose()
    print(
        json.dumps(
            {
                "times": times,
                "sql_times": sql_times,
                "sql_rows": len(sums),
                "base_rss_mb": base_rss,
                "peak_rss_mb": peak,
                "check": check,
                "plan": plan,
                "profile": profile_text,
            }
        )
    )


def _plan(engine) -> list[str]:  # type: ignore[no-untyped-def]
    """The plan of the report's query (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL)."""
    from lms_bridge.ledger.reports import _standings_query

    query = _standings_query(engine.dialect.name, date(YEAR, 1, 1), date(YEAR, 12, 31))
    sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(prefix + sql).all()
    return [str(row[-1]) for row in rows]


def time_report(url: str, repeat: int, expect: dict, profile: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.report",
            "_child",
            url,
            str(repeat),
            json.dumps(expect),
            "1" if profile else "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"timing subprocess failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_engine(name: str, url: str, data: Data, args: argparse.Namespace, report: Report) -> None:
    from lms_bridge.store.db import open_engine

    engine = open_engine(url)
    try:
        seconds, rows = load(engine, data, vacuum=not args.no_vacuum)
    finally:
        engine.dispose()
    report.note(
        f"{name}: loaded {len(data.nips):,} persons, {len(data.history):,} unit rows, {rows:,} ledger rows "
        f"in {seconds:.1f} s"
    )
    expect = {"rows": len(data.nips) + len(data.outsiders), "jp": str(data.expected_jp)}
    result = time_report(url, args.repeat, expect, args.profile)
    times = result["times"]
    best, median = min(times), statistics.median(times)
    check = result["check"]
    report.figure(
        f"report_{name}_best",
        best,
        "s",
        goal=f"< {GOAL_SECONDS:g} s",
        met=best < GOAL_SECONDS,
        detail=f"compliance({YEAR}), {args.records:,} records + {data.voids:,} voided, {len(data.nips):,} people",
    )
    report.figure(
        f"report_{name}_median",
        median,
        "s",
        goal=f"< {GOAL_SECONDS:g} s",
        met=median < GOAL_SECONDS,
        detail="runs " + ", ".join(f"{t:.2f}" for t in times),
    )
    report.figure(
        f"report_{name}_peak_rss",
        round(result["peak_rss_mb"], 1),
        "MB",
        detail=f"process after imports and connect {result['base_rss_mb']:.0f} MB",
    )
    report.figure(
        f"report_{name}_check",
        "ok" if check["ok"] else "WRONG",
        goal="rows and JP total as generated",
        met=check["ok"],
        detail=f"{check['rows']:,} rows, {check['units']} units, {check['met']:,} met, JP {check['jp']}",
    )
    report.figure(
        f"report_{name}_sql_aggregate_best",
        min(result["sql_times"]),
        "s",
        detail=f"floor of the fix: GROUP BY nip SUM in SQL alone, {result['sql_rows']:,} sums, runs "
        + ", ".join(f"{t:.2f}" for t in result["sql_times"]),
    )
    plan = result["plan"]
    ledger = [line for line in plan if "ledger_records" in line and ("scan" in line.lower() or "SEARCH" in line)]
    covered = bool(ledger) and all("ix_ledger_records_nip_day" in line for line in ledger)
    # Without VACUUM no page is all-visible yet and PostgreSQL rightly prefers a sequential scan.
    expected = not (name == "postgresql" and args.no_vacuum)
    report.figure(
        f"report_{name}_plan",
        "covering index" if covered else "OTHER",
        met=covered,
        goal="the ledger read through ix_ledger_records_nip_day only" if expected else None,
        detail=" | ".join(line.strip() for line in ledger),
    )
    if result["profile"]:
        print(f"--- cProfile of one compliance() on {name} ---\n{result['profile']}", flush=True)


def bench_ralph(args: argparse.Namespace, report: Report) -> None:
    from lms_bridge.config.settings import Settings
    from lms_bridge.config.statements import statement_settings
    from lms_bridge.demo.ralph import RalphLRS
    from xapi.lrs_client import LRSClient
    from xapi.statements import JPCreditIn, build_jp_statement

    settings = statement_settings(Settings())
    rng = random.Random(args.seed + 3)
    nips = [_nip(i) for i in range(min(args.people, args.ralph_sample))]
    bodies = []
    for i in range(args.ralph_sample):
        day = date(YEAR, 1, 1) + timedelta(days=rng.randrange(365))
        bodies.append(
            build_jp_statement(
                settings,
                JPCreditIn(
                    nip=nips[i % len(nips)],
                    rule_id="cop",
                    rule_version=1,
                    rule_code="C10",
                    period=day.isoformat(),
                    activity_key=f"day-{i}",
                    revision=1,
                    jp=Decimal(rng.choice(JP_VALUES)),
                    evidence_ids=(),
                    occurred_at=datetime(day.year, day.month, day.day, 3, tzinfo=UTC),
                ),
                authority="https://siasn.bkn.go.id",
            ).body
        )
    with RalphLRS() as lrs, LRSClient(lrs.url, lrs.username, lrs.password, timeout=120) as client:
        started = time.perf_counter()
        for k in range(0, len(bodies), 1000):
            client.post_statements(bodies[k : k + 1000])
        post_s = time.perf_counter() - started
        started = time.perf_counter()
        paged = sum(1 for _ in client.iter_statements({"limit": 100}))
        page_s = time.perf_counter() - started
    rate = paged / page_s if page_s else 0.0
    report.note(
        f"ralph: posted {len(bodies):,} JP statements in batches of 1,000 in {post_s:.1f} s "
        f"({len(bodies) / post_s:,.0f}/s)"
    )
    report.figure("ralph_page_sample", page_s, "s", detail=f"{paged:,} statements paged (limit 100), {rate:,.0f}/s")
    report.figure(
        "ralph_page_extrapolated",
        round(args.records / rate) if rate else 0,
        "s",
        detail=f"linear extrapolation to {args.records:,} statements ({args.records / rate / 60:,.0f} min); "
        "optimistic: Ralph's fs backend slows as its store grows",
    )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _child(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--void-share", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--ralph-sample", type=int, default=20_000)
    parser.add_argument("--skip-ralph", action="store_true")
    parser.add_argument("--profile", action="store_true", help="print a cProfile profile of one report")
    parser.add_argument(
        "--no-vacuum", action="store_true", help="PostgreSQL: ANALYZE only after the bulk load (no visibility map yet)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    print_machine()
    report = Report("bench_report")
    started = time.perf_counter()
    data = Data(args.people, args.units, args.records, args.void_share, args.seed)
    report.note(f"generated roster in {time.perf_counter() - started:.1f} s (seed {args.seed})")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if "sqlite" in engines:
        folder = scratch("report")
        bench_engine("sqlite", f"sqlite:///{folder / 'state.db'}", data, args, report)
    if "postgresql" in engines:
        import psycopg

        name = f"lmsb_bench_report_{os.getpid()}"
        with psycopg.connect(args.pg_server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            server = args.pg_server.rsplit("/", 1)[0]
            bench_engine("postgresql", f"{server}/{name}", data, args, report)
        finally:
            with psycopg.connect(args.pg_server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if not args.skip_ralph:
        bench_ralph(args, report)
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())

"""Issue 23 item 1: ``jp compute`` in bounded memory, 10,000 and 100,000 people (SQLite, and PostgreSQL).

    .venv/bin/python -m bench.jp                                  # 10,000 / 500,000 and 100,000 / 5,000,000
    .venv/bin/python -m bench.jp --sizes 2000:100000 --compare /work/main   # also the old engine, record by record
    .venv/bin/python -m bench.jp --engines sqlite,postgresql
    .venv/bin/python -m bench.jp --keep-dir /tmp/jpkeep            # SQLite: load once, later runs copy the store

For each size (``people:activities``) a state store is migrated by ``open_engine`` and filled directly
(SQLite ``executemany``, PostgreSQL ``COPY``) by a separate process, so the benchmark's own process stays
small: persons, one Moodle account link each and one chat pseudonym link each, and the evidence of 2026
(forum posts, module and course completions on the demo site ``demo-lms`` whose program JP is shipped,
WhatsApp messages, Zoom attendances with minutes; ~2 % from actors nobody linked), each person active
on 20 days of the year (so ~50 activities a person make ~20 JP records). Then ``lms-bridge jp
compute --year 2026`` runs twice as a subprocess: the first run queues every record, the second finds them
all unchanged. Peak RSS and CPU come from ``wait4`` of that process (``ru_maxrss``, the kernel's VmHWM); VmHWM
and bytes read are also sampled from ``/proc`` while it runs, and the load average is given beside each run.

Goals: peak RSS of the big size at most 1.5x the small one's; at least 50,000 activities/s end to end.
``--compare DIR`` runs the code in DIR (e.g. ``/work/main``, the in-memory engine) on a copy of the first
size's store and checks that both queue the same records, statements (body bytes), voids and held credits.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Deployment, Report, make_deployment, print_machine, scratch  # noqa: E402

YEAR = 2026
RSS_RATIO_GOAL = 1.5
RATE_GOAL = 50_000
CHUNK = 50_000
ACTIVE_DAYS = 20
SITE = "demo-lms"
NOW = datetime(YEAR, 12, 1, tzinfo=UTC)

EVIDENCE_COLUMNS = (
    "statement_id",
    "source",
    "site_id",
    "local_actor",
    "nip",
    "kind",
    "occurred_at",
    "duration_seconds",
    "object_key",
    "community",
    "facts",
)


def _nip(index: int) -> str:
    birth = date(1965, 1, 1) + timedelta(days=index // 100)
    return f"{birth:%Y%m%d}{2000 + index % 24:04d}{1 + index % 12:02d}{1 + index % 2}{index % 1000:03d}"


def _evidence(people: int, activities: int, seed: int):  # type: ignore[no-untyped-def]
    """Yield evidence rows (tuples in ``EVIDENCE_COLUMNS`` order), ``activities`` in all, in time-ish order.

    The values are what the store holds (text times as SQLAlchemy's SQLite ``DATETIME`` writes them,
    JSON facts, uuid text), built from tables computed once: 5,000,000 rows in about a minute. The random
    draws are the same, in the same order, as the first version's (which built datetimes, UUIDs
    and ``json.dumps`` per row), so the data is the same as the figures before it.
    """
    rng = random.Random(seed)
    below = rng._randbelow  # type: ignore[attr-defined]  # what ``randrange(n)`` calls for n > 0, without its argument checks
    draw = rng.random
    first = date(YEAR, 1, 1)
    days = (date(YEAR, 11, 30) - first).days
    day_text = [f"{first + timedelta(days=d):%Y-%m-%d}" for d in range(days)]
    # The time of day: 01:00 UTC plus up to 10 hours.
    clock = [f"{(3600 + s) // 3600:02d}:{(3600 + s) // 60 % 60:02d}:{s % 60:02d}.000000" for s in range(10 * 3600)]
    module_facts = [json.dumps({"course_shortname": f"PT-{c:02d}", "course_category": "2"}) for c in range(40)]
    latsar = json.dumps({"course_shortname": "DIKLAT-L-LATSAR"})
    category = [json.dumps({"course_shortname": f"K-{k}", "course_category": "3"}) for k in range(7)]
    zoom_facts = json.dumps({"session_seconds": 5400})
    prefix = f"{seed:08x}-0000-4000-8000-"  # str(UUID(int=(seed << 96) | index, version=4)) for index < 2**48
    for index in range(activities):
        person = below(people)
        # Each person is active on ACTIVE_DAYS days of the year (several activities a day, as chats are).
        day = (person * 7919 + below(ACTIVE_DAYS) * 104729) % days
        moment = f"{day_text[day]} {clock[below(10 * 3600)]}"
        roll = draw()
        unlinked = draw() < 0.02
        duration = None
        community = None
        facts = "{}"
        if roll < 0.5:  # forum activity on the Moodle site
            source, site, actor = "moodle", SITE, f"u{person}" if not unlinked else f"x{person}"
            kind = "discussion_created" if roll < 0.05 else ("post_created" if roll < 0.3 else "reply_created")
            obj = f"forum_post:{index}"
        elif roll < 0.75:  # modules of courses without program JP (e-learning)
            source, site, actor = "moodle", SITE, f"u{person}" if not unlinked else f"x{person}"
            kind, course = "module_completed", below(40)
            obj = f"module:{course}-{below(12)}"
            facts = module_facts[course]
        elif roll < 0.77:  # course completions: LATSAR (40 JP), a category course, an unknown site's course
            source, site, actor = "moodle", SITE, f"u{person}" if not unlinked else f"x{person}"
            kind = "course_completed"
            choice = below(3)
            obj = f"course:{choice}-{person % 7}"
            facts = (latsar, category[person % 7], module_facts[person % 40])[choice]
        elif roll < 0.95:  # WhatsApp messages in a community
            source, site, actor = "whatsapp", "cop-wa", f"p{person}" if not unlinked else f"q{person}"
            kind = "message_posted" if roll < 0.9 else "message_replied"
            obj = f"message:{index}"
            community = "community:cop-1"
        else:  # Zoom attendance with minutes
            source, site, actor = "zoom", "zoom-1", f"p{person}" if not unlinked else f"q{person}"
            kind = "meeting_attended"
            obj = f"meeting:{below(500)}"
            duration = 60 * (10 + below(110))
            facts = zoom_facts
        yield (f"{prefix}{index:012x}", source, site, actor, None, kind, moment, duration, obj, community, facts)


def _value(value: object) -> object:
    if isinstance(value, datetime):  # what SQLAlchemy's SQLite DATETIME stores
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _load_sqlite(dbapi: sqlite3.Connection, people: int, activities: int, seed: int) -> None:
    """Fill a migrated SQLite store in one transaction, the evidence's secondary indexes built after.

    For the load only (this connection, or a fresh file): no rollback journal, no fsync, a large page
    cache and in-memory sorts; the store is switched back to WAL at the end. Inserting 5,000,000 rows
    into six random-order indexes was what made the first version's load take most of an hour.
    """
    cur = dbapi.cursor()
    cur.execute("PRAGMA journal_mode=OFF")
    cur.execute("PRAGMA synchronous=OFF")
    cur.execute("PRAGMA foreign_keys=OFF")
    cur.execute("PRAGMA cache_size=-1048576")  # 1 GiB, this connection only
    cur.execute("PRAGMA temp_store=MEMORY")
    indexes = cur.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'evidence' AND sql IS NOT NULL"
    ).fetchall()
    cur.execute("BEGIN")
    for name, _sql in indexes:
        cur.execute(f'DROP INDEX "{name}"')
    now = _value(datetime(YEAR, 1, 1, tzinfo=UTC))
    cur.executemany(
        "INSERT INTO persons (id, nip, employee_type, created_at, name, unit_code, unit_name) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((i + 1, _nip(i), "PNS", now, f"Pegawai {i}", f"U{i % 200:03d}", f"Unit {i % 200}") for i in range(people)),
    )
    links = "INSERT INTO identity_links (id, source, site_id, local_id, person_id, created_at, updated_at) "
    links += "VALUES (?, ?, ?, ?, ?, ?, ?)"
    cur.executemany(links, ((2 * i + 1, "moodle", SITE, f"u{i}", i + 1, now, now) for i in range(people)))
    cur.executemany(links, ((2 * i + 2, "pseudonym", "", f"p{i}", i + 1, now, now) for i in range(people)))
    marks = ",".join("?" * len(EVIDENCE_COLUMNS))
    cur.executemany(
        f"INSERT INTO evidence ({','.join(EVIDENCE_COLUMNS)}) VALUES ({marks})",  # noqa: S608
        _evidence(people, activities, seed),
    )
    for _name, sql in indexes:
        cur.execute(sql)
    cur.execute("COMMIT")
    cur.execute("ANALYZE")
    cur.execute("PRAGMA journal_mode=WAL")


def load(url: str, people: int, activities: int, seed: int) -> None:
    """Migrate the store at ``url`` and fill it (run in its own process)."""
    from lms_bridge.store.db import open_engine

    engine = open_engine(url)
    if engine.dialect.name == "sqlite":
        engine.dispose()
        dbapi = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            _load_sqlite(dbapi, people, activities, seed)
        finally:
            dbapi.close()
        return
    raw = engine.raw_connection()
    try:
        pg: Any = raw.driver_connection
        cur = pg.cursor()
        now = datetime(YEAR, 1, 1, tzinfo=UTC)
        persons = [
            (i + 1, _nip(i), "PNS", now, f"Pegawai {i}", f"U{i % 200:03d}", f"Unit {i % 200}") for i in range(people)
        ]
        links = [(2 * i + 1, "moodle", SITE, f"u{i}", i + 1, now, now) for i in range(people)]
        links += [(2 * i + 2, "pseudonym", "", f"p{i}", i + 1, now, now) for i in range(people)]
        person_columns = ("id", "nip", "employee_type", "created_at", "name", "unit_code", "unit_name")
        link_columns = ("id", "source", "site_id", "local_id", "person_id", "created_at", "updated_at")

        def put(table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
            with cur.copy(f"COPY {table} ({','.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

        put("persons", person_columns, persons)
        put("identity_links", link_columns, links)
        at = EVIDENCE_COLUMNS.index("occurred_at")
        chunk: list[tuple] = []
        for row in _evidence(people, activities, seed):
            chunk.append((*row[:at], f"{row[at]}+00", *row[at + 1 :]))  # the text is UTC
            if len(chunk) >= CHUNK:
                put("evidence", EVIDENCE_COLUMNS, chunk)
                chunk = []
        put("evidence", EVIDENCE_COLUMNS, chunk)
        cur.execute("SELECT setval('persons_id_seq', %s)", (people + 1,))
        cur.execute("SELECT setval('identity_links_id_seq', %s)", (2 * people + 1,))
        pg.commit()
        pg.autocommit = True
        cur.execute("VACUUM ANALYZE")
    finally:
        raw.close()
        engine.dispose()


def _load_in_child(url: str, people: int, activities: int, seed: int) -> tuple[float, float]:
    """Load in a child process: (wall seconds, CPU seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.jp", "_load", url, str(people), str(activities), str(seed)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"loading {people:,} people / {activities:,} activities failed")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def _deployment(folder: Path, url: str) -> Deployment:
    deployment = make_deployment(folder)
    text = deployment.config.read_text().replace(f'url = "sqlite:///{folder / "state.db"}"', f'url = "{url}"', 1)
    deployment.config.write_text(text)
    return deployment


@dataclass
class Run:
    """One ``lms-bridge jp compute`` process, measured from outside."""

    wall: float
    cpu: float
    #: ``ru_maxrss`` from ``wait4``: the kernel's high-water mark of the process (what VmHWM shows).
    max_rss_mb: float
    #: The last VmHWM read from ``/proc/PID/status`` while it ran (sampled every 0.5 s; a lower bound).
    vm_hwm_mb: float
    read_gb: float
    load: tuple[float, float]
    stdout: str

    def detail(self) -> str:
        return (
            f"wall {self.wall:.1f} s, CPU {self.cpu:.1f} s, peak RSS {self.max_rss_mb:.0f} MB "
            f"(VmHWM seen {self.vm_hwm_mb:.0f} MB), read {self.read_gb:.2f} GB, "
            f"load average {self.load[0]:.1f} -> {self.load[1]:.1f}"
        )


def _proc_field(pid: int, name: str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _compute(deployment: Deployment, code: Path = ROOT) -> Run:
    """``lms-bridge jp compute`` as a subprocess: CPU and peak RSS from ``wait4``, VmHWM and reads from /proc."""
    env = {**deployment.env, "PYTHONPATH": str(code)}
    argv = [sys.executable, "-m", "lms_bridge.cli", "--config", str(deployment.config), "jp", "compute"]
    argv += ["--year", str(YEAR)]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        # cwd=code: with ``python -m`` the working directory comes before PYTHONPATH, so without it
        # --compare ran this tree's code twice.
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=code)
        hwm_kib = read = 0
        while True:  # WNOWAIT: look whether it exited without reaping it (wait4 below needs that)
            hwm_kib = max(hwm_kib, _proc_field(process.pid, "status", "VmHWM:"))
            read = max(read, _proc_field(process.pid, "io", "rchar:"))
            if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
            time.sleep(0.5)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"jp compute failed:\n{err.read().decode('utf-8', 'replace')[-3000:]}")
        return Run(
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
            hwm_kib / 1024,
            read / 1e9,
            (load_before, os.getloadavg()[0]),
            out.read().decode("utf-8", "replace"),
        )


def _snapshot(db: Path) -> dict[str, list]:
    """What a run queued, without row ids and clock times: records, outbox bodies, held credits."""
    with sqlite3.connect(db) as conn:
        return {
            "records": sorted(
                conn.execute(
                    "SELECT nip, rule_id, rule_version, period, activity_key, revision, jp, evidence_hash, "
                    "statement_id, occurred_at, status FROM jp_records"
                ).fetchall()
            ),
            "outbox": sorted(conn.execute("SELECT statement_id, body, body_sha256, status FROM outbox").fetchall()),
            "pending": sorted(
                conn.execute(
                    "SELECT nip, rule_id, period, period_day, activity_key, site_id, course, evidence_ids, "
                    "evidence_count FROM jp_pending"
                ).fetchall()
            ),
        }


def _load_store(url: str, folder: Path, people: int, activities: int, args, report: Report) -> None:  # type: ignore[no-untyped-def]
    """Fill the store at ``url``; with ``--keep-dir`` (SQLite) a loaded store is kept there and copied."""
    name = f"loaded-{people}-{activities}-{args.seed}.db"
    kept = args.keep_dir / name if args.keep_dir and url.startswith("sqlite") else None
    if kept is not None and kept.exists():
        shutil.copy(kept, folder / "state.db")
        report.note(f"{people:,} people, {activities:,} activities: copied {kept}")
        return
    wall, cpu = _load_in_child(f"sqlite:///{kept}" if kept else url, people, activities, args.seed)
    report.note(
        f"loaded {people:,} people, {activities:,} activities in {wall:.1f} s ({cpu:.1f} s CPU, "
        f"load average {os.getloadavg()[0]:.1f})"
    )
    if kept is not None:
        shutil.copy(kept, folder / "state.db")


def bench_size(name: str, url: str, folder: Path, people: int, activities: int, args, report: Report) -> dict:  # type: ignore[no-untyped-def]
    _load_store(url, folder, people, activities, args, report)
    deployment = _deployment(folder, url)
    compare_db = None
    if args.compare and url.startswith("sqlite") and not args.compared:
        compare_db = folder / "old.db"
        shutil.copy(deployment.db, compare_db)
    first = _compute(deployment)
    report.note(f"{name} first run: {first.stdout.strip()} | {first.detail()}")
    second = _compute(deployment)
    report.note(f"{name} second run: {second.stdout.strip()} | {second.detail()}")
    for label, run in (("first", first), ("second", second)):
        report.figure(
            f"jp_{name}_{label}_rate",
            round(activities / run.wall),
            "activities/s",
            goal=f">= {RATE_GOAL:,}",
            met=activities / run.wall >= RATE_GOAL,
            detail=f"{activities / run.cpu:,.0f} activities per CPU second; {run.detail()}",
        )
    if compare_db is not None:
        args.compared = True
        old = Deployment(folder, deployment.config, deployment.env)
        text = deployment.config.read_text().replace(str(deployment.db), str(compare_db))
        old_config = folder / "old.toml"
        old_config.write_text(text)
        old = Deployment(folder, old_config, deployment.env)
        old_run = _compute(old, Path(args.compare))
        new, before = _snapshot(deployment.db), _snapshot(compare_db)
        same = new == before
        report.figure(
            f"jp_{name}_same_as_{Path(args.compare).name}",
            "same" if same else "DIFFERENT",
            goal="same records, statement bodies and held credits as the in-memory engine",
            met=same,
            detail=f"{len(new['records']):,} records, {len(new['outbox']):,} statements, "
            f"{len(new['pending']):,} held; old engine wall {old_run.wall:.1f} s, "
            f"peak RSS {old_run.max_rss_mb:.0f} MB, CPU {old_run.cpu:.1f} s",
        )
    return {"first": first, "second": second}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        load(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000:500000,100000:5000000", help="people:activities, small first")
    parser.add_argument("--engines", default="sqlite")
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--compare", default="", help="a checkout whose jp compute to compare with (first size)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep-dir", type=Path, default=None, help="SQLite: keep loaded stores here, re-use them")
    args = parser.parse_args()
    args.compared = False
    print_machine()
    report = Report("bench_jp")
    sizes = [tuple(int(x) for x in size.split(":")) for size in args.sizes.split(",")]
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        runs = []
        for people, activities in sizes:
            name = f"{engine}_{people // 1000}k"
            folder = scratch(f"jp-{name}")
            if engine == "sqlite":
                runs.append(
                    bench_size(name, f"sqlite:///{folder / 'state.db'}", folder, people, activities, args, report)
                )
                for leftover in folder.glob("*.db*"):
                    leftover.unlink()
                continue
            import psycopg

            database = f"lmsb_bench_jp_{os.getpid()}_{people}"
            with psycopg.connect(args.pg_server, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{database}"')
            try:
                url = f"{args.pg_server.rsplit('/', 1)[0]}/{database}"
                runs.append(bench_size(name, url, folder, people, activities, args, report))
            finally:
                with psycopg.connect(args.pg_server, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if len(runs) >= 2:
            for label in ("first", "second"):
                small, big = runs[0][label].max_rss_mb, runs[-1][label].max_rss_mb
                report.figure(
                    f"jp_{engine}_{label}_rss_ratio",
                    round(big / small, 2),
                    "x",
                    goal=f"<= {RSS_RATIO_GOAL}",
                    met=big / small <= RSS_RATIO_GOAL,
                    detail=f"peak RSS (wait4 ru_maxrss = VmHWM) {big:.0f} MB ({sizes[-1][0]:,} people) / "
                    f"{small:.0f} MB ({sizes[0][0]:,})",
                )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())

"""Issue 23 item 1: ``jp compute`` in bounded memory, 10,000 and 100,000 people (SQLite, and PostgreSQL).

    .venv/bin/python -m bench.jp                                  # 10,000 / 500,000 and 100,000 / 5,000,000
    .venv/bin/python -m bench.jp --sizes 2000:100000 --compare /work/main   # also the old engine, record by record
    .venv/bin/python -m bench.jp --engines sqlite,postgresql

For each size (``people:activities``) a state store is migrated by ``open_engine`` and filled directly
(SQLite ``executemany``, PostgreSQL ``COPY``) by a separate process, so the benchmark's own process stays
small: persons, one Moodle account link each and one chat pseudonym link each, and the evidence of 2026
(forum posts, module and course completions on the demo site ``demo-lms`` whose program JP is shipped,
WhatsApp messages, Zoom attendances with minutes; ~2 % from actors nobody linked), each person active
on 20 days of the year (so ~50 activities a person make ~20 JP records). Then ``lms-bridge jp
compute --year 2026`` runs twice as a subprocess: the first run queues every record, the second finds them
all unchanged. Peak RSS and CPU come from ``wait4`` of that process.

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
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Deployment, Report, make_deployment, print_machine, run_cli, scratch  # noqa: E402

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


def _sid(seed: int, index: int) -> str:
    return str(uuid.UUID(int=(seed << 96) | index, version=4))


def _evidence(people: int, activities: int, seed: int):  # type: ignore[no-untyped-def]
    """Yield evidence rows (tuples in ``EVIDENCE_COLUMNS`` order), ``activities`` in all, in time-ish order."""
    rng = random.Random(seed)
    start = datetime(YEAR, 1, 1, 1, tzinfo=UTC)
    days = (date(YEAR, 11, 30) - date(YEAR, 1, 1)).days
    for index in range(activities):
        person = rng.randrange(people)
        # Each person is active on ACTIVE_DAYS days of the year (several activities a day, as chats are).
        day = (person * 7919 + rng.randrange(ACTIVE_DAYS) * 104729) % days
        moment = start + timedelta(days=day, seconds=rng.randrange(10 * 3600))
        roll = rng.random()
        unlinked = rng.random() < 0.02
        duration = None
        community = None
        facts: dict[str, object] = {}
        if roll < 0.5:  # forum activity on the Moodle site
            source, site, actor = "moodle", SITE, f"u{person}" if not unlinked else f"x{person}"
            kind = "discussion_created" if roll < 0.05 else ("post_created" if roll < 0.3 else "reply_created")
            obj = f"forum_post:{index}"
        elif roll < 0.75:  # modules of courses without program JP (e-learning)
            source, site, actor = "moodle", SITE, f"u{person}" if not unlinked else f"x{person}"
            kind, course = "module_completed", rng.randrange(40)
            obj = f"module:{course}-{rng.randrange(12)}"
            facts = {"course_shortname": f"PT-{course:02d}", "course_category": "2"}
        elif roll < 0.77:  # course completions: LATSAR (40 JP), a category course, an unknown site's course
            source, site, actor = "moodle", SITE, f"u{person}" if not unlinked else f"x{person}"
            kind = "course_completed"
            choice = rng.randrange(3)
            obj = f"course:{choice}-{person % 7}"
            facts = (
                {"course_shortname": "DIKLAT-L-LATSAR"},
                {"course_shortname": f"K-{person % 7}", "course_category": "3"},
                {"course_shortname": f"PT-{person % 40:02d}", "course_category": "2"},
            )[choice]
        elif roll < 0.95:  # WhatsApp messages in a community
            source, site, actor = "whatsapp", "cop-wa", f"p{person}" if not unlinked else f"q{person}"
            kind = "message_posted" if roll < 0.9 else "message_replied"
            obj = f"message:{index}"
            community = "community:cop-1"
        else:  # Zoom attendance with minutes
            source, site, actor = "zoom", "zoom-1", f"p{person}" if not unlinked else f"q{person}"
            kind = "meeting_attended"
            obj = f"meeting:{rng.randrange(500)}"
            duration = 60 * rng.randrange(10, 120)
            facts = {"session_seconds": 5400}
        yield (
            _sid(seed, index),
            source,
            site,
            actor,
            None,
            kind,
            moment,
            duration,
            obj,
            community,
            json.dumps(facts),
        )


def _value(value: object) -> object:
    if isinstance(value, datetime):  # what SQLAlchemy's SQLite DATETIME stores
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def load(url: str, people: int, activities: int, seed: int) -> None:
    """Migrate the store at ``url`` and fill it (run in its own process)."""
    from lms_bridge.store.db import open_engine

    engine = open_engine(url)
    raw = engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        cur = dbapi.cursor()
        now = datetime(YEAR, 1, 1, tzinfo=UTC)
        persons = [
            (i + 1, _nip(i), "PNS", now, f"Pegawai {i}", f"U{i % 200:03d}", f"Unit {i % 200}") for i in range(people)
        ]
        links = [(2 * i + 1, "moodle", SITE, f"u{i}", i + 1, now, now) for i in range(people)]
        links += [(2 * i + 2, "pseudonym", "", f"p{i}", i + 1, now, now) for i in range(people)]
        person_columns = ("id", "nip", "employee_type", "created_at", "name", "unit_code", "unit_name")
        link_columns = ("id", "source", "site_id", "local_id", "person_id", "created_at", "updated_at")
        if engine.dialect.name == "sqlite":
            cur.execute("PRAGMA synchronous=OFF")

            def put(table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
                marks = ",".join("?" * len(columns))
                cur.executemany(
                    f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})",  # noqa: S608
                    [tuple(_value(v) for v in row) for row in rows],
                )
        else:

            def put(table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
                with cur.copy(f"COPY {table} ({','.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)

        put("persons", person_columns, persons)
        put("identity_links", link_columns, links)
        chunk: list[tuple] = []
        for row in _evidence(people, activities, seed):
            chunk.append(row)
            if len(chunk) >= CHUNK:
                put("evidence", EVIDENCE_COLUMNS, chunk)
                chunk = []
        put("evidence", EVIDENCE_COLUMNS, chunk)
        if engine.dialect.name == "postgresql":
            cur.execute("SELECT setval('persons_id_seq', %s)", (people + 1,))
            cur.execute("SELECT setval('identity_links_id_seq', %s)", (2 * people + 1,))
        dbapi.commit()
        if engine.dialect.name == "sqlite":
            cur.execute("ANALYZE")
            dbapi.commit()
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            dbapi.autocommit = True
            cur.execute("VACUUM ANALYZE")
    finally:
        raw.close()
        engine.dispose()


def _load_in_child(url: str, people: int, activities: int, seed: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bench.jp", "_load", url, str(people), str(activities), str(seed)],
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return time.perf_counter() - started


def _deployment(folder: Path, url: str) -> Deployment:
    deployment = make_deployment(folder)
    text = deployment.config.read_text().replace(f'url = "sqlite:///{folder / "state.db"}"', f'url = "{url}"', 1)
    deployment.config.write_text(text)
    return deployment


def _compute(deployment: Deployment, code: Path = ROOT):  # type: ignore[no-untyped-def]
    env = {**deployment.env, "PYTHONPATH": str(code)}
    deployment = Deployment(deployment.dir, deployment.config, env)
    # cwd=code: with ``python -m`` the working directory comes before PYTHONPATH, so without it
    # --compare ran this tree's code twice.
    return run_cli(deployment, "jp", "compute", "--year", str(YEAR), quiet=False, cwd=code).check()


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


def bench_size(name: str, url: str, folder: Path, people: int, activities: int, args, report: Report) -> dict:  # type: ignore[no-untyped-def]
    seconds = _load_in_child(url, people, activities, args.seed)
    report.note(f"{name}: loaded {people:,} people, {activities:,} activities in {seconds:.1f} s")
    deployment = _deployment(folder, url)
    compare_db = None
    if args.compare and url.startswith("sqlite") and not args.compared:
        compare_db = folder / "old.db"
        shutil.copy(deployment.db, compare_db)
    first = _compute(deployment)
    second = _compute(deployment)
    report.note(f"{name} first run: {first.stdout.strip()}")
    report.note(f"{name} second run: {second.stdout.strip()}")
    for label, run in (("first", first), ("second", second)):
        report.figure(
            f"jp_{name}_{label}_rate",
            round(activities / run.wall),
            "activities/s",
            goal=f">= {RATE_GOAL:,}",
            met=activities / run.wall >= RATE_GOAL,
            detail=f"wall {run.wall:.1f} s, CPU {run.cpu:.1f} s, peak RSS {run.max_rss_mb:.0f} MB",
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
            f"peak RSS {old_run.max_rss_mb:.0f} MB",
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
                (folder / "state.db").unlink()
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
                    detail=f"peak RSS {big:.0f} MB ({sizes[-1][0]:,} people) / {small:.0f} MB ({sizes[0][0]:,})",
                )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())

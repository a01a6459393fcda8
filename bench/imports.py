"""Benchmark 5 of issue 9: importing a 40,000-message WhatsApp export and a 40,000-message Telegram export.

    .venv/bin/python -m bench.imports [--messages 40000]   # ~1 min

The exports are generated (seeded) in the layouts of ``tests/data/community_exports``: WhatsApp
Android, Indonesian, 24 h, BOM, 300 members (200 shown by phone number, 100 by saved name),
multi-line messages, media, deleted and edited messages, system lines; Telegram Desktop
``result.json`` of one supergroup, 300 members, text as string and as array, replies, service
messages. A roster links 150 phone numbers and 150 Telegram ids to NIPs.

Figures:
- parsing: ``connectors.whatsapp.read_whatsapp`` / ``connectors.telegram.read_telegram`` in this
  process, with the deployment's keyed pseudonymiser (messages/s; best and median of 5);
- whole import: ``lms-bridge import FILE --community cop-bench`` as a subprocess (process start,
  migration, parse, pseudonyms, identity through the roster, statement building and validation,
  outbox and evidence writes) on a fresh state database that holds the roster;
- the same import in this process (no process start), and ``lms-bridge jp compute`` after it, for
  information.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from bench.common import PSEUDONYM_KEY, Report, make_deployment, outbox_count, print_machine, run_cli, scratch
from connectors.base import ReadStats
from connectors.telegram import read_telegram
from connectors.whatsapp import read_whatsapp
from lms_bridge.identity.pseudonym import make_pseudonymizer

JAKARTA = ZoneInfo("Asia/Jakarta")
START = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
WORDS = (
    "evaluasi",
    "pelatihan",
    "kompetensi",
    "rubrik",
    "instrumen",
    "observasi",
    "rekap",
    "materi",
    "diskusi",
    "narasumber",
    "jadwal",
    "laporan",
    "kinerja",
    "SPBE",
    "arsip",
    "webinar",
    "modul",
    "tugas",
    "coaching",
)


def nip_for(index: int) -> str:
    """A valid NIP (birth date, appointment month, gender, sequence) for member ``index``."""
    year = 1970 + index % 28
    month, day = 1 + index % 12, 1 + index % 28
    return f"{year}{month:02d}{day:02d}{year + 24}{month:02d}{1 + index % 2}{1 + index % 999:03d}"


def phone_for(index: int) -> str:
    """A phone number, written the way WhatsApp shows it: ``+62 812-3456-0001``."""
    return f"+62 812-{3400 + index // 10000:04d}-{index % 10000:04d}"


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))).capitalize() + "."


def whatsapp_export(count: int, seed: int = 1, members: int = 300) -> str:
    """An Android Indonesian export with ``count`` member messages (plus system lines)."""
    rng = random.Random(f"wa:{seed}")
    authors = [f"\u202a{phone_for(i)}\u202c" if i < 200 else f"Anggota Komunitas {i:03d}" for i in range(members)]
    lines = [
        "\ufeff01/01/26 08.00 - Pesan dan panggilan terenkripsi secara end-to-end. Tidak seorang pun di luar "
        "chat ini, termasuk WhatsApp, yang dapat membaca atau mendengarkannya.",
        '01/01/26 08.00 - Anda membuat grup "CoP Benchmark Widyaiswara"',
    ]
    when = START
    for index in range(count):
        when += timedelta(seconds=rng.randint(60, 600))
        stamp = when.astimezone(JAKARTA).strftime("%d/%m/%y %H.%M")
        author = authors[rng.randrange(members)]
        roll = index % 50
        if roll == 0:
            body = "<Media tidak disertakan>"
        elif roll == 1:
            body = "Pesan ini telah dihapus"
        elif roll == 2:
            body = _text(rng) + " <Pesan ini diedit>"
        elif roll in (3, 4):
            body = _text(rng) + "\n" + _text(rng) + "\n\n" + _text(rng)
        else:
            body = _text(rng) + (" \U0001f44d" if roll == 5 else "")
        lines.append(f"{stamp} - {author}: {body}")
        if index % 1000 == 999:
            lines.append(f"{stamp} - Anggota Baru {index:05d} bergabung menggunakan tautan undangan grup ini")
    return "\n".join(lines) + "\n"


def telegram_export(count: int, seed: int = 1, members: int = 300) -> dict:
    """A Telegram Desktop single-chat ``result.json`` with ``count`` messages (some service)."""
    rng = random.Random(f"tg:{seed}")
    messages: list[dict] = []
    when = START
    for message_id in range(1, count + 1):
        when += timedelta(seconds=rng.randint(60, 600))
        user = rng.randrange(members)
        base = {
            "id": message_id,
            "date": when.astimezone(JAKARTA).strftime("%Y-%m-%dT%H:%M:%S"),
            "date_unixtime": str(int(when.timestamp())),
        }
        if message_id % 500 == 0:
            messages.append(
                {
                    **base,
                    "type": "service",
                    "actor": f"Anggota {user}",
                    "actor_id": f"user{200000000 + user}",
                    "action": "invite_members",
                    "members": ["Anggota Baru"],
                    "text": "",
                    "text_entities": [],
                }
            )
            continue
        text = _text(rng)
        message = {
            **base,
            "type": "message",
            "from": f"Anggota {user}",
            "from_id": f"user{200000000 + user}",
            "text": text if message_id % 4 else [text, {"type": "link", "text": "https://lms.example.go.id"}],
            "text_entities": [{"type": "plain", "text": text}],
        }
        if message_id % 5 == 0:
            message["reply_to_message_id"] = message_id - 1
        if message_id % 37 == 0:
            message["edited"] = message["date"]
            message["edited_unixtime"] = message["date_unixtime"]
        messages.append(message)
    return {"name": "CoP Benchmark Telegram", "type": "private_supergroup", "id": 1000000999, "messages": messages}


def roster_csv(members: int = 300) -> str:
    """NIPs for 150 phone members (WhatsApp) and 150 Telegram ids."""
    rows = ["nip,nama,unit_kode,unit_nama,jabatan,jenis_asn,telepon,telegram_id,email"]
    for index in range(members):
        phone = phone_for(index) if index < 150 else ""
        telegram = f"user{200000000 + index}" if index % 2 == 0 else ""
        rows.append(
            f"{nip_for(index)},Pegawai {index:03d},U-{index % 12:02d},Unit {index % 12},Analis,PNS,{phone},{telegram},"
        )
    return "\n".join(rows) + "\n"


def _parse_rates(kind: str, path: Path, repeats: int = 5) -> tuple[list[float], int]:
    pseudonymize = make_pseudonymizer(SecretStr(PSEUDONYM_KEY))
    rates, records = [], 0
    for _ in range(repeats):
        stats = ReadStats()
        started = time.perf_counter()
        if kind == "whatsapp":
            activities = list(read_whatsapp(path, site="cop-bench", pseudonymize=pseudonymize, tz=JAKARTA, stats=stats))
        else:
            activities = list(read_telegram(path, site="cop-bench", pseudonymize=pseudonymize, stats=stats))
        elapsed = time.perf_counter() - started
        records = stats.records
        rates.append(records / elapsed)
        del activities
    return rates, records


def _in_process_import(folder: Path, path: Path, roster: Path) -> float:
    import os

    from lms_bridge import store
    from lms_bridge.config.settings import load_settings
    from lms_bridge.ingest.files import read_import_file, store_import

    deployment = make_deployment(folder)
    run_cli(deployment, "people", "import", str(roster)).check()
    os.environ.update(deployment.env)
    settings = load_settings(deployment.config)
    engine = store.open_engine(settings.state.url, folder)
    started = time.perf_counter()
    parsed = read_import_file(settings, path, community="cop-bench")
    store_import(engine, settings, parsed)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print_machine()
    report = Report("bench_import")
    work = scratch("import")
    files = {"whatsapp": work / "chat.txt", "telegram": work / "result.json"}
    files["whatsapp"].write_text(whatsapp_export(args.messages), encoding="utf-8")
    files["telegram"].write_text(
        json.dumps(telegram_export(args.messages), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    roster = work / "roster.csv"
    roster.write_text(roster_csv(), encoding="utf-8")
    for kind, path in files.items():
        rates, records = _parse_rates(kind, path)
        best, median = max(rates), statistics.median(rates)
        report.figure(
            f"import.{kind}.parse_rate",
            median,
            "messages/s",
            goal=">= 50,000/s",
            met=median >= 50_000,
            detail=f"median of 5 (best {best:,.0f}); {records} messages, {path.stat().st_size:,} bytes",
        )

        deployment = make_deployment(work / f"cli-{kind}")
        run_cli(deployment, "people", "import", str(roster)).check()
        run = run_cli(deployment, "import", str(path), "--community", "cop-bench").check()
        queued = outbox_count(deployment.db)
        summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
        report.figure(
            f"import.{kind}.whole_import",
            run.wall,
            "s",
            goal="< 5 s",
            met=run.wall < 5,
            detail=f"lms-bridge import as a subprocess, {queued} statements queued, peak RSS "
            f"{run.max_rss_mb:.0f} MB, CPU {run.cpu:.2f} s; {summary[:160]}",
        )
        report.figure(f"import.{kind}.whole_import_rate", records / run.wall, "messages/s")
        jp = run_cli(deployment, "jp", "compute").check()
        report.figure(f"import.{kind}.jp_compute", jp.wall, "s", detail="informative: " + jp.stdout.strip()[:160])
        elapsed = _in_process_import(work / f"inproc-{kind}", path, roster)
        report.figure(
            f"import.{kind}.in_process_import", elapsed, "s", detail="read_import_file + store_import, no process start"
        )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())

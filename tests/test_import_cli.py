"""``lms-bridge import`` of community exports and LMS reports: the real CLI, real SQLite/PostgreSQL, real Ralph.

Covers issue 6's operator path: format detection, the summary line, the pseudonym key and
``--community`` checks, roster matching, privacy (no raw phone, e-mail, Telegram id, name or
message text in the state database or the LRS), re-imports and overlapping exports, ugly
files, JP records from chat plus attendance, and the generic LMS completion CSV.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import MetaData, func, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.settings import load_settings
from lms_bridge.identifiers import normalize_phone, strip_invisible, telegram_identifier
from lms_bridge.identity.pseudonym import make_pseudonymizer
from lms_bridge.ingest.files import read_import_file, store_import
from lms_bridge.store.models import Cursor, Evidence, OutboxRow
from tests.fixtures.data import COMMUNITY_EXPORTS
from tests.fixtures.deployment import ROOT, Deployment
from tests.fixtures.lrs import lrs_statements

EXPORTS = COMMUNITY_EXPORTS
DATA = ROOT / "tests" / "data" / "community"
ROSTER = EXPORTS / "roster.csv"
EXAMPLE_MAPPING = ROOT / "mappings" / "lms_csv_example.toml"
KEY_ENV = "LMS_BRIDGE_PSEUDONYM_KEY"
KEY = "import-cli-test-key-0123456789abcdef"
BASE = "https://lms-bridge.id/xapi"
AUTHORITY = "https://siasn.bkn.go.id"
SOURCE_EXT = f"{BASE}/extensions/source"
BUDI, SITI, DEWI = "198005122005011002", "199203152019022001", "199202142022211007"
BUDI_PHONE = "+62 811-0000-0101"
LRE, PDF = "\u202a", "\u202c"
NO_LRS = "http://127.0.0.1:9/xAPI/"
pseudonym = make_pseudonymizer(SecretStr(KEY))


@pytest.fixture
def deploy(make_deployment: Callable[..., Deployment]) -> Callable[..., Deployment]:
    """``deploy(state_url, lrs=None, key=KEY, lrs_options="")``: a deployment with the pseudonym key set."""

    def build(state_url: str, lrs=None, *, key: str | None = KEY, lrs_options: str = "") -> Deployment:
        deployment = make_deployment(
            state_url, lrs.url if lrs else NO_LRS, lrs.password if lrs else "unused", lrs_options=lrs_options
        )
        if key is not None:
            deployment.env[KEY_ENV] = key
        return deployment

    return build


def outbox_rows(state_url: str) -> int:
    with Session(store.open_engine(state_url, None)) as session:
        return session.scalar(select(func.count()).select_from(OutboxRow)) or 0


def single_error_line(result) -> str:
    """The one ``error:`` sentence of a failed command (no traceback, nothing else on stderr)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# --- every sample export, detected, with its summary ---------------------------------------------

#: Sample export -> (description, extra options, summary after "): "), with the roster imported first.
EXPECTED = {
    "whatsapp_android_id_24h.txt": (
        "WhatsApp chat",
        (),
        "11 messages read, 5 activities, 6 skipped (system lines "
        "and deleted messages), added 5 statements to the outbox, 0 already there; "
        "3 people: 1 matched to the roster, 2 pseudonymous",
    ),
    "whatsapp_ios_id.txt": (
        "WhatsApp chat",
        (),
        "5 messages read, 4 activities, 1 skipped (system lines and "
        "deleted messages), added 4 statements to the outbox, 0 already there; 3 people: "
        "1 matched to the roster, 2 pseudonymous",
    ),
    "whatsapp_ios_id.zip": (
        "WhatsApp chat",
        (),
        "5 messages read, 4 activities, 1 skipped (system lines and "
        "deleted messages), added 4 statements to the outbox, 0 already there; 3 people: "
        "1 matched to the roster, 2 pseudonymous",
    ),
    "whatsapp_android_en_us_12h.txt": (
        "WhatsApp chat",
        (),
        "5 messages read, 3 activities, 2 skipped (system "
        "lines and deleted messages), added 3 statements to the outbox, 0 already "
        "there; 2 people: 0 matched to the roster, 2 pseudonymous",
    ),
    "whatsapp_ios_en_24h.txt": (
        "WhatsApp chat",
        (),
        "3 messages read, 3 activities, added 3 statements to the "
        "outbox, 0 already there; 2 people: 0 matched to the roster, 2 pseudonymous",
    ),
    "whatsapp_ambiguous_dates.txt": (
        "WhatsApp chat",
        ("--day-first",),  # its dates read both ways in time order: refused without an order
        "2 messages read, 2 activities, added 2 statements to "
        "the outbox, 0 already there; 2 people: 0 matched to the roster, "
        "2 pseudonymous",
    ),
    "telegram_single_chat.json": (
        "Telegram chat",
        (),
        "7 messages read, 5 activities, 2 skipped (service "
        "messages and posts of no person), added 5 statements to the outbox, 0 already "
        "there; 4 people: 3 matched to the roster, 1 pseudonymous",
    ),
    "telegram_account_export.json": (
        "Telegram chat",
        (),
        "7 messages read, 5 activities, 2 skipped (service "
        "messages and posts of no person), added 5 statements to the outbox, "
        "0 already there; 4 people: 3 matched to the roster, 1 pseudonymous",
    ),
    "zoom_participants_with_meeting.csv": (
        "Zoom attendance report",
        (),
        "4 rows read, 2 activities, 1 skipped "
        "(waiting room), added 2 statements to the outbox, 0 already there; "
        "2 people: 2 matched to the roster, 0 pseudonymous",
    ),
    "zoom_participants_dmy_24h.csv": (
        "Zoom attendance report",
        (),
        "2 rows read, 1 activity, added 1 statement "
        "to the outbox, 0 already there; 1 person: 1 matched to the roster, "
        "0 pseudonymous",
    ),
    "teams_attendance.csv": (
        "Teams attendance report",
        (),
        "2 rows read, 2 activities, added 2 statements to the "
        "outbox, 0 already there; 2 people: 2 matched to the roster, 0 pseudonymous",
    ),
    "meet_attendance.csv": (
        "Google Meet attendance sheet",
        ("--meeting-date", "2024-03-12"),
        "2 rows read, "
        "2 activities, added 2 statements to the outbox, 0 already there; 2 people: 2 matched "
        "to the roster, 0 pseudonymous",
    ),
}
#: Files beside the exports that are not exports.
NOT_EXPORTS = {"roster.csv"}


def test_every_sample_export_is_detected_and_imported(tmp_path, state_url, deploy):
    deployment = deploy(state_url)
    deployment.run("people", "import", str(ROSTER), check=True)
    present = {path.name for path in EXPORTS.iterdir()}
    assert present - NOT_EXPORTS == set(EXPECTED), "a sample export has no expectation here"
    total = 0
    for name, (description, options, summary) in EXPECTED.items():
        path = EXPORTS / name
        community = "cop-" + path.name.replace("_", "-").replace(".", "-")
        result = deployment.run("import", str(path), "--community", community, *options, check=True)
        assert result.stdout.strip() == f"{path} ({description}, community {community}): {summary}"
        total += int(re.search(r"added (\d+) statement", summary)[1])
        again = deployment.run("import", str(path), "--community", community, *options, check=True)
        assert again.stdout.strip() == f"{path} ({description}, community {community}): nothing new (already imported)"
    assert outbox_rows(state_url) == total == 38
    # The roster is not an export: refused in one sentence, naming the file.
    refused = deployment.run("import", str(ROSTER), "--community", "cop-x")
    assert refused.returncode == 1
    assert single_error_line(refused).startswith(f"error: cannot tell what {ROSTER} is: it is not a WhatsApp export")


# --- privacy ---------------------------------------------------------------------------------------

_WA_HEADER = re.compile(
    r"^[\u200e]?\[?\d{1,2}/\d{1,2}/\d{2,4},? \d{1,2}[.:]\d{2}(?:[.:]\d{2})?(?: ?[AP]M)?\]?"
    r"(?: - | )"
)
_PHONE = re.compile(r"\+\d[\d \-]{7,}\d")
_SYSTEM_VERBS = re.compile(r"^(.+?) (?:keluar|left|bergabung|joined|menambahkan|added|mengeluarkan|removed)\b")


def _whatsapp_text(path: Path) -> str:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return archive.read("_chat.txt").decode("utf-8-sig")
    return path.read_text(encoding="utf-8-sig")


def _phone_forms(raw: str) -> set[str]:
    e164 = normalize_phone(raw)
    assert e164 is not None
    return {raw, e164, e164[1:], e164[3:], "0" + e164[3:]}


def raw_values(whatsapp: list[Path], telegram: list[Path], zoom: list[Path]) -> tuple[set[str], set[str]]:
    """Personal values and message texts of the exports, and the group/meeting titles (which may be stored)."""
    values: set[str] = set()
    titles: set[str] = set()
    for path in whatsapp:
        text = _whatsapp_text(path).replace("\u202f", " ")
        for phone in _PHONE.findall(strip_invisible(text)):
            values |= _phone_forms(phone)
        for line in text.splitlines():
            match = _WA_HEADER.match(line)
            rest = strip_invisible(line[match.end() :] if match else line).strip()
            author, sep, body = rest.partition(": ")
            if match and sep:
                values |= {
                    author.lstrip("~ "),
                    body,
                    re.sub(r"\s*<[^>]*diedit>|\s*<This message was edited>", "", body),
                }
            elif match:
                system = _SYSTEM_VERBS.match(rest)
                if system and system[1] not in ("Anda", "You"):
                    values.add(system[1])
                titles |= set(re.findall(r'"([^"]+)"', rest))
            else:
                values.add(rest)  # a continuation line of a message
    for path in telegram:
        root = json.loads(path.read_text(encoding="utf-8"))
        chats = root["chats"]["list"] if "chats" in root else [root]
        for chat in chats:
            titles.add(chat["name"])
            for message in chat["messages"]:
                for key in ("from", "actor", "from_id", "actor_id", "inviter"):
                    if isinstance(message.get(key), str):
                        values.add(message[key])
                for key in ("from_id", "actor_id"):
                    if isinstance(message.get(key), str) and message[key].startswith("user"):
                        values.add(message[key].removeprefix("user"))  # the bare Telegram user id
                values.update(message.get("members", []))
                text = message.get("text")
                parts = [text] if isinstance(text, str) else [p if isinstance(p, str) else p["text"] for p in text]
                values.add("".join(parts))
                values.update(parts)
                values.update(entity["text"] for entity in message.get("text_entities", []))
                if "title" in message:
                    titles.add(message["title"])
    for path in zoom:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
        for row in rows:
            for cell in row:
                if "@" in cell:
                    values.add(cell)  # every e-mail, the host's included
        header_at = next(i for i, row in enumerate(rows) if "Join Time" in row)
        name_col = rows[header_at].index("Name (Original Name)")
        for row in rows[header_at + 1 :]:
            if row:
                values.add(row[name_col])
                values.update(part.strip(" )") for part in row[name_col].split("("))
        if rows[0][:2] == ["Meeting ID", "Topic"]:
            titles.add(rows[1][1])
    values = {value.strip() for value in values if len(value.strip()) >= 4}
    return {value for value in values if value not in titles}, titles


def test_no_phone_email_telegram_id_name_or_text_is_stored_or_sent(tmp_path, state_url, fresh_ralph, deploy):
    deployment = deploy(state_url, fresh_ralph)
    whatsapp = sorted(EXPORTS.glob("whatsapp_*"))
    telegram = sorted(EXPORTS.glob("telegram_*.json"))
    zoom = sorted(EXPORTS.glob("zoom_*.csv"))
    outputs = []
    for path in whatsapp + telegram + zoom:
        options = EXPECTED[path.name][1]
        outputs.append(deployment.run("import", str(path), "--community", "cop-wi-7", *options, check=True))
    outputs.append(deployment.run("outbox", "flush", check=True))
    needles, titles = raw_values(whatsapp, telegram, zoom)
    # The search is not vacuous: phones, e-mails, Telegram ids, display names and texts of several files.
    for expected in (
        "+62 811-0000-0101",
        "+6281100000101",
        "+62 812-0000-0202",
        "budi.s@example.org",
        "host@example.org",
        "user100000009",
        "100000001",
        "Budi Santoso",
        "Siti Rahmawati",
        "Dewi Lestari",
        "Agus Pratama",
        "Tamu Umum",
        "WI Siti",
        "Topik hari ini: evaluasi level 3",
        "Referensi: Kirkpatrick 4 level.",
        "Good morning all",
        "baris kedua dari pesan yang sama",
        "pesan dari akun yang sudah dihapus",
        "Level 3 needs observation",
    ):
        assert expected in needles, expected
    assert "CoP Widyaiswara Angkatan 7" in titles and len(needles) > 40
    lowered = sorted({needle.casefold() for needle in needles})

    engine = store.make_engine(state_url)
    metadata = MetaData()
    metadata.reflect(engine)
    assert {"outbox", "evidence", "cursors", "runs", "identity_links"} <= set(metadata.tables)
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            text = "\n".join(
                str(value) for row in connection.execute(table.select()) for value in row if value is not None
            ).casefold()
            assert [needle for needle in lowered if needle in text] == [], f"raw values in table {table.name}"

    statements = lrs_statements(fresh_ralph)
    assert len(statements) == outbox_rows(state_url) == 24  # overlapping exports of one group count once
    sent = json.dumps(statements, ensure_ascii=False).casefold()
    assert [needle for needle in lowered if needle in sent] == []
    # Group and meeting titles are kept as object names; people are accounts, never names or mboxes.
    assert "cop widyaiswara angkatan 7" in sent and '"mbox' not in sent
    for statement in statements:
        assert set(statement["actor"]) == {"objectType", "account"}
    printed = "\n".join(result.stdout + result.stderr for result in outputs).casefold()
    assert [needle for needle in lowered if needle in printed] == []


# --- roster matching -------------------------------------------------------------------------------


def test_roster_members_get_their_nip_and_others_stay_pseudonymous(tmp_path, state_url, fresh_ralph, deploy):
    deployment = deploy(state_url, fresh_ralph)
    deployment.run("people", "import", str(ROSTER), check=True)
    for name in ("whatsapp_android_id_24h.txt", "telegram_single_chat.json", "zoom_participants_with_meeting.csv"):
        deployment.run("import", str(EXPORTS / name), "--community", "cop-wi-7", check=True)
    deployment.run("outbox", "flush", check=True)
    statements = lrs_statements(fresh_ralph)
    assert len(statements) == 12

    def who(statement: dict) -> str:
        account = statement["actor"]["account"]
        if account["homePage"] == AUTHORITY:
            return account["name"]
        source = statement["context"]["extensions"][SOURCE_EXT]["source"]
        assert account["homePage"] == f"{BASE}/pseudonym/{source}" and re.fullmatch(r"[0-9a-f]{32}", account["name"])
        return "pseudonym:" + account["name"]

    by_source: dict[str, list[tuple[str, str]]] = {}
    for statement in statements:
        extension = statement["context"]["extensions"][SOURCE_EXT]
        by_source.setdefault(extension["source"], []).append((extension["native_id"], who(statement)))
        assert extension["site"] == "cop-wi-7"
        grouping = statement["context"]["contextActivities"]["grouping"]
        assert [g["id"] for g in grouping] == [f"{BASE}/community/cop-wi-7"]
    # Telegram: user ids of the roster -> NIPs; the deleted account user100000009 is not on it.
    assert dict(by_source["telegram"]) == {
        "1000000001:2": BUDI,
        "1000000001:3": SITI,
        "1000000001:4": BUDI,
        "1000000001:5": "pseudonym:" + pseudonym(telegram_identifier("user100000009")),
        "1000000001:6": DEWI,
    }
    # WhatsApp: the wrapped phone author is Budi on the roster; saved-contact names stay pseudonymous.
    whatsapp = sorted(actor for _, actor in by_source["whatsapp"])
    assert whatsapp.count(BUDI) == 2 and len(whatsapp) == 5
    assert all(actor.startswith("pseudonym:") for actor in whatsapp if actor != BUDI)
    # Zoom: e-mails on the roster; the guest who only waited is not there at all.
    assert sorted(actor for _, actor in by_source["zoom"]) == sorted([BUDI, SITI])


# --- end to end: chat + attendance -> JP under the cross-source daily cap --------------------------


def _wib(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 3, day, hour, minute, tzinfo=UTC) - timedelta(hours=7)


def write_whatsapp(path: Path, messages: list[tuple[str, str | None, str]]) -> Path:
    """An Android (Indonesian) export: (``dd/mm/yy HH.MM``, author or None for a system line, text)."""
    lines = [f"{when} - {author}: {text}" if author else f"{when} - {text}" for when, author, text in messages]
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_telegram(path: Path, messages: list[tuple[int, datetime, str, str, int | None]]) -> Path:
    """A single-chat export: (id, time, from name, from_id, reply_to)."""
    items = []
    for message_id, when, name, from_id, reply_to in messages:
        item = {
            "id": message_id,
            "type": "message",
            "date": when.strftime("%Y-%m-%dT%H:%M:%S"),
            "date_unixtime": str(int(when.timestamp())),
            "from": name,
            "from_id": from_id,
            "text": f"pesan {message_id}",
            "text_entities": [{"type": "plain", "text": f"pesan {message_id}"}],
        }
        if reply_to is not None:
            item["reply_to_message_id"] = reply_to
        items.append(item)
    path.write_text(
        json.dumps({"name": "CoP Uji", "type": "private_supergroup", "id": 1000000077, "messages": items}, indent=1),
        encoding="utf-8",
    )
    return path


def test_chat_and_attendance_become_jp_under_the_daily_cop_cap(tmp_path, state_url, fresh_ralph, deploy):
    deployment = deploy(state_url, fresh_ralph)
    deployment.run("people", "import", str(ROSTER), check=True)
    budi = f"{LRE}{BUDI_PHONE}{PDF}"
    wa = write_whatsapp(
        tmp_path / "Chat WhatsApp dengan CoP Uji.txt",
        [
            ("12/03/24 08.00", None, 'Anda membuat grup "CoP Uji"'),
            ("12/03/24 09.00", budi, "Selamat pagi, topik hari ini evaluasi"),
            ("12/03/24 09.05", budi, "Silakan baca materinya"),
            ("12/03/24 09.10", budi, "Diskusi dibuka sampai sore"),
            ("12/03/24 09.30", "Tamu Umum", "Izin bergabung"),
            ("13/03/24 10.00", budi, "Rekap diskusi kemarin"),
        ],
    )
    tg = write_telegram(
        tmp_path / "result.json",
        [
            (1, _wib(12, 10), "Budi Santoso", "user100000001", None),
            (2, _wib(12, 10, 5), "Budi Santoso", "user100000001", None),
            (3, _wib(12, 10, 10), "Budi Santoso", "user100000001", None),
            (4, _wib(12, 10, 15), "Siti Rahmawati", "user100000002", 1),
        ],
    )
    for path in (wa, tg, EXPORTS / "zoom_participants_with_meeting.csv"):
        deployment.run("import", str(path), "--community", "cop-uji", check=True)
    computed = deployment.run("jp", "compute", "--year", "2024", check=True)
    assert "queued 5 new records" in computed.stdout, computed.stdout
    deployment.run("outbox", "flush", check=True)

    statements = lrs_statements(fresh_ralph)
    by_id = {s["id"]: s for s in statements}
    earned = [s for s in statements if s["verb"]["id"] == "http://id.tincanapi.com/verb/earned"]
    records = {}
    for statement in earned:
        extensions = statement["context"]["extensions"]
        key = (
            statement["actor"]["account"]["name"],
            extensions[f"{BASE}/extensions/rule"]["id"],
            extensions[f"{BASE}/extensions/period"],
        )
        records[key] = (
            Decimal(str(statement["result"]["extensions"][f"{BASE}/extensions/jp"])),
            extensions[f"{BASE}/extensions/evidence"],
        )
    assert {key: jp for key, (jp, _) in records.items()} == {
        # Day 12: 3 WhatsApp + 3 Telegram messages: each source alone reaches the 2-JP tier, together still 2.
        (BUDI, "cop", "2024-03-12"): Decimal(2),
        (BUDI, "cop", "2024-03-13"): Decimal(1),
        (SITI, "cop", "2024-03-12"): Decimal(1),
        # Zoom: Budi's two rows merged (64 + 58 minutes) / 45; Siti 90 minutes / 45.
        (BUDI, "webinar", "2024-03-12"): Decimal("2.71"),
        (SITI, "webinar", "2024-03-12"): Decimal(2),
    }
    evidence = records[(BUDI, "cop", "2024-03-12")][1]
    assert evidence["count"] == 6
    assert sorted(by_id[sid]["context"]["platform"] for sid in evidence["ids"]) == ["Telegram"] * 3 + ["WhatsApp"] * 3
    # The guest's message earns nothing: not on the roster.
    assert "; 1 activities without a NIP" in computed.stdout


# --- ugly inputs -------------------------------------------------------------------------------------


def _ugly_files(tmp_path: Path) -> list[tuple[Path, tuple[str, ...], str]]:
    zip_bytes = (EXPORTS / "whatsapp_ios_id.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(zip_bytes[: len(zip_bytes) // 2])
    zoom = (EXPORTS / "zoom_participants_with_meeting.csv").read_text(encoding="utf-8")
    (tmp_path / "zoom_cut.csv").write_text(zoom[: zoom.index("Tamu Umum,,") + len("Tamu Umum,,")], encoding="utf-8")
    (tmp_path / "zoom_latin1.csv").write_bytes(zoom.replace("Budi Santoso", "Budi Santoso Café", 1).encode("cp1252"))
    (tmp_path / "notulen.md").write_text("# Notulen rapat CoP\n\nHadir: 12 orang.\n", encoding="utf-8")
    (tmp_path / "random.dat").write_bytes(bytes(range(256)) * 4)
    return [
        (DATA / "whatsapp_truncated.txt", (), "whatsapp export whatsapp_truncated.txt line 1: not UTF-8 text"),
        (
            DATA / "telegram_truncated.json",
            (),
            "telegram export telegram_truncated.json: not valid JSON by line 61 (parse error: premature EOF",
        ),
        (tmp_path / "cut.zip", (), "whatsapp export cut.zip: not a readable zip archive"),
        (
            tmp_path / "zoom_cut.csv",
            (),
            "zoom participants report zoom_cut.csv row 8: has 3 fields, fewer than the header",
        ),
        (DATA / "whatsapp_latin1.txt", (), "whatsapp export whatsapp_latin1.txt line 2: not UTF-8 text"),
        (tmp_path / "zoom_latin1.csv", (), "attendance report zoom_latin1.csv line 5: not UTF-8 text"),
        (DATA / "telegram_not_export.json", (), "telegram export telegram_not_export.json: not a Telegram export"),
        (
            DATA / "zoom_missing_column.csv",
            (),
            "zoom participants report zoom_missing_column.csv row 1: missing column",
        ),
        (tmp_path / "notulen.md", (), f"cannot tell what {tmp_path / 'notulen.md'} is"),
        (tmp_path / "random.dat", (), f"cannot tell what {tmp_path / 'random.dat'} is"),
        (
            EXPORTS / "meet_attendance.csv",
            ("--source", "zoom"),
            "is a Google Meet attendance sheet, not a Zoom attendance report: give --source meet",
        ),
        (EXPORTS / "meet_attendance.csv", (), "meet_attendance.csv row 2: the join time has no date"),
        (
            DATA / "telegram_account_mixed.json",
            (),
            "holds 2 group chats: CoP Analis SDM (id 1000000002), CoP Lama "
            "(id 555000); import one at a time with --chat ID",
        ),
        (tmp_path / "missing.txt", (), f"{tmp_path / 'missing.txt'} does not exist"),
        (
            DATA / "telegram_only_personal.json",
            (),
            "telegram export telegram_only_personal.json holds no group chat, only 2 personal, bot or "
            "saved-messages chats, which are not communities",
        ),
    ]


def test_ugly_inputs_are_one_sentence_and_import_nothing(tmp_path, state_url, deploy):
    deployment = deploy(state_url)
    for path, options, message in _ugly_files(tmp_path):
        result = deployment.run("import", str(path), "--community", "cop-wi-7", *options)
        assert result.returncode == 1, (path, result.stdout, result.stderr)
        line = single_error_line(result)
        assert message in line, (path, line)
        assert path.name in line
        assert result.stdout == ""
    debug = deployment.run("--debug", "import", str(DATA / "whatsapp_latin1.txt"), "--community", "cop-wi-7")
    assert debug.returncode == 1 and "Traceback" in debug.stderr  # the traceback only with --debug
    assert "pending │ 0" in deployment.run("outbox", "status", check=True).stdout
    with Session(store.open_engine(state_url, None)) as session:
        for model in (OutboxRow, Evidence, Cursor):
            assert session.scalar(select(func.count()).select_from(model)) == 0


def test_dates_that_read_both_ways_are_refused_until_the_order_is_given(state_url, deploy):
    # 01/02/24 then 02/03/24: 1 Feb then 2 Mar, or 2 Jan then 3 Feb; both keep the messages in time order.
    deployment = deploy(state_url)
    path = EXPORTS / "whatsapp_ambiguous_dates.txt"
    refused = deployment.run("import", str(path), "--community", "cop-dates")
    assert refused.returncode == 1 and refused.stdout == ""
    assert single_error_line(refused) == (
        f"error: whatsapp export {path.name}: every date reads both as day/month and as month/day and the order "
        "of the messages does not tell which (line 1: 01/02/24 could be 1 February or 2 January); "
        "pass --day-first or --month-first"
    )
    for flag in ("--day-first", "--month-first"):
        deployment.run("import", str(path), "--community", f"cop-dates{flag}", flag, check=True)
    with Session(store.open_engine(state_url, None)) as session:
        times = {
            site: sorted(session.scalars(select(Evidence.occurred_at).where(Evidence.site_id == site)))
            for site in ("cop-dates", "cop-dates--day-first", "cop-dates--month-first")
        }
        refused_cursors = session.scalar(select(func.count()).select_from(Cursor).where(Cursor.site_id == "cop-dates"))
    assert times["cop-dates"] == [] and refused_cursors == 0  # the refusal stored nothing
    wib = timedelta(hours=7)  # 08.00 and 09.00 in Asia/Jakarta
    assert times["cop-dates--day-first"] == [
        datetime(2024, 2, 1, 8, tzinfo=UTC) - wib,
        datetime(2024, 3, 2, 9, tzinfo=UTC) - wib,
    ]
    assert times["cop-dates--month-first"] == [
        datetime(2024, 1, 2, 8, tzinfo=UTC) - wib,
        datetime(2024, 2, 3, 9, tzinfo=UTC) - wib,
    ]


def test_older_telegram_layouts_import_and_a_chat_without_participation_says_so(tmp_path, state_url, deploy):
    deployment = deploy(state_url)
    old = DATA / "telegram_2021_single_chat.json"
    first = deployment.run("import", str(old), "--community", "cop-wi-21", check=True)
    assert first.stdout.strip().startswith(
        f"{old} (Telegram chat, community cop-wi-21): 4 messages read, 3 activities, 1 skipped"
    ), first.stdout
    again = deployment.run("import", str(old), "--community", "cop-wi-21", check=True)
    assert again.stdout.strip() == f"{old} (Telegram chat, community cop-wi-21): nothing new (already imported)"
    with Session(store.open_engine(state_url, None)) as session:
        times = sorted(session.scalars(select(Evidence.occurred_at).where(Evidence.site_id == "cop-wi-21")))
    # "date" is the exporting PC's local time, read in the deployment's zone (Asia/Jakarta, UTC+7).
    assert times[0] == datetime(2021, 3, 15, 2, 0, tzinfo=UTC)
    # A group whose export holds no member's message: said so, not "already imported".
    quiet = tmp_path / "result.json"
    service = {"id": 1, "type": "service", "date": "2024-03-12T09:00:00", "date_unixtime": "1710209700"}
    quiet.write_text(json.dumps({"name": "Sepi", "type": "private_group", "id": 9, "messages": [service]}))
    result = deployment.run("import", str(quiet), "--community", "cop-sepi", check=True)
    assert result.stdout.strip() == (
        f"{quiet} (Telegram chat, community cop-sepi): 1 message read, none of them participation "
        "(service messages and posts of no person skipped); nothing to import"
    )


def test_missing_key_and_missing_community_are_one_sentence_and_store_nothing(tmp_path, deploy):
    state = tmp_path / "state.db"
    no_key = deploy(f"sqlite:///{state}", key=None)
    result = no_key.run("import", str(EXPORTS / "whatsapp_android_id_24h.txt"), "--community", "cop-wi-7")
    assert result.returncode == 2
    assert single_error_line(result).startswith(f"error: the pseudonym key {KEY_ENV} is not set")
    result = no_key.run("import", str(EXPORTS / "zoom_participants_dmy_24h.csv"))
    assert result.returncode == 2 and KEY_ENV in single_error_line(result)
    assert not state.exists()  # not even the database was created

    keyed = deploy(f"sqlite:///{state}")
    for name in ("whatsapp_ios_id.zip", "telegram_single_chat.json"):
        result = keyed.run("import", str(EXPORTS / name))
        assert result.returncode == 2
        assert "needs the Community of Practice it belongs to: give --community NAME" in single_error_line(result)
    result = keyed.run("import", str(EXPORTS / "whatsapp_ios_id.zip"), "--community", "CoP WI 7")
    assert result.returncode == 2 and "--community 'CoP WI 7' is not an id" in single_error_line(result)
    assert not state.exists()
    usage = keyed.run("import", str(EXPORTS / "whatsapp_ios_id.zip"), "--source", "signal")
    assert usage.returncode == 2 and "'signal' is not one of" in usage.stderr


# --- re-imports, overlapping exports, resumed imports ------------------------------------------------


def _group_messages(count: int) -> list[tuple[str, str | None, str]]:
    authors = [f"{LRE}{BUDI_PHONE}{PDF}", "Siti Rahmawati", f"{LRE}+62 812-0000-0202{PDF}"]
    return [
        (f"{12 + index // 4}/03/24 {9 + index % 4:02d}.{index:02d}", authors[index % 3], f"pesan nomor {index}")
        for index in range(count)
    ]


def test_reimport_adds_nothing_and_a_later_export_adds_only_new_messages(tmp_path, state_url, fresh_ralph, deploy):
    deployment = deploy(state_url, fresh_ralph)
    messages = _group_messages(8)
    first = write_whatsapp(
        tmp_path / "export-1.txt", [("12/03/24 08.00", None, 'Anda membuat grup "CoP Uji"'), *messages[:5]]
    )
    later = write_whatsapp(tmp_path / "export-2.txt", [*messages[2:], ("14/03/24 08.00", None, "Agus Pratama keluar")])
    result = deployment.run("import", str(first), "--community", "cop-uji", check=True)
    assert "6 messages read, 5 activities, 1 skipped" in result.stdout and "added 5 statements" in result.stdout
    again = deployment.run("import", str(first), "--community", "cop-uji", check=True)
    assert "nothing new (already imported)" in again.stdout
    overlap = deployment.run("import", str(later), "--community", "cop-uji", check=True)
    assert "7 messages read, 6 activities, 1 skipped" in overlap.stdout
    assert "added 3 statements to the outbox, 3 already there" in overlap.stdout
    deployment.run("outbox", "flush", check=True)
    held = lrs_statements(fresh_ralph)
    assert len(held) == 8 == len({s["id"] for s in held})
    # A third import of either file sends nothing more.
    deployment.run("import", str(later), "--community", "cop-uji", check=True)
    assert "sent 0 statements" in deployment.run("outbox", "flush", check=True).stdout


def test_an_import_killed_after_a_batch_resumes_where_it_stopped(tmp_path, state_url, deploy, monkeypatch):
    deployment = deploy(state_url)
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = load_settings(deployment.config, environ=deployment.env)
    path = write_whatsapp(tmp_path / "export.txt", _group_messages(7))
    engine = store.open_engine(state_url, None)

    class Killed(Exception):
        pass

    def die(_n: int) -> None:
        raise Killed

    parsed = read_import_file(settings, path, community="cop-uji")
    with pytest.raises(Killed):
        store_import(engine, settings, parsed, on_progress=die, batch_size=2)  # dies after its first batch
    assert outbox_rows(state_url) == 2
    resumed = store_import(engine, settings, read_import_file(settings, path, community="cop-uji"), batch_size=2)
    assert (resumed.pending, resumed.report.new, resumed.report.unchanged) == (5, 5, 0)
    assert outbox_rows(state_url) == 7
    done = store_import(engine, settings, read_import_file(settings, path, community="cop-uji"))
    assert (done.pending, done.report.new) == (0, 0)


# --- LMS completion CSV --------------------------------------------------------------------------------


def test_an_lms_completion_report_becomes_completed_statements(tmp_path, state_url, fresh_ralph, deploy):
    deployment = deploy(state_url, fresh_ralph)
    deployment.run("people", "import", str(ROSTER), check=True)
    report = tmp_path / "laporan.csv"
    report.write_text(
        "ID Kursus,Nama Kursus,Kode Kursus,ID Number,NIP,Email,Tanggal Selesai,JP\n"
        "101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,19800512 200501 1 002,,12/03/2024 09:05,12\n"
        "101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,,Siti.R@example.org,13/03/2024 10:00,12\n"
        "101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,,tamu@example.org,13/03/2024 11:00,12\n"
        "102,Latsar,LATSAR,,,,14/03/2024 10:00,40\n",
        encoding="utf-8",
    )
    result = deployment.run("import", str(report), "--mapping", str(EXAMPLE_MAPPING), check=True)
    assert result.stdout.splitlines() == [
        "line 5: no valid NIP or e-mail: row skipped",
        f"{report} (LMS completion report): 4 rows read, 3 activities, 1 skipped (not completed, repeated, or no "
        "valid NIP or e-mail), added 3 statements to the outbox, 0 already there; 3 people: 2 with a NIP, 1 without",
    ]
    assert "nothing new" in deployment.run("import", str(report), "--mapping", str(EXAMPLE_MAPPING)).stdout
    deployment.run("outbox", "flush", check=True)
    statements = sorted(lrs_statements(fresh_ralph), key=lambda s: s["timestamp"])
    assert [s["actor"]["account"]["name"] for s in statements[:2]] == [BUDI, SITI]  # Siti via the roster e-mail
    assert statements[2]["actor"]["account"]["homePage"] == f"{BASE}/pseudonym/lms_csv"
    for statement in statements:
        assert statement["verb"]["id"] == "http://adlnet.gov/expapi/verbs/completed"
        assert statement["object"]["id"] == "https://lms.example.go.id/course/view.php?id=101"
        assert statement["context"]["platform"] == "LMS completion report"
        assert statement["context"]["extensions"][SOURCE_EXT]["site"] == "lms-example"
    assert "siti.r@" not in json.dumps(statements).lower() and "tamu@" not in json.dumps(statements)
    with Session(store.open_engine(state_url, None)) as session:
        facts = [json.loads(row) for row in session.scalars(select(Evidence.facts).where(Evidence.source == "lms_csv"))]
    assert all(f["program_jp"] == "12" and f["course_shortname"] == "PT-EVAL" for f in facts) and len(facts) == 3


def test_a_bad_mapping_or_report_is_one_sentence(tmp_path, state_url, deploy):
    deployment = deploy(state_url)
    mapping = tmp_path / "kemenkeu.toml"
    mapping.write_text(
        EXAMPLE_MAPPING.read_text(encoding="utf-8").replace('course_id = "ID Kursus"', 'course_key = "ID Kursus"')
    )
    report = tmp_path / "laporan.csv"
    report.write_text(
        "ID Kursus,Nama Kursus,Kode Kursus,ID Number,NIP,Email,Tanggal Selesai,JP\n"
        "101,Pelatihan,PT,X,19800512 200501 1 002,,12 Maret 2024,12\n",
        encoding="utf-8",
    )
    result = deployment.run("import", str(report), "--mapping", str(mapping))
    assert result.returncode == 2
    line = single_error_line(result)
    assert line.startswith(f"error: column mapping {mapping}: [columns] course_key is not a known key")
    result = deployment.run("import", str(report), "--mapping", str(EXAMPLE_MAPPING))
    assert result.returncode == 1
    assert single_error_line(result) == (
        "error: LMS report laporan.csv line 2: the completion time '12 Maret 2024' does not match the format "
        "'%d/%m/%Y %H:%M' ([completed_at] format in lms_csv_example.toml)"
    )
    result = deployment.run("import", str(report), "--source", "csv")
    assert result.returncode == 2 and "needs its column mapping: give --mapping FILE" in single_error_line(result)
    assert outbox_rows(state_url) == 0


# --- no traceback on arbitrary bytes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("import_fuzz")
    (folder / "lms-bridge.toml").write_text(f'[state]\nurl = "sqlite:///{folder / "state.db"}"\n')
    return folder


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".txt", ".json", ".csv", ".zip", ".jsonl", ""]))
def test_import_never_shows_a_traceback(fuzz_dir, monkeypatch, capsys, data, suffix):
    from lms_bridge.cli import main

    monkeypatch.setenv(KEY_ENV, KEY)
    path = fuzz_dir / f"upload{suffix}"
    path.write_bytes(data)
    capsys.readouterr()
    community = [] if suffix == ".jsonl" else ["--community", "cop-fuzz"]
    monkeypatch.setattr(
        sys,
        "argv",
        ["lms-bridge", "-q", "--config", str(fuzz_dir / "lms-bridge.toml"), "import", str(path), *community],
    )
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "unexpected" not in err, err
    if exited.value.code:
        assert exited.value.code in (1, 2)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err

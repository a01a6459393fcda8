"""Secrets and personal data: after the proof suite's own runs, none of them is anywhere it should not be.

Runs last in the suite (file name), and also runs a full deployment of its own so it proves something
when run alone: the roster, every chat export and attendance report of the sample exports, a
Moodle sync, JP, a flush to Ralph, the people and report commands, a failing flush with ``--debug``
and JSON logs. Then it searches every captured stdout/stderr, every outbox row, the raw bytes of
every state database (and its WAL) and every Ralph data folder for:

- the web-service token, the LRS password, the pseudonym key (and a secret from a refused secrets file);
- every raw phone number of the fixtures and of the generated chats, in every way it can be written;
- the text of chat messages (WhatsApp, Telegram, the generated export) and of the fake forum posts.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from bench.imports import phone_for, whatsapp_export
from fakes.classroom import TOKEN_PREFIX as CLASSROOM_TOKEN_PREFIX
from fakes.classroom import private_key_lines
from fakes.zoom import TEST_CLIENT_SECRET as ZOOM_CLIENT_SECRET
from fakes.zoom import TOKEN_PREFIX as ZOOM_TOKEN_PREFIX
from lms_bridge.demo.moodle.generator import SENTENCES
from tests.connectors.test_google_classroom import PSEUDONYM_KEY as CLASSROOM_PSEUDONYM_KEY
from tests.connectors.test_telegram_bot import PSEUDONYM_KEY as TELEGRAM_PSEUDONYM_KEY
from tests.connectors.test_telegram_bot import TOKEN as TELEGRAM_BOT_TOKEN
from tests.connectors.test_zoom_api import PSEUDONYM_KEY as ZOOM_PSEUDONYM_KEY
from tests.fixtures.data import COMMUNITY_EXPORTS
from tests.proof.support import (
    ADMIN_TOKEN,
    CAPTURED,
    LRS_PASSWORD,
    PSEUDONYM_KEY,
    make_deployment,
    start_ralph,
)

pytestmark = pytest.mark.proof

SECRETS = [
    ADMIN_TOKEN,
    LRS_PASSWORD,
    PSEUDONYM_KEY,
    "world-can-read-this-9f2",
    TELEGRAM_BOT_TOKEN,
    TELEGRAM_PSEUDONYM_KEY,
    # The bot token's secret half alone (a URL-encoded token writes its ":" as "%3A")
    TELEGRAM_BOT_TOKEN.split(":", 1)[1],
    # Zoom and Classroom pulls (tests/connectors): secrets, access tokens (by prefix), the test key
    ZOOM_CLIENT_SECRET,
    ZOOM_TOKEN_PREFIX,
    ZOOM_PSEUDONYM_KEY,
    CLASSROOM_TOKEN_PREFIX,
    CLASSROOM_PSEUDONYM_KEY,
    *private_key_lines(),
    # The Zoom OAuth request's Basic auth header (client id and secret), as the connector and proof tests send it
    *(base64.b64encode(f"{client}:{ZOOM_CLIENT_SECRET}".encode()).decode() for client in ("cid-1", "cid-proof")),
]
_PHONE = re.compile(r"(?<![\w+])(?:\+62|0)[ \u202f\-]?8[\d \-\u202f]{7,14}\d")
_WHATSAPP_BODY = re.compile(r"^\u200e?\[?[\d/.,: APMapm\u202f-]+\]?(?: -)? [^:\n]{1,60}: (?P<body>.+)$", re.M)


def national(raw: str) -> str:
    """+62 811-0000-0101, 0811 0000 0101, 6281100000101 -> 81100000101 (what every way of writing it contains)."""
    digits = re.sub(r"\D", "", raw)
    return digits[2:] if digits.startswith("62") else digits.lstrip("0")


def fixture_phones() -> set[str]:
    """The national digits of every phone number in the fixtures and the generated chats."""
    found: set[str] = set()
    for path in COMMUNITY_EXPORTS.iterdir():
        if path.suffix in (".txt", ".csv", ".json"):
            text = path.read_bytes().decode("utf-8", "ignore").replace("\u202a", "").replace("\u202c", "")
            found.update(national(match.group(0)) for match in _PHONE.finditer(text))
    found.update(national(phone_for(index)) for index in range(200))  # the crash and import proofs' chats
    return {number for number in found if len(number) >= 9}


def message_texts() -> set[str]:
    texts: set[str] = set()
    for path in COMMUNITY_EXPORTS.glob("whatsapp_*.txt"):
        for match in _WHATSAPP_BODY.finditer(path.read_text(encoding="utf-8-sig")):
            body = match.group("body").strip()
            if len(body) >= 16 and not body.startswith("<"):
                texts.add(body[:40])
    for path in COMMUNITY_EXPORTS.glob("telegram_*.json"):

        def walk(node: object) -> None:
            if isinstance(node, dict):
                if node.get("type") == "message" and isinstance(node.get("text"), str) and len(node["text"]) >= 16:
                    texts.add(node["text"][:40])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(json.loads(path.read_text(encoding="utf-8")))
    for line in whatsapp_export(60, seed=9).splitlines()[2:]:
        body = line.split(": ", 1)[1] if ": " in line else ""
        if len(body) >= 30:
            texts.add(body[:40])
    texts.update(sentence[:40] for sentence in SENTENCES)
    return texts


def _own_run() -> None:
    """A deployment that touches every kind of personal data and every secret, then fails with --debug."""
    import lms_bridge.demo.moodle as fake_moodle
    from tests.proof.support import ProofMoodle

    lrs = start_ralph()
    try:
        with ProofMoodle(preset="small", seed=3, token=ADMIN_TOKEN) as moodle:
            assert isinstance(moodle, fake_moodle.FakeMoodle)
            deployment = make_deployment("secrets-own-run", lrs_url=lrs.url, moodle_url=moodle.url)
            deployment.run("people", "import", str(COMMUNITY_EXPORTS / "roster.csv"))
            for index, path in enumerate(sorted(COMMUNITY_EXPORTS.glob("whatsapp_*"))):
                order = ["--day-first"] if "ambiguous_dates" in path.name else []  # else refused, nothing stored
                deployment.run("import", str(path), "--community", f"cop-wa-{index}", *order, check=False)
            for index, path in enumerate(sorted(COMMUNITY_EXPORTS.glob("telegram_*.json"))):
                deployment.run("import", str(path), "--community", f"cop-tg-{index}", check=False)
            for path in sorted(COMMUNITY_EXPORTS.glob("*attendance*.csv")) + sorted(
                COMMUNITY_EXPORTS.glob("zoom_*.csv")
            ):
                extra = ["--meeting-date", "2024-03-12"] if path.name.startswith("meet") else []
                deployment.run("import", str(path), "--community", "cop-meetings", *extra, check=False)
            deployment.run("sync")
            deployment.run("--log-format", "json", "jp", "compute")
            deployment.run("outbox", "flush")
            deployment.run("people", "unresolved")
            deployment.run("people", "show", "198005122005011002", check=False)
            deployment.run("ledger", "sync")
            deployment.run("report", "compliance", "--year", "2024", "--format", "csv", check=False)
            deployment.run("sites", "test")
            deployment.run("doctor", check=False)
            wrong = {**deployment.env, "LMS_BRIDGE_LRS_PASSWORD": LRS_PASSWORD + "-wrong"}
            deployment.env, saved = wrong, deployment.env
            deployment.run("--debug", "outbox", "flush", check=False)
            deployment.run("--debug", "--log-format", "json", "sync", check=False)
            deployment.env = saved
            assert int(deployment.query("select count(*) from outbox where status = 'sent'")[0][0]) > 100
    finally:
        lrs.stop()


def _live_runs() -> None:
    """Live pulls with ``--debug``, each refused mid-run then rerun: the bot token, the Zoom client secret
    and access tokens pass through every error path (the proof's live tests reuse the connectors' secrets)."""
    from tests.proof.test_live_faults import telegram_deployment, telegram_fake, zoom_deployment, zoom_fake

    bot = telegram_fake()
    try:
        bot.inject_fault("401", after=1)
        deployment = telegram_deployment("secrets-telegram", bot)
        assert deployment.run("--debug", "sync", check=False).returncode == 1
        deployment.run("--debug", "--log-format", "json", "sync")
    finally:
        bot.stop()
    with zoom_fake() as zoom:
        zoom.inject_fault("revoked", path="participants", after=1)
        deployment = zoom_deployment("secrets-zoom", zoom)
        assert deployment.run("--debug", "sync", check=False).returncode == 1
        zoom.revoked = False
        deployment.run("--debug", "--log-format", "json", "sync")
    assert deployment.outbox_count() > 0


def _places() -> list[tuple[str, bytes]]:
    """(where, bytes) of everything to search."""
    places = [(what, text.encode("utf-8", "surrogatepass")) for what, text in CAPTURED.outputs]
    for db in dict.fromkeys(CAPTURED.databases):
        for path in (db, db.with_name(db.name + "-wal")):
            if path.exists():
                places.append((str(path), path.read_bytes()))
    for folder in dict.fromkeys(CAPTURED.lrs_dirs):
        for path in Path(folder).rglob("*"):
            if path.is_file() and path.suffix in (".jsonl", ".log", ".json"):
                places.append((str(path), path.read_bytes()))
    return places


_DIGIT_RUN = re.compile(rb"\d{9,}")
_WRITTEN_PHONE = re.compile(rb"(?<!\d)8\d{2}(?:[ .\-]|\xe2\x80\xaf)?\d{3,4}(?:[ .\-]|\xe2\x80\xaf)?\d{3,5}(?!\d)")


def phone_hits(data: bytes, numbers: set[str]) -> list[tuple[int, str]]:
    """(offset, number) of each phone number written in ``data``: in a run of digits, or with separators."""
    lengths = sorted({len(number) for number in numbers})
    hits = []
    for match in _DIGIT_RUN.finditer(data):
        run = match.group().decode()
        for length in lengths:
            for start in range(len(run) - length + 1):
                if run[start : start + length] in numbers:
                    hits.append((match.start() + start, run[start : start + length]))
    for match in _WRITTEN_PHONE.finditer(data):
        digits = re.sub(rb"\D", b"", match.group()).decode()
        if digits in numbers:
            hits.append((match.start(), digits))
    return hits


def _context(data: bytes, offset: int) -> str:
    return data[max(0, offset - 80) : offset + 80].decode("utf-8", "replace")


def test_no_secret_phone_number_or_message_text_anywhere():
    _own_run()
    _live_runs()
    places = _places()
    assert len(places) > 20 and any("fs_lrs.jsonl" in where for where, _ in places)
    numbers, texts = fixture_phones(), sorted(message_texts())
    assert len(numbers) > 20 and len(texts) > 20
    literal = [("secret", value) for value in SECRETS] + [("message text", text) for text in texts]
    # Positive control: the search finds the raw values where they are supposed to be (the inputs).
    assert phone_hits((COMMUNITY_EXPORTS / "roster.csv").read_bytes(), numbers)
    chat = (COMMUNITY_EXPORTS / "whatsapp_android_id_24h.txt").read_bytes()
    assert phone_hits(chat, numbers) and any(text.encode() in chat for text in texts)
    leaks = []
    for where, data in places:
        for kind, value in literal:
            offset = data.find(value.encode("utf-8", "surrogatepass"))
            if offset >= 0:
                leaks.append(f"{kind} {value!r} in {where}: ...{_context(data, offset)!r}...")
        for offset, number in phone_hits(data, numbers):
            leaks.append(f"phone number {number} in {where}: ...{_context(data, offset)!r}...")
    assert not leaks, f"{len(leaks)} leaks:\n" + "\n".join(leaks[:20])

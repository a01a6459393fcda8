"""JP records end to end: activities -> roster -> jp compute -> outbox -> real Ralph, read back from the LRS.

One person completes a course, takes part in the CoP on three days (an LMS forum,
WhatsApp and Telegram, one of those days on all three) and attends a Zoom webinar.
The LRS must end up holding exactly the JP the shipped rules say; a rule version
bump must void and replace exactly that rule's records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.identifiers import email_identifier, phone_identifier, telegram_identifier
from lms_bridge.identity.pseudonym import make_pseudonymizer
from lms_bridge.jp.rules import DEFAULT_RULES
from lms_bridge.store.models import OutboxRow
from tests.fixtures.activities import write_activity_file
from tests.fixtures.lrs import lrs_statements

NIP = "198805172014032004"
KEY = "test-pseudonym-key-0123456789"
BASE = "https://lms-bridge.id/xapi"
PHONE = "+62 811-0000-0101"
TELEGRAM_ID = "user100000001"
EMAIL = "budi.s@example.org"
pseudonym = make_pseudonymizer(SecretStr(KEY))

PROGRAM_JP = """\
format = 1
[default]
default = "0"
[sites.lms]
shortnames = { "PT-EVAL" = "12" }
"""


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of March 2026 in Jakarta (UTC+7), as UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC) - timedelta(hours=7)


def _forum(kind: Kind, native: str, when: datetime, actor: str = "101") -> Activity:
    url = f"https://lms.example.go.id/mod/forum/discuss.php?d=5#p{native}"
    return Activity(
        source="moodle",
        site="lms",
        kind=kind,
        native_id=native,
        actor=actor,
        object=ObjectRef("post" if kind is Kind.REPLY_CREATED else "discussion", native, None, url),
        occurred_at=when,
        extras={"nip": NIP} if actor == "101" else {},
    )


def _chat(source: str, actor: str, native: str, when: datetime, kind: Kind = Kind.MESSAGE_POSTED) -> Activity:
    return Activity(
        source=source,
        site="cop-wi",
        kind=kind,
        native_id=native,
        actor=actor,
        object=ObjectRef("message", native),
        occurred_at=when,
        grouping=ObjectRef("community", "cop-wi", "CoP Widyaiswara"),
    )


def _activities() -> list[Activity]:
    course = ObjectRef("course", "12", "Pelatihan Evaluasi", "https://lms.example.go.id/course/view.php?id=12")
    phone, telegram = pseudonym(phone_identifier(PHONE)), pseudonym(telegram_identifier(TELEGRAM_ID))
    email = pseudonym(email_identifier(EMAIL))
    return [
        Activity(
            source="moodle",
            site="lms",
            kind=Kind.COURSE_COMPLETED,
            native_id="course=12|user=101",
            actor="101",
            object=course,
            occurred_at=_at(2, 11),
            extras={"nip": NIP, "course_shortname": "PT-EVAL", "course_idnumber": "X", "course_category": 1},
        ),
        # Day 3: one forum reply, one WhatsApp message, one Telegram reply: 3 CoP items, one 2-JP day.
        _forum(Kind.REPLY_CREATED, "9001", _at(3, 9)),
        _chat("whatsapp", phone, "wa-1", _at(3, 10)),
        _chat("telegram", telegram, "tg-1", _at(3, 21), Kind.MESSAGE_REPLIED),
        # Day 4: a single forum reply: 1 JP.
        _forum(Kind.REPLY_CREATED, "9002", _at(4, 9)),
        # Day 5: a started discussion: 2 JP.
        _forum(Kind.DISCUSSION_CREATED, "77", _at(5, 9)),
        # A webinar: 100 minutes present -> 100/45 = 2.22 JP.
        Activity(
            source="zoom",
            site="bpsdm-webinar",
            kind=Kind.MEETING_ATTENDED,
            native_id=f"81200000001:2026-03-06:{email}",
            actor=email,
            object=ObjectRef("meeting", "81200000001:2026-03-06", "Webinar"),
            occurred_at=_at(6, 9),
            duration=timedelta(minutes=100),
        ),
    ]


def _deploy(tmp_path: Path, make_deployment, state_url: str, lrs, rules_text: str | None = None):
    rules = tmp_path / "rules.toml"
    rules.write_text(rules_text if rules_text is not None else DEFAULT_RULES.read_text(encoding="utf-8"))
    (tmp_path / "program.toml").write_text(PROGRAM_JP)
    deployment = make_deployment(
        state_url,
        lrs.url,
        lrs.password,
        extra_toml="""
        [jp]
        rules_file = "rules.toml"
        program_jp_file = "program.toml"
        """,
    )
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = KEY
    return deployment


def _roster(tmp_path: Path, *, telegram: bool = True, email: bool = True) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(
        "nip,nama,unit_kode,unit_nama,jabatan,jenis_asn,telepon,telegram_id,email\n"
        f"{NIP},Budi Santoso,BPSDM-01,Bidang PK,Widyaiswara,PNS,{PHONE},"
        f"{TELEGRAM_ID if telegram else ''},{EMAIL if email else ''}\n",
        encoding="utf-8",
    )
    return path


def _jp_statements(lrs) -> tuple[list[dict], set[str], list[dict]]:
    statements = lrs_statements(lrs)
    voided = {s["object"]["id"] for s in statements if s["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided"}
    earned = [s for s in statements if s["verb"]["id"] == "http://id.tincanapi.com/verb/earned"]
    return earned, voided, statements


def _active_by_rule(lrs) -> dict[str, Decimal]:
    earned, voided, _ = _jp_statements(lrs)
    totals: dict[str, Decimal] = {}
    for statement in earned:
        if statement["id"] in voided:
            continue
        assert statement["actor"]["account"]["name"] == NIP
        rule = statement["context"]["extensions"][f"{BASE}/extensions/rule"]["id"]
        jp = Decimal(str(statement["result"]["extensions"][f"{BASE}/extensions/jp"]))
        totals[rule] = totals.get(rule, Decimal(0)) + jp
    return totals


def test_the_whole_chain_gives_exactly_the_rules_jp(tmp_path, state_url, fresh_ralph, make_deployment):
    deployment = _deploy(tmp_path, make_deployment, state_url, fresh_ralph)
    deployment.run("people", "import", str(_roster(tmp_path)), check=True)
    deployment.run("import", str(write_activity_file(tmp_path / "a.jsonl", _activities())), check=True)
    computed = deployment.run("jp", "compute", "--year", "2026", check=True)
    assert "queued 5 new records" in computed.stdout, computed.stdout
    deployment.run("outbox", "flush", check=True)

    assert _active_by_rule(fresh_ralph) == {
        "training-completed": Decimal(12),
        "cop": Decimal(5),
        "webinar": Decimal("2.22"),
    }
    earned, voided, statements = _jp_statements(fresh_ralph)
    assert not voided and len(earned) == 5
    by_id = {s["id"]: s for s in statements}
    cop_day3 = next(s for s in earned if s["context"]["extensions"][f"{BASE}/extensions/period"] == "2026-03-03")
    evidence = cop_day3["context"]["extensions"][f"{BASE}/extensions/evidence"]
    assert evidence["count"] == 3 and all(sid in by_id for sid in evidence["ids"])
    assert {by_id[sid]["verb"]["display"]["en-US"] for sid in evidence["ids"]} == {"replied", "posted"}
    assert cop_day3["context"]["statement"]["id"] in evidence["ids"]
    assert cop_day3["result"]["duration"] == "PT1H30M"  # 2 JP x 45 minutes
    assert cop_day3["context"]["extensions"][f"{BASE}/extensions/rule"] == {"id": "cop", "version": 1, "code": "C10"}

    # Nothing changed: nothing is queued, nothing is posted.
    again = deployment.run("jp", "compute", "--year", "2026", check=True)
    assert "queued 0 new records" in again.stdout and "5 unchanged" in again.stdout
    assert "sent 0 statements" in deployment.run("outbox", "flush", check=True).stdout
    assert len(lrs_statements(fresh_ralph)) == len(statements)

    explained = deployment.run("rules", "explain", NIP, "--year", "2026", check=True)
    assert f"{NIP}: 19.22 JP posted for 2026" in explained.stdout, explained.stdout
    assert "posted r1" in explained.stdout


def test_a_rule_version_bump_voids_and_replaces_exactly_its_records(tmp_path, state_url, fresh_ralph, make_deployment):
    deployment = _deploy(tmp_path, make_deployment, state_url, fresh_ralph)
    deployment.run("people", "import", str(_roster(tmp_path)), check=True)
    deployment.run("import", str(write_activity_file(tmp_path / "a.jsonl", _activities())), check=True)
    deployment.run("jp", "compute", "--year", "2026", check=True)
    deployment.run("outbox", "flush", check=True)
    before, _, _ = _jp_statements(fresh_ralph)

    rules = tmp_path / "rules.toml"
    text = rules.read_text()
    webinar = text.index('id = "webinar"')
    rules.write_text(text[:webinar] + text[webinar:].replace("version = 1", "version = 2", 1))
    computed = deployment.run("jp", "compute", "--year", "2026", check=True)
    assert "1 revised, 1 voided, 4 unchanged" in computed.stdout, computed.stdout
    deployment.run("outbox", "flush", check=True)

    earned, voided, _ = _jp_statements(fresh_ralph)
    old_webinar = [s["id"] for s in before if s["context"]["extensions"][f"{BASE}/extensions/rule"]["id"] == "webinar"]
    assert voided == set(old_webinar) and len(old_webinar) == 1
    new = [
        s
        for s in earned
        if s["id"] not in voided
        and s["context"]["extensions"][f"{BASE}/extensions/rule"] == {"id": "webinar", "version": 2, "code": "B6"}
    ]
    assert len(new) == 1
    assert _active_by_rule(fresh_ralph) == {
        "training-completed": Decimal(12),
        "cop": Decimal(5),
        "webinar": Decimal("2.22"),
    }


def test_late_evidence_revises_and_a_late_link_brings_past_activity(tmp_path, state_url, fresh_ralph, make_deployment):
    deployment = _deploy(tmp_path, make_deployment, state_url, fresh_ralph)
    # The roster does not list the Telegram id nor the e-mail yet: that activity is unresolved.
    deployment.run("people", "import", str(_roster(tmp_path, telegram=False, email=False)), check=True)
    deployment.run("import", str(write_activity_file(tmp_path / "a.jsonl", _activities())), check=True)
    first = deployment.run("jp", "compute", "--year", "2026", check=True)
    assert "2 activities without a NIP" in first.stdout, first.stdout
    deployment.run("outbox", "flush", check=True)
    # Day 3 had 2 resolved CoP items (forum + WhatsApp): 1 JP; no webinar record.
    assert _active_by_rule(fresh_ralph) == {"training-completed": Decimal(12), "cop": Decimal(4)}

    # The member consents to link the Telegram id and the e-mail: day 3 is revised, the webinar appears.
    deployment.run("people", "import", str(_roster(tmp_path)), check=True)
    second = deployment.run("jp", "compute", "--year", "2026", check=True)
    assert "queued 1 new records" in second.stdout and "1 revised, 1 voided" in second.stdout, second.stdout
    deployment.run("outbox", "flush", check=True)
    assert _active_by_rule(fresh_ralph) == {
        "training-completed": Decimal(12),
        "cop": Decimal(5),
        "webinar": Decimal("2.22"),
    }

    # A forum reply of day 4 synced late: day 4 now has 2 items, still the 1-JP tier, but other evidence.
    late = [_forum(Kind.REPLY_CREATED, "9003", _at(4, 15))]
    deployment.run("import", str(write_activity_file(tmp_path / "late.jsonl", late)), check=True)
    third = deployment.run("jp", "compute", "--year", "2026", check=True)
    assert "queued 0 new records" in third.stdout and "1 revised, 1 voided, 4 unchanged" in third.stdout
    deployment.run("outbox", "flush", check=True)
    earned, voided, _ = _jp_statements(fresh_ralph)
    day4 = [s for s in earned if s["context"]["extensions"][f"{BASE}/extensions/period"] == "2026-03-04"]
    assert len(day4) == 2 and len([s for s in day4 if s["id"] not in voided]) == 1
    active = next(s for s in day4 if s["id"] not in voided)
    assert active["context"]["extensions"][f"{BASE}/extensions/evidence"]["count"] == 2


def test_a_bad_rule_file_is_one_sentence_and_emits_nothing(tmp_path, state_url, ralph, make_deployment):
    bad = DEFAULT_RULES.read_text(encoding="utf-8").replace('cap_per_day = "2"', 'cap_per_day = "two"')
    deployment = _deploy(tmp_path, make_deployment, state_url, ralph, rules_text=bad)
    deployment.run("import", str(write_activity_file(tmp_path / "a.jsonl", _activities())), check=True)
    with Session(store.make_engine(state_url)) as session:
        queued = session.scalar(select(func.count()).select_from(OutboxRow))
    result = deployment.run("jp", "compute", "--year", "2026")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "rules.toml" in lines[0] and "'cop'" in lines[0] and "cap_per_day" in lines[0]
    assert "Traceback" not in result.stderr
    with Session(store.make_engine(state_url)) as session:
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == queued
    checked = deployment.run("rules", "check")
    assert checked.returncode == 2 and "cap_per_day" in checked.stderr


def test_open_periods_wait(tmp_path, state_url, ralph, make_deployment):
    deployment = _deploy(tmp_path, make_deployment, state_url, ralph)
    now = datetime.now(UTC)
    today = [_forum(Kind.DISCUSSION_CREATED, f"today-{now:%Y%m%d}", now - timedelta(minutes=5))]
    deployment.run("import", str(write_activity_file(tmp_path / "t.jsonl", today)), check=True)
    result = deployment.run("jp", "compute", "--year", str(now.year), check=True)
    assert "queued 0 new records" in result.stdout and "1 in periods not closed yet" in result.stdout

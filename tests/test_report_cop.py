"""CoP health (issue 21): every figure of two communities computed by hand, through three channels.

The state is built the way a deployment builds it: the HR roster, an LMS forum (a Moodle-shaped activity
file with the forum's own reply links), a Telegram export with replies and a Zoom attendance report are
imported through the real importers; a WhatsApp export (no reply links) makes a third community; the
ledger rows (JP records mirrored from the LRS) are written directly, as tests/test_reports_hr.py does.
Times are WIB (UTC+7); the year is 2026.

People (roster): A, D, G in unit U1; B, E, H in U2; C, F in U3. X is a Telegram account on no roster
(pseudonymous).

Community ``course:77`` (the LMS forum; facilitator G configured) -- facilitator-centric:

    d0  Jan 20 08:00 G starts discussion 0 (no reply)
    d1  Feb 10 08:00 G starts discussion 1
    p11 Feb 10 10:00 A -> d1          p12 Feb 10 12:00 G -> p11
    p13 Feb 11 09:00 H -> d1          p14 Feb 11 15:00 G -> p13
    d2  Feb 12 08:00 G starts discussion 2
    p15 Feb 12 09:00 B -> d2          p16 Feb 12 10:00 G -> p15
    p18 Feb 13 09:00 D -> d2          p19 Feb 13 11:00 G -> p18
    p20 Feb 14 09:00 E -> d1
    d3  Mar 5 08:00 G starts discussion 3;  p17 Mar 6 08:00 G -> d3 (answers himself)

Community ``cop-terbuka`` (Telegram chat + Zoom; facilitator A configured) -- open:

    1  Jan 21 09:00 A post            2  Feb 3 09:00 A post
    3  Feb 3 10:00 B -> 2             4  Feb 3 11:00 C -> 3
    5  Feb 4 09:00 D post             6  Feb 4 13:00 E -> 5
    7  Feb 5 09:00 X -> 2             8  Feb 12 08:00 B post
    9  Mar 2 09:00 C post             10 Mar 2 09:30 C -> 9 (himself)
    11 Mar 2 12:00 A -> 9             12 Mar 3 10:00 E -> 11
    13 Mar 4 10:00 D -> 5 (his own February thread)
    Zoom, Mar 20: A 60 min, B 50 min, F 90 min.

Ledger (JP records): A 20 JP training (not CoP: only makes A reach the target); A C10 Feb 3 1 JP (message 2);
G C10 Feb 10 2 JP (d1, p12); B C10 Feb 12 2 JP (p15 of the forum and message 8 of the chat: 1 JP each);
A webinar Mar 20 1.33 JP (the Zoom row); B C10 Feb 5 1 JP voided (never counted).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from lms_bridge.config.settings import load_settings
from lms_bridge.errors import EmptyAnswerError
from lms_bridge.identity.pseudonym import pseudonymizer_from_settings
from lms_bridge.identity.roster import import_roster
from lms_bridge.ingest.files import read_import_file, store_import
from lms_bridge.ledger import cop, cop_view
from lms_bridge.store import open_engine
from lms_bridge.store.models import Evidence, LedgerRecord
from tests.fixtures.deployment import write_deployment

A, B, C = "198001012005011001", "198102022006021002", "198203032007031003"
D, E, F = "198304042008041004", "198405052009051005", "198506062010061006"
G, H = "198607072011071007", "198708082012081008"
UNITS = {A: "U1", D: "U1", G: "U1", B: "U2", E: "U2", H: "U2", C: "U3", F: "U3"}
KEY = "cop-report-test-key-0123456789abcdef"
FORUM, OPEN = "course:77", "community:cop-terbuka"


def wib(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC) - timedelta(hours=7)


def _roster(path: Path) -> Path:
    lines = ["nip,nama,unit_kode,unit_nama,jabatan,jenis_asn,telepon,telegram_id,email"]
    for index, nip in enumerate((A, B, C, D, E, F, G, H)):
        letter = "ABCDEFGH"[index]
        lines.append(
            f"{nip},Orang {letter},{UNITS[nip]},Unit {UNITS[nip]},Widyaiswara,PNS,,user10000000{index + 1},"
            f"{letter.lower()}@example.org"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _forum(path: Path) -> Path:
    def line(kind: str, native: str, nip: str, when: datetime, obj: tuple[str, str], reply_to: str | None) -> str:
        extras: dict[str, str] = {"nip": nip}
        if reply_to:
            extras["reply_to"] = reply_to
        return json.dumps(
            {
                "source": "moodle",
                "site": "lms",
                "kind": kind,
                "native_id": native,
                "actor": f"u{nip[-3:]}",
                "object": {"type": obj[0], "native_id": obj[1]},
                "occurred_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "parent": {"type": "forum", "native_id": "9"},
                "grouping": {"type": "course", "native_id": "77"},
                "extras": extras,
            }
        )

    def start(number: int, when: datetime) -> str:
        return line("discussion_created", f"discussion={number}", G, when, ("discussion", str(number)), None)

    def reply(post: int, nip: str, when: datetime, to: str) -> str:
        return line("reply_created", str(post), nip, when, ("post", str(post)), to)

    lines = [
        start(0, wib(1, 20, 8)),
        start(1, wib(2, 10, 8)),
        reply(11, A, wib(2, 10, 10), "discussion:1"),
        reply(12, G, wib(2, 10, 12), "post:11"),
        reply(13, H, wib(2, 11, 9), "discussion:1"),
        reply(14, G, wib(2, 11, 15), "post:13"),
        start(2, wib(2, 12, 8)),
        reply(15, B, wib(2, 12, 9), "discussion:2"),
        reply(16, G, wib(2, 12, 10), "post:15"),
        reply(18, D, wib(2, 13, 9), "discussion:2"),
        reply(19, G, wib(2, 13, 11), "post:18"),
        reply(20, E, wib(2, 14, 9), "discussion:1"),
        start(3, wib(3, 5, 8)),
        reply(17, G, wib(3, 6, 8), "discussion:3"),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _telegram(path: Path) -> Path:
    who = {A: 1, B: 2, C: 3, D: 4, E: 5, "X": 9}
    messages = [
        (1, wib(1, 21, 9), A, None),
        (2, wib(2, 3, 9), A, None),
        (3, wib(2, 3, 10), B, 2),
        (4, wib(2, 3, 11), C, 3),
        (5, wib(2, 4, 9), D, None),
        (6, wib(2, 4, 13), E, 5),
        (7, wib(2, 5, 9), "X", 2),
        (8, wib(2, 12, 8), B, None),
        (9, wib(3, 2, 9), C, None),
        (10, wib(3, 2, 9, 30), C, 9),
        (11, wib(3, 2, 12), A, 9),
        (12, wib(3, 3, 10), E, 11),
        (13, wib(3, 4, 10), D, 5),
    ]
    items = []
    for message_id, when, person, reply_to in messages:
        number = who[person]
        user = f"user{'2' if person == 'X' else '1'}0000000{number}"
        local = when.astimezone(UTC) + timedelta(hours=7)
        item = {
            "id": message_id,
            "type": "message",
            "date": local.strftime("%Y-%m-%dT%H:%M:%S"),
            "date_unixtime": str(int(when.timestamp())),
            "from": f"Orang {number}",
            "from_id": user,
            "text": "pesan",
            "text_entities": [{"type": "plain", "text": "pesan"}],
        }
        if reply_to is not None:
            item["reply_to_message_id"] = reply_to
        items.append(item)
    chat = {"name": "CoP Terbuka", "type": "private_supergroup", "id": 1000000088, "messages": items}
    path.write_text(json.dumps(chat, indent=1), encoding="utf-8")
    return path


def _zoom(path: Path) -> Path:
    path.write_text(
        "Meeting ID,Topic,Start Time,End Time,User Email,Duration (Minutes),Participants\n"
        "812 0000 0021,Diskusi Bulanan,03/20/2026 09:00:00 AM,03/20/2026 10:30:00 AM,host@example.org,90,3\n"
        "\n"
        "Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes),Guest,In Waiting Room\n"
        "Orang A,a@example.org,03/20/2026 09:00:00 AM,03/20/2026 10:00:00 AM,60,No,No\n"
        "Orang B,b@example.org,03/20/2026 09:00:00 AM,03/20/2026 09:50:00 AM,50,No,No\n"
        "Orang F,f@example.org,03/20/2026 09:00:00 AM,03/20/2026 10:30:00 AM,90,No,No\n",
        encoding="utf-8",
    )
    return path


def _whatsapp(path: Path) -> Path:
    path.write_text(
        "\ufeff15/02/26 09.00 - Tamu Satu: Selamat pagi\n15/02/26 09.10 - Tamu Dua: Pagi juga\n", encoding="utf-8"
    )
    return path


FACILITATORS = f"""
[cop]
facilitators = {{ "course:77" = ["{G}"], "cop-terbuka" = ["{A}"] }}
"""


def _record(index: int, nip: str, jp: str, day: date, rule: str, ids: list[str], voided: bool = False) -> dict:
    return {
        "statement_id": f"00000000-0000-4000-8000-{index:012d}",
        "nip": nip,
        "jp": jp,
        "rule_id": rule,
        "rule_version": 1,
        "rule_code": {"cop": "C10", "webinar": "B6", "training-completed": "B4"}[rule],
        "period": day.isoformat(),
        "period_day": day,
        "object_id": f"https://lms-bridge.id/xapi/jp/{index}",
        "evidence_ids": json.dumps(ids),
        "evidence_count": len(ids),
        "timestamp": datetime.combine(day, datetime.min.time(), UTC),
        "stored": datetime.combine(day, datetime.min.time(), UTC),
        "voided": voided,
    }


def seed(tmp_path: Path, state_url: str, env: dict[str, str] | None = None):
    """Write the deployment (facilitators configured) and seed its store as described above.

    Returns (deployment, settings, engine). The caller sets ``LMS_BRIDGE_PSEUDONYM_KEY`` to ``KEY`` in the
    environment first (the importers read it there); ``env`` adds variables to the deployment's own.
    """
    deployment = write_deployment(
        tmp_path,
        state_url=state_url,
        lrs_url="http://127.0.0.1:9/xAPI/",
        password="unused",
        extra_toml=FACILITATORS,
        env={"LMS_BRIDGE_PSEUDONYM_KEY": KEY, **(env or {})},
    )
    settings = load_settings(deployment.config, environ=deployment.env)
    engine = open_engine(settings.state.url)
    import_roster(engine, _roster(tmp_path / "roster.csv"), pseudonymizer_from_settings(settings))
    for path, community in (
        (_forum(tmp_path / "forum.jsonl"), None),
        (_telegram(tmp_path / "result.json"), "cop-terbuka"),
        (_zoom(tmp_path / "zoom.csv"), "cop-terbuka"),
        (_whatsapp(tmp_path / "Chat WhatsApp dengan CoP WA.txt"), "cop-wa"),
    ):
        parsed = read_import_file(settings, path, community=community, month_first=path.suffix == ".csv")
        store_import(engine, settings, parsed)
    with Session(engine) as session:
        ids = {
            (row.site_id, row.object_key, row.kind): row.statement_id
            for row in session.execute(
                select(Evidence.site_id, Evidence.object_key, Evidence.kind, Evidence.statement_id)
            )
        }

    def one(object_key: str, kind: str | None = None) -> str:
        found = [sid for (_site, key, k), sid in ids.items() if key == object_key and (kind is None or k == kind)]
        assert len(found) == 1, (object_key, found)
        return found[0]

    with Session(engine) as session:
        attended = session.execute(select(Evidence).where(Evidence.kind == "meeting_attended")).scalars().all()
        zoom_a = [row.statement_id for row in attended if one_person(engine, row) == A]
    with engine.begin() as connection:
        connection.execute(
            insert(LedgerRecord),
            [
                _record(1, A, "20", date(2026, 1, 15), "training-completed", []),
                _record(2, A, "1", date(2026, 2, 3), "cop", [one("message:1000000088:2")]),
                _record(3, G, "2", date(2026, 2, 10), "cop", [one("discussion:1"), one("post:12")]),
                _record(4, B, "2", date(2026, 2, 12), "cop", [one("post:15"), one("message:1000000088:8")]),
                _record(5, A, "1.33", date(2026, 3, 20), "webinar", zoom_a),
                _record(6, B, "1", date(2026, 2, 5), "cop", [one("message:1000000088:3")], voided=True),
            ],
        )
    return deployment, settings, engine


@pytest.fixture
def state(state_url, tmp_path, monkeypatch):
    """The deployment, its settings and engine, seeded as described above."""
    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", KEY)
    deployment, settings, engine = seed(tmp_path, state_url)
    yield deployment, settings, engine
    engine.dispose()  # before the test database is dropped


def one_person(engine, row: Evidence) -> str | None:
    """The NIP a Zoom row resolves to (through the roster's e-mail link), as the report resolves it."""
    from lms_bridge.jp.engine import load_resolver

    with Session(engine) as session:
        return load_resolver(session).nip(row)


def run(deployment, *args: str):
    """The real CLI, in this process (a subprocess costs seconds on a loaded machine)."""
    from click.testing import CliRunner

    from lms_bridge.cli import cli

    return CliRunner().invoke(cli, ["--config", str(deployment.config), *args], env=deployment.env)


def _by_id(report: cop.CopReport) -> dict[str, cop.Community]:
    return {c.id: c for c in report.communities}


def test_every_figure_of_both_communities_by_hand(state):
    _deployment, settings, engine = state
    communities = _by_id(cop.cop_report(engine, settings, 2026))
    assert set(communities) == {"course:77", "cop-terbuka", "cop-wa"}

    # --- course:77, the LMS forum (facilitator G) ---------------------------------------------------
    forum = communities["course:77"]
    assert forum.reply_links and forum.facilitators_configured and forum.facilitators == 1
    jan, feb, mar, year = forum.months[1], forum.months[2], forum.months[3], forum.year
    # January: only G (d0, one day) -> 1 member, 1 active, newcomer activated; rung 1-2; no one known in Dec.
    assert (jan.members, jan.active, jan.newcomers, jan.activated, jan.ladder) == (1, 1, 1, 1, (0, 1, 0))
    assert (jan.moved_up, jan.moved_down) == (0, 0)
    # Thread d0: no reply -> 1 thread, 0 answered, rate 0, no median, 0 replies per thread.
    assert (jan.threads, jan.answered, jan.reply_rate, jan.median_response_hours, jan.replies_per_thread) == (
        1, 0, 0.0, None, 0.0,
    )  # fmt: skip
    # February: G, A, H, B, D, E known and active (6); 5 newcomers, each posted at once (activated 5).
    assert (feb.members, feb.members_linked, feb.members_pseudonymous) == (6, 6, 0)
    assert (feb.active, feb.active_rate, feb.newcomers, feb.activated) == (6, 1.0, 5, 5)
    # Active days: G Feb 10, 11, 12, 13 = 4 (3+); the others 1 each (1-2).
    assert feb.ladder == (0, 5, 1)
    # Moves, members known at the end of January and of February: G 1-2 -> 3+ = 1 up.
    assert (feb.moved_up, feb.moved_down) == (1, 0)
    # Contributions: G d1 p12 p14 d2 p16 p19 = 6, A H B D E 1 each = 11; replies: G 4 + 5 = 9.
    assert (feb.contributions, feb.replies, feb.posters, feb.repliers) == (11, 9, 6, 6)
    # Top shares: posts 6/11 and (6+1+1)/11; replies 4/9 and (4+1+1)/9.
    assert feb.top1_posts == pytest.approx(6 / 11) and feb.top3_posts == pytest.approx(8 / 11)
    assert feb.top1_replies == pytest.approx(4 / 9) and feb.top3_replies == pytest.approx(6 / 9)
    # Threads d1 (p11 p12 p13 p14 p20 = 5 replies, first answer p11 after 2 h) and d2 (p15 p16 p18 p19 = 4,
    # first p15 after 1 h): 2 threads, both answered, median 1.5 h, 9/2 = 4.5 replies per thread.
    assert (feb.threads, feb.answered, feb.reply_rate) == (2, 2, 1.0)
    assert (feb.median_response_hours, feb.replies_per_thread) == (1.5, 4.5)
    # Edges: A-G, G-A, H-G, G-H, B-G, G-B, D-G, G-D, E-G = 9; every one touches G: 0 peer to peer.
    # Across units (G in U1): H, B, E are U2 -> p13 p14 p15 p16 p20 = 5; A and D are U1.
    assert (feb.edges, feb.peer_edges, feb.peer_share, feb.cross_unit_edges) == (9, 0, 0.0, 5)
    assert feb.units_reached == 2  # U1 (G A D), U2 (H B E)
    # March: only G (d3 Mar 5, p17 Mar 6): active 1 of 6; G 2 days (1-2), others 0.
    assert (mar.members, mar.active, mar.newcomers, mar.ladder) == (6, 1, 0, (5, 1, 0))
    # Moves: G 3+ -> 1-2 and A H B D E 1-2 -> 0: 6 down.
    assert (mar.moved_up, mar.moved_down) == (0, 6)
    # Thread d3 has only G's own reply: 1 thread, not answered, 1 reply; the self-reply is no edge.
    assert (mar.threads, mar.answered, mar.reply_rate, mar.replies_per_thread) == (1, 0, 0.0, 1.0)
    assert (mar.contributions, mar.replies, mar.edges, mar.peer_share, mar.units_reached) == (2, 1, 0, None, 1)
    # The year: 6 members, all active and activated newcomers; days G 7 (3+), others 1.
    assert (year.members, year.active, year.newcomers, year.activated, year.ladder) == (6, 6, 6, 6, (0, 5, 1))
    # Moves summed over the months: up 1 (Feb); down 6 (Mar) + 1 (Apr: G 1-2 -> 0) = 7.
    assert (year.moved_up, year.moved_down) == (1, 7)
    # Contributions 1 + 11 + 2 = 14, G 9 of them; replies 9 + 1 = 10, G 5.
    assert (year.contributions, year.replies) == (14, 10)
    assert year.top1_posts == pytest.approx(9 / 14) and year.top3_posts == pytest.approx(11 / 14)
    assert year.top1_replies == pytest.approx(0.5) and year.top3_replies == pytest.approx(0.7)
    # Threads d0 d1 d2 d3: 2 answered (2 h, 1 h): rate 0.5, median 1.5 h, (0+5+4+1)/4 = 2.5 replies per thread.
    assert (year.threads, year.answered, year.reply_rate) == (4, 2, 0.5)
    assert (year.median_response_hours, year.replies_per_thread) == (1.5, 2.5)
    assert (year.edges, year.peer_edges, year.cross_unit_edges, year.units_reached) == (9, 0, 5, 2)
    # The reply graph is a star around G: G is the one broker, betweenness 1.0.
    assert (year.brokers, year.top_betweenness) == (1, pytest.approx(1.0))
    # Product: G's 2 JP (Feb 10) and half of B's 2 JP (Feb 12: one of its two evidence is here) = 3 JP, 2 people.
    assert (feb.jp, year.jp, year.jp_people) == (Decimal("3.00"), Decimal("3.00"), 2)
    # Targets (20 JP): A has 20 + 1 + 1.33; G and B 2 each; the voided record counts nothing.
    assert (year.targets_met, year.targets_people) == (1, 6)
    assert (year.sessions, year.attendances, year.attendees) == (0, 0, 0)

    # --- cop-terbuka, Telegram + Zoom (facilitator A) ----------------------------------------------
    chat = communities["cop-terbuka"]
    assert chat.reply_links and chat.facilitators == 1
    jan, feb, mar, year = chat.months[1], chat.months[2], chat.months[3], chat.year
    assert (jan.members, jan.active, jan.newcomers, jan.activated, jan.ladder, jan.threads) == (
        1,
        1,
        1,
        1,
        (0, 1, 0),
        1,
    )
    # February: A B C D E X; X is pseudonymous (no roster row).
    assert (feb.members, feb.members_linked, feb.members_pseudonymous) == (6, 5, 1)
    assert (feb.active, feb.newcomers, feb.activated) == (6, 5, 5)
    # Days: B Feb 3 and 12 (2), the others 1: all on rung 1-2. A was 1-2 in January too: no move.
    assert (feb.ladder, feb.moved_up, feb.moved_down) == ((0, 6, 0), 0, 0)
    # Contributions A1 B2 C1 D1 E1 X1 = 7 (top 2/7, top 3 4/7); replies B C E X = 4 (1/4, 3/4).
    assert (feb.contributions, feb.replies, feb.posters, feb.repliers) == (7, 4, 6, 4)
    assert feb.top1_posts == pytest.approx(2 / 7) and feb.top3_posts == pytest.approx(4 / 7)
    assert feb.top1_replies == pytest.approx(1 / 4) and feb.top3_replies == pytest.approx(3 / 4)
    # Threads 2 (replies 3, 4, 7: first answer B after 1 h), 5 (replies 6 and, in March, 13 by D himself:
    # first answer E after 4 h), 8 (none): 3 threads, 2 answered, median 2.5 h, (3+2+0)/3 replies per thread.
    assert (feb.threads, feb.answered, feb.reply_rate) == (3, 2, pytest.approx(2 / 3))
    assert (feb.median_response_hours, feb.replies_per_thread) == (2.5, pytest.approx(5 / 3))
    # Edges B->A, C->B, E->D, X->A: peer to peer C->B and E->D (2 of 4); across units B(U2)-A(U1),
    # C(U3)-B(U2), E(U2)-D(U1) = 3 (X has no unit).
    assert (feb.edges, feb.peer_edges, feb.peer_share, feb.cross_unit_edges, feb.units_reached) == (4, 2, 0.5, 3, 3)
    # March: F first seen at the Zoom meeting (newcomer, never posted: not activated); 7 members, 6 active (X not).
    assert (mar.members, mar.members_linked, mar.members_pseudonymous) == (7, 6, 1)
    assert (mar.active, mar.active_rate, mar.newcomers, mar.activated) == (6, pytest.approx(6 / 7), 1, 0)
    # Days: A Mar 2 and 20 (2), B C D E F 1, X 0 -> (1, 6, 0); X 1-2 -> 0: one move down.
    assert (mar.ladder, mar.moved_up, mar.moved_down) == ((1, 6, 0), 0, 1)
    # Contributions C2 A1 E1 D1 = 5 (top 2/5, top 3 4/5); replies 10 11 12 13 = 4, one each (1/4, 3/4).
    assert (mar.contributions, mar.replies, mar.posters, mar.repliers) == (5, 4, 4, 4)
    assert mar.top1_posts == pytest.approx(0.4) and mar.top3_posts == pytest.approx(0.8)
    assert mar.top1_replies == pytest.approx(0.25) and mar.top3_replies == pytest.approx(0.75)
    # Thread 9: replies 10 (C himself), 11 (A, after 3 h), 12 -> 1 thread answered, 3 replies.
    assert (mar.threads, mar.answered, mar.median_response_hours, mar.replies_per_thread) == (1, 1, 3.0, 3.0)
    # Edges: 10 and 13 answer themselves (none); A->C and E->A touch A: 2 edges, 0 peer; both across units.
    assert (mar.edges, mar.peer_edges, mar.cross_unit_edges, mar.units_reached) == (2, 0, 2, 3)
    # Zoom: one meeting, 3 attendances by 3 people.
    assert (mar.sessions, mar.attendances, mar.attendees) == (1, 3, 3)
    # The year: 7 members (6 on the roster), all active; 7 newcomers, F never posted: 6 activated.
    assert (year.members, year.members_linked, year.active, year.newcomers, year.activated) == (7, 6, 7, 7, 6)
    # Days: A 4, B 3 (3+); C D E 2, X F 1 (1-2).
    assert year.ladder == (0, 5, 2)
    # Moves: down 1 (Mar: X) + 6 (Apr: A B C D E F) = 7.
    assert (year.moved_up, year.moved_down) == (0, 7)
    # Contributions 13: A3 C3 B2 D2 E2 X1 (top 3/13, top 3 8/13); replies 8: C2 E2 B1 X1 A1 D1 (2/8, 5/8).
    assert (year.contributions, year.replies) == (13, 8)
    assert year.top1_posts == pytest.approx(3 / 13) and year.top3_posts == pytest.approx(8 / 13)
    assert year.top1_replies == pytest.approx(0.25) and year.top3_replies == pytest.approx(5 / 8)
    # Threads 1 2 5 8 9: answered 2 (1 h), 5 (4 h), 9 (3 h): rate 3/5, median 3 h, 8/5 replies per thread.
    assert (year.threads, year.answered, year.reply_rate, year.median_response_hours) == (5, 3, 0.6, 3.0)
    assert year.replies_per_thread == pytest.approx(1.6)
    # Edges 6, peer 2 (1/3), across units 5.
    assert (year.edges, year.peer_edges, year.cross_unit_edges, year.units_reached) == (6, 2, 5, 3)
    # Graph A-B, B-C, D-E, X-A, A-C, E-A: removing A cuts X and {D, E} off, removing E cuts D off: 2 brokers.
    # A lies on every path of X-{B,C,D,E} (4), D-{B,C} (2), E-{B,C} (2): 8 of the 10 pairs -> 0.8.
    assert (year.brokers, year.top_betweenness) == (2, pytest.approx(0.8))
    # JP: A 1 (Feb 3) + B's other half 1 (Feb 12) = 2 in February; A's webinar 1.33 in March.
    assert (feb.jp, feb.jp_people, mar.jp, year.jp, year.jp_people) == (
        Decimal("2.00"), 2, Decimal("1.33"), Decimal("3.33"), 2,
    )  # fmt: skip
    assert (year.targets_met, year.targets_people, year.sessions) == (1, 6, 1)

    # --- the two told apart --------------------------------------------------------------------------
    # The forum is facilitator-centric: no peer-to-peer reply, half the replies by one member;
    # the chat is open: a third of its replies go peer to peer, the top member wrote a quarter.
    assert forum.year.peer_share == 0.0 and forum.year.top1_replies == 0.5
    assert chat.year.peer_share == pytest.approx(1 / 3) and chat.year.top1_replies == 0.25

    # --- WhatsApp: no reply links, nothing inferred -------------------------------------------------
    wa = communities["cop-wa"]
    assert not wa.reply_links and wa.year.threads is None and wa.year.edges == 0
    assert cop_view.raw(next(f for f in cop_view.FIGURES if f.key == "reply_rate"), wa.year, wa, True) == (
        "not available"
    )


def test_default_facilitators_are_the_top_three_posters(state, tmp_path):
    _deployment, settings, engine = state
    plain = settings.model_copy(update={"cop": settings.cop.model_copy(update={"facilitators": {}})})
    chat = _by_id(cop.cop_report(engine, plain, 2026, community=OPEN))["cop-terbuka"]
    # Top posters of the year: A 3, C 3, then B D E 2 each (the tie goes to the lower NIP: B).
    assert (chat.facilitators_configured, chat.facilitators) == (False, 3)
    # Edges without A, B or C at either end: E->D only (Feb) = 1 of 6.
    assert chat.year.peer_edges == 1


def test_brokers_are_members_with_high_betweenness_not_only_cut_points():
    import networkx as nx

    # Two triangles a-b-c and d-e-f joined twice (c-d, b-e): no member's removal splits the graph (no
    # articulation point), yet b, c, d, e carry every path between the triangles. By hand, pairs of the
    # other 5 members (10 pairs) and the share of each pair's shortest paths through the member:
    # c: a-d 1 (a-c-d), a-f 1/2 (a-c-d-f or a-b-e-f), b-d 1/2 (b-c-d or b-e-d) = 2 -> 0.2; b, d, e the
    # same by symmetry; a and f lie on no shortest path: 4 brokers, highest 0.2.
    twins = nx.Graph([("a", "b"), ("b", "c"), ("a", "c"), ("d", "e"), ("e", "f"), ("d", "f"), ("c", "d"), ("b", "e")])
    assert list(nx.articulation_points(twins)) == []
    assert cop._brokers(twins.edges) == (4, pytest.approx(0.2))
    # A chain a-b-c: b is on the one path a-c of the one pair -> 1.0; endpoints 0.
    assert cop._brokers(nx.path_graph(["a", "b", "c"]).edges) == (1, pytest.approx(1.0))
    assert cop._brokers([]) == (0, None)


def test_brokers_of_a_large_graph_are_sampled_with_a_fixed_seed():
    import networkx as nx

    # Above EXACT_BETWEENNESS_UP_TO members, SAMPLED_SOURCES sources: a star's centre still stands out
    # (every sampled leaf's paths to the other leaves go through it: n/(n-1) after networkx's rescaling
    # by n/k; 15/16 of that should the hub itself be drawn), and the edges' order does not change them.
    leaves = [f"m{i:03d}" for i in range(cop.EXACT_BETWEENNESS_UP_TO + 50)]
    star = nx.Graph([("hub", leaf) for leaf in leaves])
    backwards = nx.Graph([(leaf, "hub") for leaf in reversed(leaves)])
    brokers, top = cop._brokers(star.edges)
    assert (brokers, top) == cop._brokers(backwards.edges)
    assert brokers == 1 and 0.9 < top < 1.01


def test_organisers_see_small_cells_as_less_than_five_and_hr_sees_them(state):
    deployment, _settings, _engine = state
    organiser = json.loads(run(deployment, "report", "cop", "--year", "2026", "--format", "json").stdout)
    assert organiser["view"] == "organiser"
    chat = next(c for c in organiser["communities"] if c["community"] == "cop-terbuka")
    march = chat["months"]["2026-03"]
    # 1 newcomer, 1 member on rung 0, 1 moved down, 3 attendees: about 1 to 4 people -> "< 5".
    assert (march["newcomers"], march["ladder_0"], march["moved_down"], march["attendees"]) == ("< 5",) * 4
    # Shares of posts by 4 posters: hidden too; counts of 6 and 7 people and 0 are shown.
    assert march["top1_posts"] == "< 5" and march["activated"] == 0
    assert (march["members"], march["active"], march["ladder_1_2"]) == (7, 6, 6)
    assert chat["year"]["targets_met"] == "< 5" and chat["year"]["members_pseudonymous"] == "< 5"
    # The WhatsApp community: conversation figures are "not available", never guessed.
    wa = next(c for c in organiser["communities"] if c["community"] == "cop-wa")
    assert wa["year"]["reply_rate"] == "not available" and wa["year"]["threads"] == "not available"
    hr = json.loads(run(deployment, "report", "cop", "--year", "2026", "--format", "json", "--hr-view").stdout)
    chat = next(c for c in hr["communities"] if c["community"] == "cop-terbuka")
    assert chat["months"]["2026-03"]["newcomers"] == 1 and chat["year"]["targets_met"] == 1
    # No pseudonym and no NIP anywhere in either view: figures only.
    for text in (json.dumps(organiser), json.dumps(hr)):
        assert not any(nip in text for nip in UNITS) and "~" not in text


def test_table_is_indonesian_and_filters_by_community_and_unit(state):
    deployment, _settings, _engine = state
    deployment.env["COLUMNS"] = "200"
    out = run(deployment, "report", "cop", "--year", "2026", "--community", "cop-terbuka").stdout
    assert "KONTEKS" in out and "PRODUK" in out and "Anggota aktif" in out and "cop-terbuka" in out
    assert "course:77" not in out
    # Unit U3 (C, F) has members only in cop-terbuka.
    out = run(deployment, "report", "cop", "--year", "2026", "--unit", "U3").stdout
    assert "cop-terbuka" in out and "course:77" not in out
    refused = run(deployment, "report", "cop", "--year", "2026", "--community", "cop-x")
    # main() turns this into one sentence and exit 2 (tests/test_reports_hr.py runs that path as a subprocess).
    assert isinstance(refused.exception, EmptyAnswerError) and "cop-terbuka" in str(refused.exception)


def test_xlsx_and_pdf_are_in_the_cipp_layout_with_a_blank_stories_section(state, tmp_path):
    from openpyxl import load_workbook
    from pypdf import PdfReader

    deployment, _settings, _engine = state
    book, pdf = tmp_path / "cop.xlsx", tmp_path / "cop.pdf"
    assert run(deployment, "report", "cop", "--year", "2026", "--format", "xlsx", "-o", str(book)).exit_code == 0
    workbook = load_workbook(book)
    assert workbook.sheetnames == ["Komunitas", "cop-terbuka", "cop-wa", "course_77"]
    sheet = workbook["cop-terbuka"]
    labels = [row[0] for row in sheet.iter_rows(values_only=True)]
    sections = [label for label in labels if label in ("KONTEKS", "MASUKAN", "PROSES", "PRODUK")]
    assert sections == ["KONTEKS", "MASUKAN", "PROSES", "PRODUK"]
    stories = labels.index("CERITA (DIISI OLEH PENGELOLA KOMUNITAS)")
    assert all(value is None for row in sheet.iter_rows(min_row=stories + 2, values_only=True) for value in row)
    # Typed cells: the year's active rate (7 of 7) is a number shown as a percentage; small cells "< 5".
    rate = next(row for row in sheet.iter_rows() if row[0].value == "Tingkat keaktifan")
    assert rate[13].value == 1.0 and rate[13].number_format == "0.0%"
    newcomers = next(row for row in sheet.iter_rows(values_only=True) if row[0] == "Anggota baru")
    assert newcomers[1:4] == ("< 5", 5, "< 5")  # January 1, February 5, March 1
    wa = next(row for row in workbook["cop-wa"].iter_rows(values_only=True) if row[0] == "Utas yang dimulai")
    assert wa[13] == "tidak tersedia"
    assert run(deployment, "report", "cop", "--year", "2026", "--format", "pdf", "-o", str(pdf)).exit_code == 0
    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "KONTEKS" in text and "PRODUK" in text and "CERITA" in text and "cop-terbuka" in text


# --- the web page ---------------------------------------------------------------------------------


def _web(state):
    import re

    from lms_bridge.web import users as users_core
    from lms_bridge.web.app import create_app

    _deployment, settings, engine = state
    users_core.add_user(engine, "org", "organiser-password-1", role="organiser")
    users_core.add_user(engine, "hr", "hr-password-12345")
    users_core.add_user(engine, "org-u3", "organiser-password-1", ("U3",), role="organiser")
    app = create_app(settings, engine, key=b"k" * 32)
    app.config["TESTING"] = True

    def login(username: str, password: str):
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        client.post("/login", data={"csrf_token": token, "username": username, "password": password})
        return client

    return login


def test_the_organiser_page_shows_aggregates_only_and_hr_sees_exact_figures(state):
    login = _web(state)
    organiser = login("org", "organiser-password-1")
    # An organiser lands on Komunitas Belajar and cannot open HR's pages (persons, compliance).
    assert organiser.get("/").headers["Location"].endswith("/komunitas")
    assert organiser.get("/compliance?year=2026").headers["Location"].endswith("/komunitas")
    assert organiser.get(f"/person/{A}?year=2026").headers["Location"].endswith("/komunitas")
    page = organiser.get("/komunitas?year=2026&community=cop-terbuka").get_data(as_text=True)
    assert "Komunitas Belajar" in page and "Konteks" in page and "Produk" in page
    assert "Anggota baru" in page and "&lt; 5" in page and 'id="small-cells"' in page
    # Aggregates only: no NIP, no name, no pseudonym on the page.
    assert not any(nip in page for nip in UNITS) and "Orang " not in page and "~telegram" not in page
    # March's active rate (6 of 7) and the year's peer-to-peer share (2 of 6) as Indonesian percentages.
    assert "85,7 %" in page and "33,3 %" in page
    book = organiser.get("/komunitas.xlsx?year=2026&community=cop-terbuka")
    assert book.status_code == 200 and book.data[:2] == b"PK"
    assert organiser.get("/komunitas?year=2026&community=nope").status_code == 404
    # HR: the same page with exact figures (no "< 5").
    hr = login("hr", "hr-password-12345").get("/komunitas?year=2026&community=cop-terbuka").get_data(as_text=True)
    assert "&lt; 5" not in hr and 'id="small-cells"' not in hr
    # An organiser limited to unit U3 sees only the community with members of U3.
    scoped = login("org-u3", "organiser-password-1").get("/komunitas?year=2026").get_data(as_text=True)
    assert "cop-terbuka" in scoped and "course:77" not in scoped

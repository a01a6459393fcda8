"""HR roster import, pseudonyms, ``show_person`` and ``unresolved`` on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import Engine, MetaData, String, Text, func, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.settings import load_settings
from lms_bridge.errors import ConfigError, InputError
from lms_bridge.identifiers import email_identifier, phone_identifier, telegram_identifier
from lms_bridge.identity.pseudonym import make_pseudonymizer, pseudonymizer_from_settings
from lms_bridge.identity.roster import import_roster, show_person, unresolved
from lms_bridge.store.models import Evidence, IdentityLink, JPRecord, Person
from tests.fixtures.data import COMMUNITY_EXPORTS

ROSTER = COMMUNITY_EXPORTS / "roster.csv"
KEY = SecretStr("roster-test-key-0123456789abcdef")
PSEUDONYMIZE = make_pseudonymizer(KEY)
TODAY = date(2026, 6, 1)

BUDI = "198005122005011002"
SITI = "199203152019022001"
DEWI = "199202142022211007"
HEADER = "nip,nama,unit_kode,unit_nama,jabatan,jenis_asn,telepon,telegram_id,email"
#: Raw identifiers (and pieces of them) that must never reach the database.
RAW_VALUES = (
    "6281100000101",
    "81100000101",
    "811-0000-0101",
    "0811 0000 0101",
    "6281200000202",
    "0812-0000-0202",
    "100000001",
    "100000002",
    "100000003",
    "budi.s@",
    "siti.r@",
    "dewi.l@",
    "example.org",
)


@pytest.fixture
def engine(state_url: str) -> Engine:
    return store.open_engine(state_url, None)


def write(path: Path, *lines: str, encoding: str = "utf-8") -> Path:
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


def persons(engine: Engine) -> dict[str, Person]:
    with Session(engine) as session:
        return {p.nip: p for p in session.scalars(select(Person))}


def pseudonym_links(engine: Engine) -> dict[str, str]:
    """Pseudonym -> NIP of every roster link."""
    with Session(engine) as session:
        rows = session.execute(
            select(IdentityLink.local_id, Person.nip)
            .join(Person, Person.id == IdentityLink.person_id)
            .where(IdentityLink.source == "pseudonym", IdentityLink.site_id == "")
        )
        return {local_id: nip for local_id, nip in rows}


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def phone(raw: str) -> str:
    identifier = phone_identifier(raw)
    assert identifier is not None
    return PSEUDONYMIZE(identifier)


def telegram(raw: str) -> str:
    identifier = telegram_identifier(raw)
    assert identifier is not None
    return PSEUDONYMIZE(identifier)


def every_text_value(engine: Engine) -> list[str]:
    """Every text value of every column of every table."""
    metadata = MetaData()
    metadata.reflect(engine)
    values: list[str] = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text)]
            if columns:
                values.extend(str(v) for row in connection.execute(select(*columns)) for v in row if v is not None)
    return values


# --- pseudonyms -------------------------------------------------------------------------------


def test_pseudonym_is_truncated_hmac_sha256_of_the_canonical_text():
    expected = hmac.new(KEY.get_secret_value().encode(), b"phone:+6281100000101", hashlib.sha256).hexdigest()[:32]
    assert PSEUDONYMIZE("phone:+6281100000101") == expected
    assert make_pseudonymizer(SecretStr("another key"))("phone:+6281100000101") != expected


@settings(max_examples=200)
@given(
    operator=st.integers(min_value=811, max_value=899),
    rest=st.integers(min_value=0, max_value=99_999_999),
    key=st.text(min_size=1, max_size=40),
)
def test_equivalent_phone_notations_give_one_pseudonym(operator: int, rest: int, key: str):
    digits = f"{operator}{rest:08d}"
    spaced = f"{operator} {digits[3:7]} {digits[7:]}"
    notations = [
        f"+62{digits}",
        f"+62 {operator}-{digits[3:7]}-{digits[7:]}",
        f"0{spaced}",
        f"0{digits}",
        f"62{digits}",
        f"(+62) {spaced}",
        f"0062 {spaced}",
        f"+62 (0){digits}",
        f"\u202a+62 {spaced}\u202c",
    ]
    pseudonymize = make_pseudonymizer(SecretStr(key))
    identifiers = {phone_identifier(n) for n in notations}
    assert identifiers == {f"phone:+62{digits}"}
    pseudonyms = {pseudonymize(i) for i in identifiers if i}
    assert len(pseudonyms) == 1
    (value,) = pseudonyms
    assert len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def test_pseudonymizer_from_settings_needs_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = write(tmp_path / "lms-bridge.toml", "[deployment]", 'pseudonym_key_env = "ROSTER_TEST_KEY"')
    monkeypatch.delenv("ROSTER_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="pseudonym key ROSTER_TEST_KEY is not set"):
        pseudonymizer_from_settings(load_settings(config))
    monkeypatch.setenv("ROSTER_TEST_KEY", KEY.get_secret_value())
    assert pseudonymizer_from_settings(load_settings(config))("phone:+6281100000101") == phone("0811 0000 0101")


# --- import -----------------------------------------------------------------------------------


def test_shared_roster_imports_three_rows_and_reports_the_bad_one(engine: Engine):
    report = import_roster(engine, ROSTER, PSEUDONYMIZE, today=TODAY)
    assert (report.rows, report.imported, report.updated, report.unchanged) == (4, 3, 0, 0)
    assert report.skipped == [(5, "the NIP has 5 digits, expected 18")]
    assert report.warnings == []
    stored = persons(engine)
    assert set(stored) == {BUDI, SITI, DEWI}  # "19800512 200501 1 002" stored as its 18 digits
    budi = stored[BUDI]
    assert (budi.name, budi.unit_code, budi.unit_name, budi.position, budi.employee_type) == (
        "Budi Santoso",
        "BPSDM-01",
        "Bidang Pengembangan Kompetensi",
        "Widyaiswara Ahli Madya",
        "PNS",
    )
    assert budi.roster_updated_at is not None and budi.roster_updated_at.tzinfo is not None
    assert stored[DEWI].employee_type == "PPPK"
    links = pseudonym_links(engine)
    assert report.identities == report.links_added == len(links) == 8  # Dewi has no phone
    assert links[phone("+62 811-0000-0101")] == BUDI
    assert links[phone("0812 0000 0202")] == SITI
    assert links[telegram("user100000003")] == DEWI
    assert links[PSEUDONYMIZE(email_identifier("Budi.S@Example.org") or "")] == BUDI


def test_employee_type_comes_from_the_nip_when_the_file_has_none(engine: Engine, tmp_path: Path):
    roster = write(tmp_path / "r.csv", "nip,nama", f"{DEWI},Dewi", f"{BUDI},Budi")
    import_roster(engine, roster, PSEUDONYMIZE, today=TODAY)
    assert {nip: p.employee_type for nip, p in persons(engine).items()} == {DEWI: "PPPK", BUDI: "PNS"}


def test_reimport_is_idempotent(engine: Engine):
    import_roster(engine, ROSTER, PSEUDONYMIZE, today=TODAY)
    before = (count(engine, Person), count(engine, IdentityLink), pseudonym_links(engine))
    again = import_roster(engine, ROSTER, PSEUDONYMIZE, today=TODAY)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 3)
    assert (again.links_added, again.links_moved, again.links_removed) == (0, 0, 0)
    assert (count(engine, Person), count(engine, IdentityLink), pseudonym_links(engine)) == before


def test_two_phone_notations_give_one_link(engine: Engine, tmp_path: Path):
    first = write(tmp_path / "a.csv", HEADER, f"{BUDI},Budi,U1,,,,+62 811-0000-0101,,")
    second = write(tmp_path / "b.csv", HEADER, f"{BUDI},Budi,U1,,,,0811 0000 0101,,")
    import_roster(engine, first, PSEUDONYMIZE, today=TODAY)
    report = import_roster(engine, second, PSEUDONYMIZE, today=TODAY)
    assert (report.links_added, report.links_moved, report.links_removed) == (0, 0, 0)
    assert pseudonym_links(engine) == {phone("+6281100000101"): BUDI}
    both = write(tmp_path / "c.csv", HEADER, f'{BUDI},Budi,U1,,,,"+62 811-0000-0101 / 0811 0000 0101",,')
    assert import_roster(engine, both, PSEUDONYMIZE, today=TODAY).identities == 1


def test_identity_moved_to_another_nip_is_relinked_and_dropped_ones_unlinked(engine: Engine, tmp_path: Path):
    import_roster(engine, ROSTER, PSEUDONYMIZE, today=TODAY)
    # Budi's phone now belongs to Siti; Budi keeps his Telegram id and drops his e-mail.
    moved = write(
        tmp_path / "moved.csv",
        HEADER,
        f"{BUDI},Budi Santoso,BPSDM-01,Bidang Pengembangan Kompetensi,Widyaiswara Ahli Madya,PNS,,user100000001,",
        f"{SITI},Siti Rahmawati,BPSDM-03,Bidang Sertifikasi,Widyaiswara Ahli Pertama,PNS,"
        "0811 0000 0101,user100000002,siti.r@example.org",
    )
    report = import_roster(engine, moved, PSEUDONYMIZE, today=TODAY)
    assert (report.imported, report.updated, report.unchanged) == (0, 1, 1)
    assert (report.links_added, report.links_moved, report.links_removed) == (0, 1, 2)
    links = pseudonym_links(engine)
    assert links[phone("+62 811-0000-0101")] == SITI
    assert phone("0812-0000-0202") not in links  # Siti's old number is no longer listed
    assert sorted(nip for nip in links.values()) == [BUDI, DEWI, DEWI, SITI, SITI, SITI]
    assert persons(engine)[SITI].unit_code == "BPSDM-03"
    assert count(engine, Person) == 3  # Dewi, absent from the file, is kept


def test_no_raw_identifier_is_stored_anywhere(engine: Engine, tmp_path: Path):
    import_roster(engine, ROSTER, PSEUDONYMIZE, today=TODAY)
    variant = write(tmp_path / "v.csv", HEADER, f"{BUDI},Budi,U1,,,,0811 0000 0101,100000001,budi.s@example.org")
    import_roster(engine, variant, PSEUDONYMIZE, today=TODAY)
    values = every_text_value(engine)
    assert any(BUDI == v for v in values)  # the dump does see the persons table
    leaks = [(raw, v) for v in values for raw in RAW_VALUES if raw in v]
    assert leaks == []


def test_semicolon_delimiter_bom_english_headers_and_several_phones(engine: Engine, tmp_path: Path):
    roster = tmp_path / "excel.csv"
    roster.write_bytes(
        "\ufeff".encode()
        + "\r\n".join(
            [
                "NIP;Name;Unit_Code;Unit_Name;Position;Employee_Type;Phone;Telegram_ID;Email",
                "19800512.200501.1.002;Budi Santoso;BPSDM-01;Bidang Pengembangan Kompetensi, Jakarta;Widyaiswara;PNS;"
                "0811 0000 0101 / 0812 0000 0202;user100000001;budi.s@example.org",
                "199202142022211007;Dewi Lestari;BPSDM-01;;;pppk;;100000003;",
                "",
            ]
        ).encode()
    )
    report = import_roster(engine, roster, PSEUDONYMIZE, today=TODAY)
    assert (report.imported, report.skipped, report.warnings) == (2, [], [])
    stored = persons(engine)
    assert stored[BUDI].unit_name == "Bidang Pengembangan Kompetensi, Jakarta"
    assert stored[DEWI].employee_type == "PPPK"
    links = pseudonym_links(engine)
    assert links[phone("+6281100000101")] == links[phone("+6281200000202")] == BUDI
    assert links[telegram("user100000003")] == DEWI
    comma = write(tmp_path / "comma.csv", HEADER, f"{SITI},Siti,,,,,0813 0000 0303;0814 0000 0404,,")
    import_roster(engine, comma, PSEUDONYMIZE, today=TODAY)
    assert pseudonym_links(engine)[phone("0814-0000-0404")] == SITI


def test_bad_rows_and_bad_identifiers(engine: Engine, tmp_path: Path):
    roster = write(
        tmp_path / "bad.csv",
        HEADER,
        f"{BUDI},Budi,U1,,,,not a phone,@budi,budi(at)example.org",  # line 2: imported, 3 warnings
        "",
        "19801332 200501 1 002,Bad Date,U1,,,,,,",  # line 4: 18 digits, no such birth date
        f"{SITI},Siti,U1,,,Honorer,,,",  # line 5: unknown employee type
        f"{BUDI},Budi Again,U1,,,,,,",  # line 6: duplicate NIP
        f"{DEWI},Dewi,U1,Unit,Pos,PPPK,,,,extra",  # line 7: too many fields
        ",No NIP,U1,,,,,,",  # line 8
    )
    report = import_roster(engine, roster, PSEUDONYMIZE, today=TODAY)
    skipped = dict(report.skipped)
    assert sorted(skipped) == [4, 5, 6, 7, 8]
    assert skipped[4].startswith("the NIP is not a valid PNS or PPPK number")
    assert skipped[5] == "the employee type is neither PNS nor PPPK"
    assert skipped[6] == "the NIP is already on line 2"
    assert skipped[7].startswith("has 10 fields but the header has 9")
    assert skipped[8] == "no NIP"
    assert [line for line, _ in report.warnings] == [2, 2, 2]
    assert all("not a valid" in message for _, message in report.warnings)
    assert set(persons(engine)) == {BUDI}
    assert pseudonym_links(engine) == {}


def test_an_identifier_on_two_nips_is_linked_to_neither(engine: Engine, tmp_path: Path):
    roster = write(
        tmp_path / "shared.csv",
        HEADER,
        f"{BUDI},Budi,,,,,0811 0000 0101,,",
        f"{SITI},Siti,,,,,+62 811 0000 0101,user100000002,",
    )
    report = import_roster(engine, roster, PSEUDONYMIZE, today=TODAY)
    assert report.warnings == [
        (2, "phone number is also on line(s) 2, 3 of other NIPs: not linked"),
        (3, "phone number is also on line(s) 2, 3 of other NIPs: not linked"),
    ]
    assert pseudonym_links(engine) == {telegram("100000002"): SITI}


def test_file_without_nip_column_is_refused_whole(engine: Engine, tmp_path: Path):
    roster = write(tmp_path / "nonip.csv", "nama,telepon", "Budi,0811 0000 0101")
    with pytest.raises(InputError, match=f"roster {roster} has no nip column"):
        import_roster(engine, roster, PSEUDONYMIZE, today=TODAY)
    with pytest.raises(InputError, match="is not UTF-8"):
        import_roster(
            engine,
            write(tmp_path / "latin.csv", "nip,nama", f"{BUDI},Bü", encoding="cp1252"),
            PSEUDONYMIZE,
            today=TODAY,
        )
    with pytest.raises(InputError, match="cannot be read"):
        import_roster(engine, tmp_path / "missing.csv", PSEUDONYMIZE, today=TODAY)
    with pytest.raises(InputError, match="is empty"):
        import_roster(engine, write(tmp_path / "empty.csv", ""), PSEUDONYMIZE, today=TODAY)
    assert count(engine, Person) == 0


def test_dry_run_stores_nothing(engine: Engine):
    report = import_roster(engine, ROSTER, PSEUDONYMIZE, today=TODAY, dry_run=True)
    assert (report.imported, report.links_added) == (3, 8)
    assert count(engine, Person) == count(engine, IdentityLink) == 0


def test_person_known_from_an_lms_gets_roster_fields(engine: Engine):
    with Session(engine) as session, session.begin():
        session.add(Person(nip=BUDI, employee_type="PNS", created_at=datetime.now(UTC)))
    report = import_roster(engine, ROSTER, PSEUDONYMIZE, today=TODAY)
    assert report.imported == 3
    assert persons(engine)[BUDI].name == "Budi Santoso" and count(engine, Person) == 3


# --- show and unresolved ----------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def evidence(source: str, site: str, actor: str, *, nip: str | None = None, at: datetime = T0) -> Evidence:
    return Evidence(
        statement_id=str(uuid.uuid4()),
        source=source,
        site_id=site,
        local_actor=actor,
        nip=nip,
        kind="message_posted",
        occurred_at=at,
        object_key="g",
        facts="{}",
    )


def jp_record(nip: str, period: str, jp: str, status: str = "active") -> JPRecord:
    values = dict(
        nip=nip,
        rule_id="cop-chat",
        rule_version=1,
        period=period,
        activity_key=str(uuid.uuid4()),
        revision=0,
        jp=jp,
        evidence_hash="0" * 64,
        statement_id=str(uuid.uuid4()),
        status=status,
    )
    if "occurred_at" in JPRecord.__table__.c:  # added by the JP ledger
        values["occurred_at"] = T0
    return JPRecord(**values)


@pytest.fixture
def activity(engine: Engine) -> Engine:
    """The sample roster, a Moodle account of Budi's, and evidence from every kind of actor."""
    import_roster(engine, ROSTER, PSEUDONYMIZE, today=TODAY)
    stranger = phone("0899 1234 5678")
    with Session(engine) as session, session.begin():
        budi_id = session.scalar(select(Person.id).where(Person.nip == BUDI))
        session.add_all(
            [
                IdentityLink(source="moodle", site_id="kemenpan", local_id="42", person_id=budi_id),
                IdentityLink(source="moodle", site_id="kemenpan", local_id="88", person_id=None),  # no NIP, no activity
                IdentityLink(source="moodle", site_id="kemenpan", local_id="99", person_id=None),  # no NIP, activity
                evidence("moodle", "lms-x", "7", nip=BUDI),  # the source gave the NIP
                evidence("moodle", "kemenpan", "42"),  # linked account
                evidence("whatsapp", "cop-wi", phone("+62 811-0000-0101")),  # roster pseudonym
                evidence("telegram", "cop-tg", telegram("user100000001")),
                evidence("moodle", "kemenpan", "42", nip=SITI),  # the source's own NIP wins over the link
                *[evidence("whatsapp", "cop-wi", stranger, at=T0 + timedelta(days=d)) for d in (3, 0, 9)],
                evidence("moodle", "kemenpan", "99", at=T0 + timedelta(hours=5)),
                evidence("moodle", "kemenpan", "99", at=T0 + timedelta(hours=1)),
                evidence("zoom", "webinar-1", phone("0811 0000 0101")),  # another source, same roster pseudonym
                jp_record(BUDI, "2026-03-02", "2"),
                jp_record(BUDI, "2026-03-03/2026-03-09", "1.5"),
                jp_record(BUDI, "2026-03-04", "3", status="voided"),
                jp_record(BUDI, "2025-12-31", "0.5"),
                jp_record(SITI, "2026-03-02", "7"),
            ]
        )
    return engine


def test_show_person_gathers_links_evidence_and_jp(activity: Engine):
    person = show_person(activity, "19800512 200501 1 002")
    assert person is not None
    assert (person.nip, person.name, person.unit_code, person.employee_type) == (
        BUDI,
        "Budi Santoso",
        "BPSDM-01",
        "PNS",
    )
    assert [(a.source, a.site_id, a.local_id) for a in person.accounts] == [("moodle", "kemenpan", "42")]
    assert person.chat_identities == 3
    assert person.evidence == {"moodle": 2, "telegram": 1, "whatsapp": 1, "zoom": 1}
    assert person.jp_by_year == {"2025": Decimal("0.5"), "2026": Decimal("3.5")}
    dewi = show_person(activity, DEWI)
    assert dewi is not None and (dewi.evidence, dewi.jp_by_year, dewi.accounts) == ({}, {}, [])
    assert show_person(activity, "198005122005011003") is None
    with pytest.raises(InputError):
        show_person(activity, "12345")


def test_unresolved_lists_actors_without_nip_most_active_first(activity: Engine, tmp_path: Path):
    actors = unresolved(activity)
    assert [(a.source, a.site_id, a.local_id, a.activities) for a in actors] == [
        ("whatsapp", "cop-wi", phone("0899 1234 5678"), 3),
        ("moodle", "kemenpan", "99", 2),
        ("moodle", "kemenpan", "88", 0),
    ]
    assert (actors[0].first_at, actors[0].last_at) == (T0, T0 + timedelta(days=9))
    assert (actors[1].first_at, actors[1].last_at) == (T0 + timedelta(hours=1), T0 + timedelta(hours=5))
    assert actors[2].first_at is None and actors[2].last_at is None
    assert [a.local_id for a in unresolved(activity, limit=2)] == [actors[0].local_id, "99"]
    # A roster that lists the stranger's phone resolves them.
    roster = write(tmp_path / "r.csv", HEADER, f"{DEWI},Dewi Lestari,BPSDM-01,,,PPPK,0899-1234-5678,user100000003,")
    import_roster(activity, roster, PSEUDONYMIZE, today=TODAY)
    assert [a.local_id for a in unresolved(activity)] == ["99", "88"]
    dewi = show_person(activity, DEWI)
    assert dewi is not None and dewi.evidence == {"whatsapp": 3}

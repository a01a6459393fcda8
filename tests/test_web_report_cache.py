"""The web page's cached compliance report and the report version every writer of its tables bumps.

The report reads ``ledger_records``, ``persons``, ``person_units`` and ``jp_pending``. A watch on the
engine's SQL (:class:`Watch`) fails any transaction of these tests that writes one of those tables and
commits without bumping ``report_version``; the writers are driven through their real entry points
(``people import``'s ``store_roster``, ``ledger sync`` against a real Ralph, ``jp compute``, ``forget``),
on SQLite and PostgreSQL. Then the page: a new record mirrored by ``ledger sync`` shows at the next
request, an edited ``[[targets]]`` too, the cached report equals a fresh compute, and requests that
arrive together compute it once.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import event, insert

from lms_bridge import store
from lms_bridge.config.settings import JPSettings, Settings, load_settings
from lms_bridge.config.statements import statement_settings
from lms_bridge.jp.engine import run_jp
from lms_bridge.jp.rules import DEFAULT_RULES
from lms_bridge.ledger import reports
from lms_bridge.ledger.mirror import sync_ledger
from lms_bridge.outbox import voids
from lms_bridge.store import LinkIn, report_version
from lms_bridge.store.models import JPPending, LedgerRecord, Run
from lms_bridge.store.people import RosterPerson, person_ids, store_roster
from lms_bridge.web import users as users_core
from lms_bridge.web.app import create_app
from lms_bridge.web.report_cache import ReportCache
from xapi.lrs_client import LRSClient
from xapi.statements import JPCreditIn, build_jp_statement, build_void_statement

A, B, X = "198805172014032004", "199001012015031001", "196811111990031001"
AUTHORITY = "https://siasn.bkn.go.id"
KEY = "report-cache-test-pseudonym-key"
PASSWORD = "correct horse battery"  # noqa: S105 - a test password
REPORT_WRITE = re.compile(
    r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(ledger_records|persons|person_units|jp_pending)\b", re.I
)
BUMP = re.compile(r"^\s*UPDATE\s+\"?report_version\b", re.I)


class Watch:
    """Every committed transaction that changed rows of the report's tables: with or without a version bump."""

    def __init__(self, engine) -> None:
        self.written: set[str] = set()
        self.unbumped: list[list[str]] = []
        event.listen(engine, "after_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", lambda connection: connection.info.pop("report_watch", None))

    def _statement(self, connection, cursor, statement, parameters, context, executemany) -> None:
        state = connection.info.setdefault("report_watch", {"wrote": [], "bumped": False})
        found = REPORT_WRITE.match(statement)
        if BUMP.match(statement):
            state["bumped"] = True
        elif found and cursor.rowcount != 0 and not re.search(r"ON CONFLICT \(nip\) DO NOTHING", statement):
            # (An LMS sync's new persons carry only the NIP's own type: see the test below.)
            state["wrote"].append(found.group(1))
            self.written.add(found.group(1))

    def _commit(self, connection) -> None:
        state = connection.info.pop("report_watch", None)
        if state and state["wrote"] and not state["bumped"]:
            self.unbumped.append(state["wrote"])


HELD = {
    "nip": A,
    "rule_id": "training-completed",
    "period": "2026-05-02",
    "period_day": date(2026, 5, 2),
    "activity_key": "moodle/lms/course:99",
    "site_id": "lms",
    "course": "course 99",
    "evidence_ids": "[]",
    "evidence_count": 0,
    "computed_at": datetime(2026, 5, 3, tzinfo=UTC),
}


def _jp(nip: str, jp: str, day: str, key: str):
    return build_jp_statement(
        statement_settings(Settings()),
        JPCreditIn(
            nip=nip,
            rule_id="cop",
            rule_version=1,
            rule_code="C10",
            period=day,
            activity_key=key,
            revision=1,
            jp=Decimal(jp),
            evidence_ids=(),
            occurred_at=datetime.fromisoformat(day + "T03:00:00+00:00"),
        ),
        authority=AUTHORITY,
    )


def _post(lrs, *statements) -> None:
    with LRSClient(lrs.url, lrs.username, lrs.password) as client:
        client.post_statements([s.body for s in statements])


def _sync(engine, settings: Settings, lrs) -> None:
    with LRSClient(lrs.url, lrs.username, lrs.password) as client:
        sync_ledger(engine, settings, client)


def _roster(unit_of_b: str = "U1") -> list[RosterPerson]:
    return [RosterPerson(A, "PNS", "Ani", "U1", "Unit Satu", "WI"), RosterPerson(B, "PNS", "Budi", unit_of_b, "", "WI")]


@pytest.fixture
def settings(tmp_path, state_url, monkeypatch) -> Settings:
    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", KEY)
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "{state_url}"\n', encoding="utf-8")
    return load_settings(config)


def test_every_writer_of_the_report_bumps_the_version_in_its_own_transaction(settings, state_url, fresh_ralph):
    engine = store.open_engine(state_url)
    watch = Watch(engine)

    def version() -> int:
        with engine.connect() as connection:
            return report_version.current(connection)

    def changes(write) -> tuple[bool, bool]:
        """(version moved, report changed) by ``write()``."""
        before, report = version(), reports.compliance(engine, settings, 2026)
        write()
        return version() > before, reports.compliance(engine, settings, 2026) != report

    try:
        assert changes(lambda: store_roster(engine, _roster(), effective=date(2026, 1, 1))) == (True, True)
        assert changes(lambda: store_roster(engine, _roster("U2"), dry_run=True)) == (False, False)
        assert changes(lambda: store_roster(engine, _roster("U2"), effective=date(2026, 2, 1))) == (True, True)
        voided = _jp(A, "12", "2026-03-02", "day")
        _post(fresh_ralph, voided, _jp(B, "4", "2026-04-10", "day"), _jp(X, "8", "2026-01-20", "day"))
        assert changes(lambda: _sync(engine, settings, fresh_ralph)) == (True, True)
        void = build_void_statement(
            statement_settings(settings), voided.id, nip=A, authority=AUTHORITY, occurred_at=datetime.now(UTC)
        )
        _post(fresh_ralph, void)
        assert changes(lambda: _sync(engine, settings, fresh_ralph)) == (True, True)
        assert changes(lambda: _sync(engine, settings, fresh_ralph)) == (False, False)  # nothing new: kept
        with engine.begin() as connection:  # a credit an earlier jp compute held (its course has no JP yet)
            connection.execute(insert(JPPending), [HELD])
            report_version.bump(connection)
        assert reports.person_standing(engine, settings, A, 2026).pending == 1
        # This run has no evidence of it any more: jp_pending is rewritten without it.
        assert changes(lambda: run_jp(engine, settings, statement_settings(settings), years=[2026])) == (True, True)
        assert changes(lambda: voids.forget_person(engine, settings, B)) == (True, True)
        assert watch.written == {"ledger_records", "persons", "person_units", "jp_pending"}
        assert watch.unbumped == []
    finally:
        engine.dispose()


def test_an_lms_sync_adding_a_person_changes_no_report(state_url):
    """``commit_batch`` stores persons an LMS account names without bumping: the report reads the same from them."""
    engine = store.open_engine(state_url)
    try:
        store_roster(engine, _roster(), effective=date(2026, 1, 1))
        with engine.begin() as connection:
            connection.execute(
                insert(LedgerRecord),
                [
                    {
                        "statement_id": "x-1",
                        "nip": X,
                        "jp": "8",
                        "period": "2026-01-20",
                        "period_day": date(2026, 1, 20),
                        "object_id": "o",
                        "timestamp": datetime(2026, 1, 20, tzinfo=UTC),
                    }
                ],
            )
        settings = Settings()
        before = reports.compliance(engine, settings, 2026)
        store.commit_batch(
            engine, site_id="lms", stream="users", statements=(), position=None, links=[LinkIn("moodle", "lms", "9", X)]
        )
        assert X in person_ids(engine, [X])  # the person row was made
        assert reports.compliance(engine, settings, 2026) == before
    finally:
        engine.dispose()


def _login(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"csrf_token": token, "username": "hr", "password": PASSWORD, "next": ""})
    assert answer.status_code == 302


def _csv_jp(client, nip: str) -> tuple[str, str]:
    """(JP, target) of a person in the page's CSV download (in English: ``,`` and a decimal point)."""
    text = client.get("/compliance.csv?year=2026&as_of=2026-12-31").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text)))
    row = next(row for row in rows[1:] if re.sub(r"\D", "", row[2]) == nip)
    return row[5], row[6]


def test_the_page_shows_a_new_record_after_ledger_sync_and_an_edited_target(tmp_path, settings, state_url, fresh_ralph):
    rules = tmp_path / "jp_rules.toml"
    rules.write_text(DEFAULT_RULES.read_text(encoding="utf-8"), encoding="utf-8")
    settings = settings.model_copy(update={"jp": JPSettings(rules_file=rules)})
    engine = store.open_engine(state_url)
    try:
        store_roster(engine, _roster(), effective=date(2026, 1, 1))
        users_core.add_user(engine, "hr", PASSWORD)
        _post(fresh_ralph, _jp(A, "12", "2026-03-02", "day"))
        _sync(engine, settings, fresh_ralph)
        app = create_app(settings, engine, key=b"k" * 32)
        cache: ReportCache = app.extensions["lms_bridge_report_cache"]
        client = app.test_client()
        _login(client)
        client.get("/language/en")
        assert client.get("/compliance?year=2026&as_of=2026-12-31").status_code == 200
        assert _csv_jp(client, A) == ("12", "20")
        assert cache.computed == 1  # the page and the download: one report

        _post(fresh_ralph, _jp(A, "4.5", "2026-04-10", "day"))
        assert _csv_jp(client, A) == ("12", "20")  # not mirrored yet
        _sync(engine, settings, fresh_ralph)
        assert _csv_jp(client, A) == ("16.5", "20")
        page = client.get("/compliance?year=2026&as_of=2026-12-31").get_data(as_text=True)
        assert "16,5" in page or "16.5" in page
        assert cache.computed == 2

        rules.write_text(rules.read_text(encoding="utf-8") + '\n[[targets]]\nemployee_type = "*"\njp = 24\n')
        assert _csv_jp(client, A) == ("16.5", "24")
        assert cache.computed == 3

        end = date(2026, 12, 31)
        assert cache.get(2026, end).report == reports.compliance(engine, settings, 2026, as_of=end)
        june = date(2026, 6, 30)
        assert cache.get(2026, june).report == reports.compliance(engine, settings, 2026, as_of=june)
    finally:
        engine.dispose()


def test_requests_that_arrive_together_compute_the_report_once_and_the_cache_stays_bounded(state_url):
    engine = store.open_engine(state_url)
    try:
        store_roster(engine, _roster(), effective=date(2026, 1, 1))
        cache = ReportCache(engine, Settings(), entries=2)
        start = threading.Barrier(8)
        got = []

        def ask() -> None:
            start.wait()
            got.append(cache.get(2026, date(2026, 12, 31)))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert cache.computed == 1 and len({id(entry) for entry in got}) == 1
        for month in range(1, 7):
            cache.get(2026, date(2026, month, 28))
        assert len(cache) == 2
        assert cache.computed == 7
    finally:
        engine.dispose()


def test_migration_0012_makes_the_counter_row_and_a_bump_moves_it(state_url):
    engine = store.open_engine(state_url)
    try:
        with engine.connect() as connection:
            assert report_version.current(connection) == 0
        with engine.begin() as connection:
            report_version.bump(connection)
        with engine.connect() as connection:
            assert report_version.current(connection) == 1
    finally:
        engine.dispose()


def _login_as(client, username: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"csrf_token": token, "username": username, "password": PASSWORD, "next": ""})
    assert answer.status_code == 302


def test_a_kept_page_body_is_never_shown_to_a_user_language_or_moment_it_was_not_made_for(settings, state_url):
    """The body of /compliance is kept per report; its key holds the user's units, the language and freshness."""
    engine = store.open_engine(state_url)
    try:
        store_roster(engine, _roster(unit_of_b="U2"), effective=date(2026, 1, 1))
        users_core.add_user(engine, "hr", PASSWORD)
        users_core.add_user(engine, "unit1", PASSWORD, units=("U1",))
        app = create_app(settings, engine, key=b"k" * 32)
        cache: ReportCache = app.extensions["lms_bridge_report_cache"]
        everyone, limited = app.test_client(), app.test_client()
        _login_as(everyone, "hr")
        _login_as(limited, "unit1")
        url = "/compliance?year=2026&as_of=2026-12-31"

        first = everyone.get(url).get_data(as_text=True)
        assert f'data-nip="{A}"' in first and f'data-nip="{B}"' in first
        entry = cache.get(2026, date(2026, 12, 31))
        assert len(entry.pages) == 1
        assert everyone.get(url).get_data(as_text=True) == first and len(entry.pages) == 1  # kept, not rendered again

        # The same address for a user of unit U1 only: B (unit U2) is in no kept body this user gets.
        mine = limited.get(url).get_data(as_text=True)
        # The CSRF token is random text: it may hold "U2" by chance, so it is left out of the search.
        shown = re.sub(r'name="csrf_token" value="[^"]*"', "", mine)
        assert f'data-nip="{A}"' in shown and B not in shown and "U2" not in shown
        assert len(entry.pages) == 2
        assert "Semua unit kerja saya" in mine and "Semua unit kerja saya" not in first

        # The other language: its own body.
        everyone.get("/language/en")
        english = everyone.get(url).get_data(as_text=True)
        assert "Civil servants" in english and "Civil servants" not in first and len(entry.pages) == 3

        # A ledger run finishing changes the freshness line at the next request, with the same report.
        with engine.begin() as connection:
            connection.execute(
                insert(Run).values(
                    command="ledger",
                    started_at=datetime(2026, 5, 1, 2, 0, tzinfo=UTC),
                    finished_at=datetime(2026, 5, 1, 2, 5, tzinfo=UTC),
                    status="ok",
                )
            )
        fresher = everyone.get(url).get_data(as_text=True)
        assert "ledger sync not recorded" in english and "ledger sync not recorded" not in fresher
        assert "09.05 WIB" in fresher or "9:05" in fresher
        # The header around a kept body is the requester's own: name and CSRF token.
        assert 'id="current-user">hr<' in fresher and 'id="current-user">unit1<' in mine
        assert cache.computed == 1
    finally:
        engine.dispose()

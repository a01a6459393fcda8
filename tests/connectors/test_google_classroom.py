"""Google Classroom pulls: the fake Classroom over real HTTP, real SQLite, the real CLI into real Ralph.

Nothing is mocked: the fake (fakes/classroom.py) verifies the service account's RS256 JWT with
the public half of a key generated here (cryptography; no private key is committed) and answers in
Classroom's documented shapes, with faults injected per test (expired token, 429, 502).
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fakes.classroom import (
    TOKEN_PREFIX,
    FakeClassroom,
    make_service_account,
    private_key_lines,
    shared_service_account,
)
from lms_bridge import store
from lms_bridge.config.settings import Settings, load_settings
from lms_bridge.ingest import runner as sync_core
from lms_bridge.store.db import make_engine, upgrade
from lms_bridge.store.models import OutboxRow
from tests.fixtures.data import COMMUNITY_EXPORTS
from tests.fixtures.lrs import lrs_statements
from tests.proof.support import CAPTURED

PSEUDONYM_KEY = "classroom-test-pseudonym-key-8c1f"
SOURCE_KEY = "https://lms-bridge.id/xapi/extensions/source"
ADMIN = "admin@bkpsdm.example.org"


@pytest.fixture
def classroom() -> Iterator[FakeClassroom]:
    key, public_pem = shared_service_account()
    with FakeClassroom(public_pem=public_pem, client_email=key["client_email"], subject=ADMIN) as fake:
        fake.add_course("c1", "Pelatihan Dasar CPNS")
        fake.add_course("c2", "Komunitas Widyaiswara")
        fake.add_course("c9", "Arsip", state="ARCHIVED")
        fake.add_student("c1", "u1", "budi.s@example.org", "Budi Santoso")
        fake.add_student("c1", "u2", "siti.r@example.org", "Siti Rahmawati")
        fake.add_student("c2", "u3", None, "Tanpa Email")
        fake.add_profile("t1", "dewi.l@example.org", "Dewi Lestari")
        fake.add_submission("c1", "w1", "u1", "Tugas 1: Nilai Dasar ASN", turned_in="2024-03-12T02:00:00Z")
        fake.add_submission(
            "c1",
            "w2",
            "u1",
            "Tugas 2",
            turned_in="2024-03-12T03:00:00Z",
            state="RETURNED",
            updated="2024-03-13T01:00:00Z",
        )
        fake.add_submission("c1", "w1", "u2", "Tugas 1: Nilai Dasar ASN", turned_in="2024-03-12T04:00:00Z")
        fake.add_submission("c2", "w3", "u3", "Refleksi", turned_in="2024-03-14T02:00:00Z")
        fake.add_announcement("c2", "a1", "t1", "Selamat datang di komunitas widyaiswara", "2024-03-12T01:00:00Z")
        fake.add_announcement("c2", "a2", "t1", "Jadwal diskusi minggu depan", "2024-03-13T01:00:00Z")
        yield fake


def key_file(folder: Path, fake: FakeClassroom, key: dict | None = None, mode: int = 0o600) -> Path:
    """The service account's JSON key file, pointing at the fake's token endpoint."""
    path = folder / "service-account.json"
    path.write_text(json.dumps({**(key or shared_service_account()[0]), "token_uri": fake.token_uri}))
    path.chmod(mode)
    return path


def source_toml(fake: FakeClassroom, extra: str = "") -> str:
    return textwrap.dedent(f"""
        [[sources]]
        id = "kelas-bkpsdm"
        type = "google_classroom"
        key_file = "service-account.json"
        subject = "{ADMIN}"
        api_url = "{fake.url}"
        backoff_base = 0.05
        communities = {{ "c2" = "cop-wi" }}
        """) + textwrap.dedent(extra)


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str) -> Settings:
    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", PSEUDONYM_KEY)
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n' + toml)
    return load_settings(config, environ={})


def _sync(settings: Settings) -> sync_core.SiteReport:
    engine = make_engine(settings.state.url)
    upgrade(engine)
    ((source, streams),) = sync_core.sync_sources(settings)
    return sync_core.sync_source(engine, settings, source, streams=streams)


def _bodies(settings: Settings) -> dict[str, dict]:
    with Session(make_engine(settings.state.url)) as session:
        rows = [json.loads(body) for body in session.scalars(select(OutboxRow.body))]
    return {row["context"]["extensions"][SOURCE_KEY]["native_id"]: row for row in rows}


def test_first_pull_pages_then_incremental_pulls_read_only_what_is_new(tmp_path, monkeypatch, classroom):
    key_file(tmp_path, classroom)
    settings = _settings(tmp_path, monkeypatch, source_toml(classroom, "page_size = 1\n"))
    first = _sync(settings)
    assert first.error is None
    assert first.streams["submissions"].new == 4 and first.streams["announcements"].new == 2
    assert first.calls["courses"] == 2 and first.calls["studentSubmissions"] == 4  # page_size 1: one record a page
    bodies = _bodies(settings)
    assert set(bodies) == {
        "course=c1|work=w1|user=u1",
        "course=c1|work=w2|user=u1",
        "course=c1|work=w1|user=u2",
        "course=c2|work=w3|user=u3",
        "course=c2|announcement=a1",
        "course=c2|announcement=a2",
    }
    returned = bodies["course=c1|work=w2|user=u1"]
    assert returned["verb"]["display"]["en-US"] == "completed" and returned["result"]["completion"] is True
    assert returned["timestamp"] == "2024-03-12T03:00:00Z"  # first turned in, not returned
    assert returned["object"]["definition"]["name"]["en-US"] == "Tugas 2"
    assert returned["context"]["contextActivities"]["parent"][0]["definition"]["name"]["en-US"] == (
        "Pelatihan Dasar CPNS"
    )
    post = bodies["course=c2|announcement=a2"]
    assert post["verb"]["id"] == "http://id.tincanapi.com/verb/replied"  # the vocabulary's post_created
    assert post["context"]["contextActivities"]["grouping"][0]["id"].endswith("/community/cop-wi")
    assert post["result"]["extensions"]["https://lms-bridge.id/xapi/extensions/text-length"] == 27
    text = json.dumps(list(bodies.values()))
    assert "example.org" not in text and "Budi" not in text and "Jadwal" not in text
    engine = make_engine(settings.state.url)
    assert store.get_cursor(engine, "kelas-bkpsdm", "announcements") == {
        "courses": {"c2": "2024-03-13T01:00:00.000000Z"}
    }
    assert store.get_cursor(engine, "kelas-bkpsdm", "submissions") == {
        "courses": {"c1": "2024-03-13T01:00:00.000000Z", "c2": "2024-03-14T02:00:00.000000Z"}
    }

    # Nothing new: no statement, and only the lists (no course work, roster or profile call).
    again = _sync(settings)
    assert again.error is None and again.streams["submissions"].new == 0 and again.streams["announcements"].new == 0
    assert set(again.calls) == {"token", "courses", "studentSubmissions", "announcements"}
    assert again.calls["announcements"] == 2  # one page per course: the newest is already known

    # A new submission and a new announcement: only they are added.
    classroom.add_submission("c1", "w2", "u2", "Tugas 2", turned_in="2024-03-15T02:00:00Z")
    classroom.add_announcement("c2", "a3", "t1", "Rekaman diskusi", "2024-03-15T03:00:00Z")
    third = _sync(settings)
    assert third.streams["submissions"].new == 1 and third.streams["announcements"].new == 1
    assert len(_bodies(settings)) == 8


def test_expired_token_429_and_502_are_retried_and_the_pull_completes(tmp_path, monkeypatch, classroom):
    key_file(tmp_path, classroom)
    settings = _settings(tmp_path, monkeypatch, source_toml(classroom))
    classroom.inject_fault("expired", path="studentSubmissions")
    classroom.inject_fault("429", path="announcements")
    classroom.inject_fault("502", path="courses", times=1)
    started = time.monotonic()
    report = _sync(settings)
    assert report.error is None and report.streams["submissions"].new == 4
    assert classroom.tokens_issued == 2  # the 401 fetched a new token once
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured


def test_bad_keys_stop_the_source_in_one_sentence(tmp_path, monkeypatch, classroom):
    path = key_file(tmp_path, classroom, mode=0o644)
    settings = _settings(tmp_path, monkeypatch, source_toml(classroom))
    report = _sync(settings)
    assert report.error == (f"service account key file {path} is readable by others (mode 0644); run: chmod 600 {path}")
    # A key the domain does not know: the fake checks the JWT signature and refuses it.
    other, _ = make_service_account(classroom.token_uri, client_email=shared_service_account()[0]["client_email"])
    key_file(tmp_path, classroom, key=other)
    report = _sync(settings)
    assert report.error == (
        "source kelas-bkpsdm: Google refused the service account's token request (HTTP 400, "
        "invalid_grant: Invalid JWT Signature.); check the key file, domain-wide delegation of "
        f"the Classroom scopes and subject {ADMIN}"
    )
    assert _bodies(settings) == {} and classroom.tokens_issued == 0


def test_cli_pull_into_ralph_matches_the_roster_and_leaks_no_secret(tmp_path, fresh_ralph, make_deployment, classroom):
    key_file(tmp_path, classroom)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    deployment = make_deployment(state_url, fresh_ralph.url, fresh_ralph.password, extra_toml=source_toml(classroom))
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = PSEUDONYM_KEY
    classroom.inject_fault("expired", path="announcements")
    outputs = []
    for args in (
        ("people", "import", str(COMMUNITY_EXPORTS / "roster.csv")),
        ("--debug", "sync"),
        ("outbox", "flush"),
        ("--log-format", "json", "sync", "--site", "kelas-bkpsdm"),
    ):
        result = deployment.run(*args)
        outputs.append(result.stdout + result.stderr)
        CAPTURED.output(f"lms-bridge {' '.join(args)}", result.stdout + result.stderr)
        assert result.returncode == 0, result.stderr
    CAPTURED.databases.append(tmp_path / "state.db")
    held = lrs_statements(fresh_ralph)
    assert len(held) == 6 and "sent 6 statements" in outputs[2]
    by_actor: dict[str, set[str]] = {}
    for statement in held:
        by_actor.setdefault(statement["actor"]["account"]["name"], set()).add(statement["verb"]["display"]["en-US"])
    # Budi and Siti (students) and Dewi (the announcements' author) matched by e-mail through the roster;
    # the student without an e-mail stays a pseudonym.
    assert by_actor.pop("198005122005011002") == {"completed"}
    assert by_actor.pop("199203152019022001") == {"completed"}
    assert by_actor.pop("199202142022211007") == {"replied"}
    assert len(by_actor) == 1 and len(next(iter(by_actor))) == 32
    everything = "\n".join(outputs) + (tmp_path / "state.db").read_bytes().decode("latin-1")
    for secret in (TOKEN_PREFIX, PSEUDONYM_KEY, *private_key_lines()):
        assert secret not in everything


def test_a_submission_updated_while_the_listing_was_read_is_not_skipped_later(tmp_path, monkeypatch, classroom):
    """The submissions listing is not ordered by time: a record updated while its pages were read can sit on a
    page already read, older than the newest record seen on a later page. The watermark must not pass it."""

    def stamp(minutes_ago: int) -> str:
        return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")

    key_file(tmp_path, classroom)
    settings = _settings(tmp_path, monkeypatch, source_toml(classroom))
    classroom.add_submission("c1", "w8", "u1", "Tugas 8", turned_in=stamp(60))
    classroom.add_submission("c1", "w9", "u1", "Tugas 9", turned_in=stamp(1))  # the newest the first pull sees
    assert _sync(settings).error is None
    # Turned in 2 minutes ago: after the listing's start less the settle margin, before the newest seen.
    classroom.add_submission("c1", "w8", "u2", "Tugas 8", turned_in=stamp(2))
    late = _sync(settings)
    assert late.error is None and late.streams["submissions"].new == 1
    assert "course=c1|work=w8|user=u2" in _bodies(settings)

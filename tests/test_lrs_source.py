"""The source-LRS connector end to end: a source Ralph seeded by a plain client, the real CLI, a target Ralph.

The source LRS plays an LMS that already emits xAPI: alias verbs, NIP and non-NIP actors,
an unsupported verb, a voided statement and a statement lms-bridge itself posted.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.lrs_source import parse_time
from lms_bridge import store
from lms_bridge.demo.ralph import RalphLRS
from lms_bridge.store.models import Cursor, Evidence, IdentityLink, OutboxRow, Run
from tests.fixtures.lrs import FaultyLRS, lrs_statements
from tests.fixtures.moodle import ADMIN_TOKEN, moodle_source
from xapi.ids import statement_id
from xapi.lrs_client import LRSClient

BASE = "https://lms-bridge.id/xapi"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, BASE)
AUTHORITY = "https://siasn.bkn.go.id"
NIP = "198805172014032004"
NIP_2 = "199001012015031001"
EMAIL = "budi.santoso@example.go.id"
SOURCE_ENV = "SRC_LRS_PASSWORD"
SOURCE_PASSWORD = "source-secret-5521"  # noqa: S105 - a test password, grepped for in outputs

COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
COURSE = "https://w3id.org/xapi/cmi5/activitytype/course"
MODULE = "http://adlnet.gov/expapi/activities/module"
MEETING = "http://adlnet.gov/expapi/activities/meeting"
MESSAGE = "http://id.tincanapi.com/activitytype/chat-message"


@pytest.fixture
def source_lrs() -> Iterator[RalphLRS]:
    """A second, empty Ralph: the LRS an LMS already writes to."""
    with RalphLRS(username="lms-reader", password=SOURCE_PASSWORD) as lrs:
        yield lrs


def _sid(label: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{label}.source.test"))


def _expected(kind: str, label: str) -> str:
    return statement_id(NAMESPACE, f"lrs|src|{kind}|{_sid(label)}")


def _nip_actor(nip: str = NIP) -> dict:
    return {"objectType": "Agent", "account": {"homePage": AUTHORITY, "name": nip}}


def _statement(
    label: str,
    verb: str,
    object_type: str | None,
    *,
    actor: dict | None = None,
    timestamp: str | None = "2026-03-02T04:00:00Z",
    **extra: object,
) -> dict:
    data: dict = {
        "id": _sid(label),
        "actor": actor or _nip_actor(),
        "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
        "object": {
            "objectType": "Activity",
            "id": f"https://lms.other.go.id/activity/{label}",
            "definition": {"type": object_type} if object_type else {},
        },
    }
    if timestamp:
        data["timestamp"] = timestamp
    data.update(extra)
    return data


def _first_batch() -> list[dict]:
    course = _statement("course", "https://adlnet.gov/expapi/verbs/completed", COURSE)
    course["object"]["definition"]["name"] = {"en-US": "PT-EVAL"}
    return [
        course,
        _statement(
            "discussion",
            "http://activitystrea.ms/schema/1.0/create",
            "http://id.tincanapi.com/activitytype/discussion",
            actor={"objectType": "Agent", "account": {"homePage": "https://lms.other.go.id", "name": "jdoe"}},
        ),
        _statement(
            "webinar",
            "http://adlnet.gov/expapi/verbs/attended",
            MEETING,
            actor={"objectType": "Agent", "mbox": f"mailto:{EMAIL}", "name": "Budi Santoso"},
            result={"duration": "PT1H30M"},
        ),
        _statement(
            "reply",
            "http://id.tincanapi.com/verb/replied",
            "http://id.tincanapi.com/activitytype/forum-reply",
            actor={"mbox_sha1sum": hashlib.sha1(b"mailto:siti@example.go.id").hexdigest()},
        ),  # noqa: S324
        _statement("unsupported", "http://adlnet.gov/expapi/verbs/experienced", COURSE),
        _statement("voided-module", COMPLETED, MODULE),
        _statement(
            "void",
            "http://adlnet.gov/expapi/verbs/voided",
            None,
            object={"objectType": "StatementRef", "id": _sid("voided-module")},
        ),
        _statement(
            "ours",
            COMPLETED,
            COURSE,
            context={
                "extensions": {
                    f"{BASE}/extensions/source": {
                        "source": "moodle",
                        "site": "kemenpan",
                        "native_id": "course=1|user=2",
                    }
                }
            },
        ),
        _statement(
            "message",
            "https://w3id.org/xapi/acrossx/verbs/posted",
            MESSAGE,
            actor=_nip_actor("19900101 201503 1 001"),
            context={
                "contextActivities": {
                    "grouping": [
                        {
                            "id": "https://cop.example.go.id/wi",
                            "definition": {"type": "http://id.tincanapi.com/activitytype/community-site"},
                        }
                    ]
                }
            },
        ),
    ]


FIRST_EXPECTED = {
    _expected("course_completed", "course"),
    _expected("discussion_created", "discussion"),
    _expected("meeting_attended", "webinar"),
    _expected("reply_created", "reply"),
    _expected("message_posted", "message"),
}


def _post(lrs: RalphLRS, statements: list[dict]) -> None:
    with LRSClient(lrs.url, lrs.username, lrs.password) as client:
        client.post_statements([json.dumps(s) for s in statements])


def _deploy(make_deployment, state_url: str, target: RalphLRS, source: RalphLRS, extra: str = ""):
    toml = (
        f'\n[[sources]]\nid = "src"\ntype = "lrs"\nurl = "{source.url}"\nusername = "{source.username}"\n'
        f'password_env = "{SOURCE_ENV}"\nbackoff_base = 0.05\nmax_retries = 1\n{extra}\n'
    )
    deployment = make_deployment(state_url, target.url, target.password, extra_toml=toml)
    deployment.env[SOURCE_ENV] = source.password
    return deployment


def _rows(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows by site: [stream, read, new, unchanged, accounts, invalid]."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in stdout.splitlines() if line.startswith("│")]
    return {row[0]: row[1:] for row in rows}


def _cursor(state_url: str) -> dict | None:
    with Session(store.make_engine(state_url)) as session:
        cursor = session.get(Cursor, ("src", "statements"))
        return None if cursor is None else json.loads(cursor.position)


def _last_run(state_url: str) -> Run:
    with Session(store.make_engine(state_url)) as session:
        return session.scalars(select(Run).where(Run.site_id == "src").order_by(Run.id.desc()).limit(1)).one()


def _max_stored(lrs: RalphLRS) -> str:
    latest = max(parse_time(s["stored"]) for s in lrs_statements(lrs))
    return latest.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _content(statement: dict) -> dict:
    return {k: v for k, v in statement.items() if k not in ("stored", "authority")}


def test_full_then_incremental_pull_sends_each_mapped_statement_once(
    state_url, fresh_ralph, source_lrs, make_deployment
):
    _post(source_lrs, _first_batch())
    deployment = _deploy(make_deployment, state_url, fresh_ralph, source_lrs)
    first = deployment.run("sync", check=True)
    # read counts every statement read (issue 17): the 4 skipped below as well as the 5 new.
    assert _rows(first.stdout)["src"][:3] == ["statements", "9", "5"], first.stdout
    assert (
        "src: 4 statements skipped (1 unsupported verb or object type, 1 voided, 1 voiding, 1 posted by lms-bridge)"
    ) in first.stdout
    assert "sent 5 statements" in deployment.run("outbox", "flush", check=True).stdout
    held = {s["id"]: s for s in lrs_statements(fresh_ralph)}
    assert set(held) == FIRST_EXPECTED
    assert _cursor(state_url) == {"stored": _max_stored(source_lrs)}

    by_id = {sid: held[sid] for sid in held}
    course = by_id[_expected("course_completed", "course")]
    assert course["verb"]["id"] == COMPLETED  # the https alias became the canonical verb
    assert course["actor"]["account"] == {"homePage": AUTHORITY, "name": NIP}
    assert course["object"]["id"] == "https://lms.other.go.id/activity/course"
    assert course["timestamp"] == "2026-03-02T04:00:00Z" and course["result"] == {"completion": True}
    assert course["context"]["platform"] == "xAPI LRS"
    discussion = by_id[_expected("discussion_created", "discussion")]
    assert discussion["verb"]["id"] == "http://activitystrea.ms/create"
    assert discussion["actor"]["account"] == {
        "homePage": source_lrs.url.rstrip("/"),
        "name": "https://lms.other.go.id|jdoe",
    }
    webinar = by_id[_expected("meeting_attended", "webinar")]
    digest = hashlib.sha1(f"mailto:{EMAIL}".encode()).hexdigest()  # noqa: S324
    # The local id mbox_sha1sum:<hex> is 53 characters: over ADL's 50, so it is named by its own hash.
    local_id = f"mbox_sha1sum:{digest}"
    assert webinar["actor"]["account"]["name"] == "sha1:" + hashlib.sha1(local_id.encode()).hexdigest()  # noqa: S324
    assert webinar["result"]["duration"] == "PT1H30M"
    message = by_id[_expected("message_posted", "message")]
    assert message["actor"]["account"] == {"homePage": AUTHORITY, "name": NIP_2}
    assert message["context"]["contextActivities"]["grouping"][0]["id"] == "https://cop.example.go.id/wi"

    # No e-mail address or display name anywhere: not in the target LRS, not in the state store.
    engine = store.make_engine(state_url)
    with Session(engine) as session:
        stored_text = json.dumps(
            [
                session.scalars(select(OutboxRow.body)).all(),
                session.scalars(select(Evidence.local_actor)).all(),
                session.scalars(select(Evidence.facts)).all(),
                session.scalars(select(IdentityLink.local_id)).all(),
            ]
        )
    for text in (json.dumps(list(held.values())), stored_text):
        assert EMAIL not in text and "siti@" not in text and "Budi Santoso" not in text
    assert SOURCE_PASSWORD not in first.stdout + first.stderr
    assert f"person {NIP}" in deployment.run("people", "show", NIP, check=True).stdout  # NIP actors are persons

    # Nothing new: the overlap window re-reads, stores nothing new, posts nothing.
    again = deployment.run("sync", check=True)
    assert _rows(again.stdout)["src"][2] == "0", again.stdout
    assert "sent 0 statements" in deployment.run("outbox", "flush", check=True).stdout

    # New statements in the source: only they arrive, each once.
    _post(
        source_lrs,
        [
            _statement(
                "module",
                "https://adlnet.gov/expapi/verbs/completed",
                MODULE,
                timestamp="2026-03-03T01:00:00Z",
                context={
                    "contextActivities": {
                        "parent": [{"id": "https://lms.other.go.id/course/9", "definition": {"type": COURSE}}]
                    }
                },
            ),
            _statement(
                "message-2",
                "http://activitystrea.ms/schema/1.0/create",
                MESSAGE,
                actor={"account": {"homePage": "https://lms.other.go.id", "name": "jdoe"}},
            ),
            _statement("webinar-2", "http://adlnet.gov/expapi/verbs/attended", MEETING, timestamp=None),
        ],
    )
    third = deployment.run("sync", check=True)
    assert _rows(third.stdout)["src"][2] == "3", third.stdout
    assert "sent 3 statements" in deployment.run("outbox", "flush", check=True).stdout
    after = lrs_statements(fresh_ralph)
    assert len(after) == len({s["id"] for s in after}) == 8
    added = {s["id"] for s in after} - set(held)
    assert added == {
        _expected("module_completed", "module"),
        _expected("message_posted", "message-2"),
        _expected("meeting_attended", "webinar-2"),
    }
    assert all(_content(s) == _content(held[s["id"]]) for s in after if s["id"] in held)
    assert _cursor(state_url) == {"stored": _max_stored(source_lrs)}

    # A backfill re-reads everything, adds nothing and leaves the cursor alone.
    cursor = _cursor(state_url)
    backfill = deployment.run("sync", "--since", "2026-01-01", check=True)
    assert _rows(backfill.stdout)["src"][1:3] == ["12", "0"], backfill.stdout  # 8 mapped, 4 skipped
    assert _cursor(state_url) == cursor


def test_more_paging_with_small_pages_and_a_cursor_that_narrows_the_read(
    tmp_path, fresh_ralph, source_lrs, make_deployment
):
    state_url = f"sqlite:///{tmp_path / 's.db'}"
    _post(source_lrs, [_statement(f"module-{n}", COMPLETED, MODULE) for n in range(12)])
    deployment = _deploy(
        make_deployment, state_url, fresh_ralph, source_lrs, extra="page_size = 4\noverlap_seconds = 0"
    )
    first = deployment.run("sync", check=True)
    assert _rows(first.stdout)["src"][1:3] == ["12", "12"], first.stdout
    # 12 statements by 4: three full pages, then Ralph's extra empty page (docs/lrs.md §3).
    assert json.loads(_last_run(state_url).counts)["calls"] == {"GET about": 1, "GET statements": 4}

    _post(source_lrs, [_statement(f"module-{n}", COMPLETED, MODULE) for n in range(12, 14)])
    second = deployment.run("sync", check=True)
    # 14 read (with overlap_seconds = 0 Ralph still answers the old 12: its since filter is off by default),
    # 2 new: the cursor keeps the old 12 out of what is stored.
    assert _rows(second.stdout)["src"][1:3] == ["14", "2"], second.stdout
    assert "sent 14 statements" in deployment.run("outbox", "flush", check=True).stdout
    held = lrs_statements(fresh_ralph)
    assert {s["id"] for s in held} == {_expected("module_completed", f"module-{n}") for n in range(14)}


def test_since_mode_reads_from_the_cursor(tmp_path, fresh_ralph, source_lrs, make_deployment):
    """``mode = "since"`` against Ralph: valid here because statements without a timestamp get ``stored``."""
    state_url = f"sqlite:///{tmp_path / 's.db'}"
    _post(source_lrs, [_statement(f"m-{n}", COMPLETED, MODULE, timestamp=None) for n in range(3)])
    deployment = _deploy(
        make_deployment, state_url, fresh_ralph, source_lrs, extra='mode = "since"\noverlap_seconds = 0\npage_size = 2'
    )
    assert _rows(deployment.run("sync", check=True).stdout)["src"][1:3] == ["3", "3"]
    _post(source_lrs, [_statement(f"m-{n}", COMPLETED, MODULE, timestamp=None) for n in range(3, 5)])
    second = deployment.run("sync", check=True)
    assert _rows(second.stdout)["src"][1:3] == ["2", "2"], second.stdout
    assert json.loads(_last_run(state_url).counts)["calls"] == {"GET statements": 2}  # no about: mode is set
    assert _cursor(state_url) == {"stored": _max_stored(source_lrs)}


def test_wrong_password_is_one_sentence_and_keeps_the_cursor(tmp_path, ralph, source_lrs, make_deployment):
    state_url = f"sqlite:///{tmp_path / 's.db'}"
    _post(source_lrs, [_statement("course-pw", COMPLETED, COURSE)])
    deployment = _deploy(make_deployment, state_url, ralph, source_lrs)
    deployment.run("sync", check=True)
    cursor = _cursor(state_url)
    assert cursor is not None

    _post(source_lrs, [_statement("course-pw-2", COMPLETED, COURSE)])
    deployment.env[SOURCE_ENV] = "not-the-password-8812"
    result = deployment.run("sync")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: source LRS src ({source_lrs.url}) refused the credentials (HTTP 401): "
        f"check its username and the secret {SOURCE_ENV}"
    )
    assert "not-the-password-8812" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert _cursor(state_url) == cursor
    run = _last_run(state_url)
    assert run.status == "failed" and run.error.startswith("source LRS src")


def _broken_lrs(status: int, body: bytes) -> FaultyLRS:
    """A loopback "LRS" of its own (no upstream) whose statements resource answers ``status`` with ``body``."""
    return FaultyLRS(None, on_get=lambda path: (404, b'{"detail":"Not Found"}') if "/about" in path else (status, body))


@pytest.mark.parametrize(
    ("status", "body", "sentence"),
    [
        (200, b"<html>maintenance</html>", "answered a statements page that is not an xAPI StatementResult in JSON"),
        (503, b'{"detail":"busy"}', "answered HTTP 503; gave up after 2 attempts"),
    ],
)
def test_broken_source_answers_stop_the_source_in_one_sentence(
    tmp_path, ralph, make_deployment, status, body, sentence
):
    state_url = f"sqlite:///{tmp_path / 's.db'}"
    with _broken_lrs(status, body) as broken:
        source = SimpleNamespace(url=broken.url, username="reader", password=SOURCE_PASSWORD)
        result = _deploy(make_deployment, state_url, ralph, source).run("sync")  # type: ignore[arg-type]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: source LRS src ({broken.url}) {sentence}"
    assert _cursor(state_url) is None


def test_moodle_sites_and_source_lrs_sync_together(tmp_path, ralph, source_lrs, fake_moodle, make_deployment):
    state_url = f"sqlite:///{tmp_path / 's.db'}"
    _post(source_lrs, [_statement("together", COMPLETED, COURSE)])
    deployment = _deploy(make_deployment, state_url, ralph, source_lrs, extra=moodle_source(fake_moodle))
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    only_lrs = deployment.run("sync", "--stream", "statements", check=True)
    assert set(_rows(only_lrs.stdout)) == {"src"}
    both = deployment.run("sync", check=True).stdout
    assert {"src", "demo"} <= {line.split("│")[1].strip() for line in both.splitlines() if line.startswith("│")}
    unknown = deployment.run("sync", "--site", "src", "--stream", "forum_posts")
    assert unknown.returncode == 2 and "unknown stream 'forum_posts' (streams: statements)" in unknown.stderr


# --- the source voids a statement an earlier sync mirrored ---------------------------------------

VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"


def _void(label: str, target: str) -> dict:
    return _statement(label, VOIDED_VERB, None, object={"objectType": "StatementRef", "id": target})


def _statements_counts(state_url: str) -> dict:
    return json.loads(_last_run(state_url).counts)["statements"]


def test_a_late_void_at_the_source_voids_our_copy_and_its_jp_once(state_url, fresh_ralph, source_lrs, make_deployment):
    _post(
        source_lrs,
        [
            _statement("late-module", COMPLETED, MODULE),
            _statement("late-kept", COMPLETED, COURSE),
            _statement("late-unsupported", "http://adlnet.gov/expapi/verbs/experienced", COURSE),
        ],
    )
    deployment = _deploy(make_deployment, state_url, fresh_ralph, source_lrs)
    deployment.run("sync", check=True)
    assert "sent 2 statements" in deployment.run("outbox", "flush", check=True).stdout
    # module_completed earns 0.5 JP under the "elearning" rule (the course has no program JP: none).
    assert "queued 1 new records (0.5 JP" in deployment.run("jp", "compute", "--year", "2026", check=True).stdout
    copy = _expected("module_completed", "late-module")

    # The source voids the mirrored module, a statement it skipped, and one it never had.
    _post(
        source_lrs,
        [
            _void("late-void", _sid("late-module")),
            _void("late-void-2", _sid("late-unsupported")),
            _void("late-void-3", str(uuid.uuid4())),
        ],
    )
    second = deployment.run("sync", check=True)
    assert f"voids {_sid('late-module')} at the source: queued the void of our copy {copy}" in second.stderr
    assert second.stderr.count("queued the void of our copy") == 1, second.stderr
    assert _statements_counts(state_url)["voided"] == 1  # what runs show prints
    engine = store.make_engine(state_url)
    with Session(engine) as session:
        assert session.get(Evidence, copy) is None  # jp compute no longer sees it
    assert "sent 2 statements" in deployment.run("outbox", "flush", check=True).stdout  # the void, the JP record
    voids = [s for s in lrs_statements(fresh_ralph) if s["verb"]["id"] == VOIDED_VERB]
    assert [(s["id"], s["object"]) for s in voids] == [
        (statement_id(NAMESPACE, f"void|{copy}"), {"objectType": "StatementRef", "id": copy})
    ]
    assert voids[0]["actor"]["account"]["name"] == "lms-bridge"  # lms-bridge's own void, not the person's

    jp = deployment.run("jp", "compute", "--year", "2026", check=True).stdout
    assert "queued 0 new records" in jp and "1 voided" in jp, jp

    # A rerun re-reads the voids and the voided statement (the overlap): nothing new anywhere.
    with Session(engine) as session:
        outbox = session.scalars(select(OutboxRow.statement_id)).all()
    third = deployment.run("sync", check=True)
    assert "queued the void of our copy" not in third.stderr
    assert _statements_counts(state_url)["voided"] == 0
    with Session(engine) as session:
        assert session.scalars(select(OutboxRow.statement_id)).all() == outbox
        assert session.get(Evidence, copy) is None
    jp = deployment.run("jp", "compute", "--year", "2026", check=True).stdout
    assert "queued 0 new records" in jp and "0 voided" in jp, jp


def test_a_late_void_that_fails_to_queue_keeps_the_cursor_before_it(tmp_path, ralph, source_lrs, make_deployment):
    """A real SQLite trigger refuses the void's outbox row: the disk-full or lost-database case of a real run."""
    state_url = f"sqlite:///{tmp_path / 's.db'}"
    _post(source_lrs, [_statement("crash-module", COMPLETED, MODULE)])
    deployment = _deploy(make_deployment, state_url, ralph, source_lrs, extra="overlap_seconds = 0")
    deployment.run("sync", check=True)
    cursor = _cursor(state_url)
    _post(source_lrs, [_void("crash-void", _sid("crash-module"))])
    engine = store.make_engine(state_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER no_voids BEFORE INSERT ON outbox WHEN NEW.stream = 'void' "
            "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
        )
    failed = deployment.run("sync")
    assert failed.returncode != 0 and "the disk is full" in failed.stderr, failed.stderr
    assert '"actor"' not in failed.stderr and "[parameters" not in failed.stderr  # no statement body printed
    assert _cursor(state_url) == cursor  # not past the void that was not queued
    with engine.connect() as connection:  # and the run says it failed, instead of staying "running"
        status, error = connection.exec_driver_sql("SELECT status, error FROM runs ORDER BY id DESC LIMIT 1").one()
    assert status == "failed" and "unexpected IntegrityError" in error and "disk is full" in error, (status, error)
    assert "INSERT" not in error and "actor" not in error  # one line: no SQL, no parameters (statement bodies)

    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER no_voids")
    deployment.run("sync", check=True)
    assert _statements_counts(state_url)["voided"] == 1
    assert _cursor(state_url) == {"stored": _max_stored(source_lrs)}

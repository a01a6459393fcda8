"""Moodle sync end to end: the fake Moodle over real HTTP, the real CLI, real Ralph, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import signal
import time
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.demo.moodle import FakeMoodle
from lms_bridge.demo.moodle.functions import FUNCTIONS
from lms_bridge.demo.ralph import RalphLRS
from lms_bridge.store.models import Cursor, Evidence, IdentityLink, JPRecord, OutboxRow, Person
from tests.fixtures.lrs import lrs_statements
from tests.fixtures.moodle import ADMIN_TOKEN, LIMITED_TOKEN, moodle_source

SOURCE_KEY = "https://lms-bridge.id/xapi/extensions/source"


def _deploy(make_deployment, state_url, lrs, fake, **source):
    deployment = make_deployment(state_url, lrs.url, lrs.password, extra_toml=moodle_source(fake, **source))
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    return deployment


def _content(statement: dict) -> dict:
    return {k: v for k, v in statement.items() if k not in ("stored", "authority")}


def _outbox(state_url: str) -> dict[str, str]:
    try:
        with Session(store.make_engine(state_url)) as session:
            return dict(session.execute(select(OutboxRow.statement_id, OutboxRow.body)).all())
    except OperationalError:  # the subprocess has not created the tables yet
        return {}


def _cursors(state_url: str) -> dict[tuple[str, str], str]:
    with Session(store.make_engine(state_url)) as session:
        return {(c.site_id, c.stream): c.position for c in session.scalars(select(Cursor))}


def test_full_then_incremental_sync_sends_each_statement_once(state_url, fresh_ralph, fake_moodle, make_deployment):
    deployment = _deploy(make_deployment, state_url, fresh_ralph, fake_moodle)
    first = deployment.run("sync", check=True)
    assert "forum_posts" in first.stdout
    deployment.run("outbox", "flush", check=True)
    held = {s["id"]: s for s in lrs_statements(fresh_ralph)}
    assert len(held) == len(_outbox(state_url)) > 100
    kinds = {json.loads(body)["verb"]["display"]["en-US"] for body in _outbox(state_url).values()}
    assert kinds == {"completed", "created", "replied", "attended"}

    # An identical sync adds nothing and the flush posts nothing.
    again = deployment.run("sync", check=True)
    assert all(line.split("│")[4].strip() == "0" for line in again.stdout.splitlines() if line.startswith("│")), (
        again.stdout
    )
    assert "sent 0 statements" in deployment.run("outbox", "flush", check=True).stdout

    # New activity on the site appears after the next sync, and nothing else is re-sent.
    new_posts = fake_moodle.add_posts(5)
    new_completions = fake_moodle.add_completions(3)
    new_attendance = fake_moodle.add_attendance(2)
    deployment.run("sync", check=True)
    flushed = deployment.run("outbox", "flush", check=True).stdout
    after = {s["id"]: s for s in lrs_statements(fresh_ralph)}
    added = [after[i] for i in after.keys() - held.keys()]
    assert f"sent {len(added)} statements" in flushed
    native = {s["context"]["extensions"][SOURCE_KEY]["native_id"] for s in added}
    posts = fake_moodle.data.posts
    expected_posts = {str(p) if posts[p].parent else f"discussion={posts[p].discussion}" for p in new_posts}
    assert expected_posts <= native
    assert len(added) >= len(new_posts) + len(new_completions) + len(new_attendance)
    assert all(held[i] == after[i] for i in held)


def test_nip_links_make_one_person_per_nip(state_url, ralph, fake_moodle, make_deployment):
    deployment = _deploy(make_deployment, state_url, ralph, fake_moodle)
    deployment.run("sync", "--stream", "enrolled_users", check=True)
    engine = store.make_engine(state_url)
    with Session(engine) as session:
        persons = session.scalar(select(func.count()).select_from(Person))
        links = select(func.count()).select_from(IdentityLink)
        linked = session.scalar(links.where(IdentityLink.person_id.is_not(None)))
        unlinked = session.scalar(links.where(IdentityLink.person_id.is_(None)))
        nips = session.scalars(select(Person.nip)).all()
    assert linked > persons > 0  # the shared NIP: two accounts, one person
    assert unlinked > 0  # blank idnumbers stay site-scoped accounts
    assert all(len(n) == 18 and n.isdigit() for n in nips)  # spaced NIPs stored normalised
    users = [u for u in fake_moodle.data.users.values() if u.idnumber and " " in u.idnumber]
    assert users and all(u.idnumber.replace(" ", "") in nips for u in users)


def test_xml_and_json_give_the_same_statements(tmp_path, ralph, fake_moodle, make_deployment):
    outboxes = []
    for fmt in ("json", "xml"):
        state_url = f"sqlite:///{tmp_path / f'{fmt}.db'}"
        _deploy(make_deployment, state_url, ralph, fake_moodle, fmt=fmt).run("sync", check=True)
        outboxes.append(_outbox(state_url))
    assert len(outboxes[0]) > 100
    assert outboxes[0] == outboxes[1]


def test_sigkill_mid_sync_then_rerun_gives_the_same_lrs_contents(tmp_path, fresh_ralph, fake_moodle, make_deployment):
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    reference = _deploy(make_deployment, reference_url, fresh_ralph, fake_moodle)
    reference.run("sync", check=True)
    reference.run("outbox", "flush", check=True)
    expected = {s["id"]: _content(s) for s in lrs_statements(fresh_ralph)}

    with RalphLRS() as other:
        crashed_url = f"sqlite:///{tmp_path / 'crashed.db'}"
        crashed = _deploy(make_deployment, crashed_url, other, fake_moodle)
        # Slow the per-user calls so the kill lands inside the completion streams.
        fake_moodle.set_latency("core_completion_get_activities_completion_status", 0.05)
        process = crashed.popen("sync")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_outbox(crashed_url)) < 10:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        assert process.returncode == -9
        partial = len(_outbox(crashed_url))
        assert 0 < partial < len(expected)
        fake_moodle.set_latency("core_completion_get_activities_completion_status", 0)
        crashed.run("outbox", "flush", check=True)  # flush what the killed run stored
        crashed.run("sync", check=True)
        crashed.run("outbox", "flush", check=True)
        got = {s["id"]: _content(s) for s in lrs_statements(other)}
    assert got == expected


def test_wrong_token_is_one_sentence_and_moves_no_cursor(state_url, ralph, fake_moodle, make_deployment):
    deployment = _deploy(make_deployment, state_url, ralph, fake_moodle)
    deployment.env["MOODLE_TOKEN_DEMO"] = "not-the-token-93kd"
    result = deployment.run("sync")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: Moodle site demo ({fake_moodle.url}) core_course_get_courses: invalidtoken:")
    assert "not-the-token-93kd" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert _cursors(state_url) == {}


def test_function_missing_from_the_service_stops_the_site_and_keeps_cursors(state_url, ralph, make_deployment):
    functions = [f for f in FakeMoodle(preset="small").functions if f != "mod_forum_get_discussion_posts"]
    with FakeMoodle(preset="small", seed=1, token=ADMIN_TOKEN, functions=functions) as fake:
        deployment = _deploy(make_deployment, state_url, ralph, fake)
        test = deployment.run("sites", "test")
        assert test.returncode == 1 and "the service lacks: mod_forum_get_discussion_posts" in test.stdout
        result = deployment.run("sync")
    assert result.returncode == 1
    assert "mod_forum_get_discussion_posts: accessexception" in result.stderr
    cursors = _cursors(state_url)
    # The streams before the failure committed; the forum stream kept no position.
    assert ("demo", "course_completions") in cursors and ("demo", "forum_posts") not in cursors


def test_transient_faults_are_retried_and_nothing_is_lost(tmp_path, ralph, fake_moodle, make_deployment):
    fake_moodle.inject_fault("mod_forum_get_discussion_posts", kind="http502", times=1)
    fake_moodle.inject_fault("core_enrol_get_enrolled_users", kind="reset", times=1, after=1)
    fake_moodle.inject_fault("core_completion_get_activities_completion_status", kind="truncate", times=1)
    faulted_url = f"sqlite:///{tmp_path / 'faulted.db'}"
    result = _deploy(make_deployment, faulted_url, ralph, fake_moodle).run("sync", check=True)
    # One clear log line per fault, then the retry succeeded.
    assert result.stderr.count("HTTP 502") == 1 and result.stderr.count("connection failed or was reset") == 1
    assert result.stderr.count("not complete JSON") == 1
    fake_moodle.clear_faults()
    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    _deploy(make_deployment, clean_url, ralph, fake_moodle).run("sync", check=True)
    assert _outbox(faulted_url) == _outbox(clean_url)


def test_limited_token_sees_less_without_crashing(tmp_path, ralph, fake_moodle, make_deployment):
    deployment = _deploy(make_deployment, f"sqlite:///{tmp_path / 's.db'}", ralph, fake_moodle)
    deployment.env["MOODLE_TOKEN_DEMO"] = LIMITED_TOKEN
    result = deployment.run("sync")
    assert result.returncode == 1
    assert "errorcoursecontextnotvalid" in result.stderr and "cannot access this course" in result.stderr
    assert LIMITED_TOKEN not in result.stdout + result.stderr


def test_since_repulls_without_duplicates_or_moving_cursors(tmp_path, ralph, fake_moodle, make_deployment):
    state_url = f"sqlite:///{tmp_path / 's.db'}"
    deployment = _deploy(make_deployment, state_url, ralph, fake_moodle)
    deployment.run("sync", check=True)
    before_cursors, before_outbox = _cursors(state_url), _outbox(state_url)
    result = deployment.run("sync", "--since", "2026-01-01", check=True)
    rows = [line.split("│") for line in result.stdout.splitlines() if line.startswith("│")]
    assert sum(int(r[3]) for r in rows) > 50 and all(r[4].strip() == "0" for r in rows)  # re-read, none new
    assert _cursors(state_url) == before_cursors and _outbox(state_url) == before_outbox


def test_sites_add_list_and_test(tmp_path, ralph, fake_moodle, make_deployment):
    deployment = make_deployment(f"sqlite:///{tmp_path / 's.db'}", ralph.url, ralph.password)
    deployment.env["MOODLE_TOKEN_NEW"] = ADMIN_TOKEN
    added = deployment.run(
        "sites", "add", "new-site", "--url", fake_moodle.url, "--token-env", "MOODLE_TOKEN_NEW", check=True
    )
    assert "added site new-site" in added.stdout
    # The Moodle admin steps name every function sites test checks, then the same check runs.
    assert "Create token" in added.stdout and "core_user_get_users_by_field" in added.stdout
    assert "ok   new-site:" in added.stdout and "all 10 functions available" in added.stdout
    assert 'id = "new-site"' in deployment.config.read_text()
    listed = deployment.run("sites", "list", check=True).stdout
    assert "new-site" in listed and "MOODLE_TOKEN_NEW set" in listed and "never" in listed
    tested = deployment.run("sites", "test", "new-site", check=True).stdout
    assert tested.startswith("ok   new-site:") and "all 10 functions available" in tested
    unset = deployment.run("sites", "add", "later-site", "--url", fake_moodle.url, "--token-env", "MOODLE_TOKEN_LATER")
    assert unset.returncode == 0 and "MOODLE_TOKEN_LATER is not set yet" in unset.stdout
    bad = deployment.run(
        "sites",
        "add",
        "bad-site",
        "--url",
        fake_moodle.url,
        "--token-env",
        "MOODLE_TOKEN_BAD",
        env={"MOODLE_TOKEN_BAD": "not-a-token"},
    )
    assert bad.returncode == 1 and "FAIL bad-site" in bad.stdout and "was added but failed its test" in bad.stderr
    twice = deployment.run("sites", "add", "new-site", "--url", fake_moodle.url, "--token-env", "X")
    assert twice.returncode == 2 and "already configured" in twice.stderr


def test_course_custom_fields_give_program_jp(tmp_path, ralph, fake_moodle, make_deployment):
    """``course_customfields = true``: the courses' custom fields reach the evidence facts and
    ``customfield = "jp"`` in the program JP file credits that figure (before the category table)."""
    course = next(c for c in fake_moodle.data.courses.values() if c.customfields.get("jp") and c.criteria)
    state_url = f"sqlite:///{tmp_path / 'cf.db'}"
    (tmp_path / "program.toml").write_text(
        f'format = 1\n[default]\ndefault = "0"\n[sites.demo]\ncustomfield = "jp"\n'
        f'categories = {{ "{course.category}" = "99" }}\n',
        encoding="utf-8",
    )
    extra = moodle_source(fake_moodle, extra="course_customfields = true")
    extra += '\n[jp]\nprogram_jp_file = "program.toml"\n'
    deployment = make_deployment(state_url, ralph.url, ralph.password, extra_toml=extra)
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = "test-pseudonym-key-0123456789"

    tested = deployment.run("sites", "test", "demo", check=True).stdout
    assert "all 11 functions available" in tested, tested
    deployment.run("sync", check=True)
    with Session(store.make_engine(state_url)) as session:
        rows = session.scalars(select(Evidence).where(Evidence.kind == "course_completed")).all()
    facts = {row.statement_id: json.loads(row.facts) for row in rows}
    ours = [f for f in facts.values() if f["course_shortname"] == course.shortname]
    assert ours and all(f["course_customfields"] == {"jp": course.customfields["jp"]} for f in ours)
    plain = {c.shortname for c in fake_moodle.data.courses.values() if not c.customfields}
    assert all("course_customfields" not in f for f in facts.values() if f["course_shortname"] in plain)

    deployment.run("jp", "compute", "--year", "2026", check=True)
    with Session(store.make_engine(state_url)) as session:
        records = session.scalars(
            select(JPRecord).where(
                JPRecord.rule_id == "training-completed", JPRecord.activity_key == f"moodle/demo/course:{course.id}"
            )
        ).all()
    assert records and {Decimal(r.jp) for r in records} == {Decimal(course.customfields["jp"])}


def test_course_custom_fields_need_their_function(tmp_path, ralph, make_deployment):
    """Without core_course_get_courses_by_field in the service, `sites test` names it and sync stops on it."""
    with FakeMoodle(
        preset="small",
        seed=1,
        token=ADMIN_TOKEN,
        functions=[f for f in FUNCTIONS if f != "core_course_get_courses_by_field"],
    ) as fake:
        state_url = f"sqlite:///{tmp_path / 'nf.db'}"
        deployment = _deploy(make_deployment, state_url, ralph, fake, extra="course_customfields = true")
        tested = deployment.run("sites", "test", "demo")
        assert tested.returncode != 0 and "the service lacks: core_course_get_courses_by_field" in tested.stdout
        synced = deployment.run("sync")
        assert synced.returncode != 0
        output = synced.stdout + synced.stderr
        assert "core_course_get_courses_by_field" in output and "accessexception" in output, output
        plain = _deploy(make_deployment, f"sqlite:///{tmp_path / 'plain.db'}", ralph, fake)
        assert "all 10 functions available" in plain.run("sites", "test", "demo", check=True).stdout

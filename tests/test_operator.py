"""Operator commands end to end: backfill, cursors, runs, outbox list/export/import, over the real CLI."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.store.locks import site_lock, sync_lock_name
from lms_bridge.store.models import Cursor, OutboxRow
from tests.fixtures.activities import forum_posts, write_activity_file
from tests.fixtures.lrs import lrs_statements
from tests.fixtures.moodle import ADMIN_TOKEN, moodle_source
from xapi.lrs_client import LRSClient


def _deploy(make_deployment, state_url, lrs, fake):
    deployment = make_deployment(state_url, lrs.url, lrs.password, extra_toml=moodle_source(fake))
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    return deployment


def _outbox(state_url: str) -> dict[str, str]:
    with Session(store.make_engine(state_url)) as session:
        return dict(session.execute(select(OutboxRow.statement_id, OutboxRow.status)).all())


def _cursors(state_url: str) -> dict[tuple[str, str], str]:
    with Session(store.make_engine(state_url)) as session:
        return {(c.site_id, c.stream): c.position for c in session.scalars(select(Cursor))}


def _rows(stdout: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in stdout.splitlines() if line.startswith("│")]


def test_backfill_over_a_synced_window_sends_nothing_new_and_keeps_cursors(
    state_url, fresh_ralph, fake_moodle, make_deployment
):
    deployment = _deploy(make_deployment, state_url, fresh_ralph, fake_moodle)
    deployment.run("sync", check=True)
    deployment.run("outbox", "flush", check=True)
    before_cursors, before_outbox = _cursors(state_url), _outbox(state_url)
    held = len(lrs_statements(fresh_ralph))

    result = deployment.run("backfill", "--site", "demo", "--since", "2025-01-01", check=True)
    rows = _rows(result.stdout)
    assert sum(int(r[1]) for r in rows) > 50 and all(r[2] == "0" for r in rows), result.stdout
    assert _cursors(state_url) == before_cursors and _outbox(state_url) == before_outbox
    assert "sent 0 statements" in deployment.run("outbox", "flush", check=True).stdout
    assert len(lrs_statements(fresh_ralph)) == held

    # One stream only, as a dry run.
    dry = deployment.run(
        "backfill", "--site", "demo", "--since", "2025-01-01", "--stream", "forum_posts", "--dry-run", check=True
    )
    assert "dry run" in dry.stdout and "forum_posts" in dry.stdout and "activity_completions" not in dry.stdout

    # The runs it left behind.
    listed = deployment.run("runs", "list", "--site", "demo", check=True).stdout
    assert len([r for r in _rows(listed) if r[1] == "sync" and r[5] == "ok"]) >= 1
    assert len([r for r in _rows(listed) if r[1] == "backfill" and r[5] == "ok"]) >= 1  # labelled (issue 17)
    run_id = _rows(listed)[-1][0]
    shown = deployment.run("runs", "show", run_id, check=True).stdout
    assert f"run {run_id}: sync demo, ok" in shown and "forum_posts" in shown and "calls:" in shown
    missing = deployment.run("runs", "show", "999999")
    assert missing.returncode == 1 and "there is no run 999999" in missing.stderr


def test_backfill_refuses_while_the_site_is_being_synced(tmp_path, ralph, fake_moodle, make_deployment):
    state_url = f"sqlite:///{tmp_path / 's.db'}"
    deployment = _deploy(make_deployment, state_url, ralph, fake_moodle)
    engine = store.open_engine(state_url)
    with site_lock(engine, sync_lock_name("demo"), wait=False) as held:
        result = deployment.run("backfill", "--site", "demo", "--since", "2025-01-01")
    assert result.returncode == 1
    assert f"site demo is being synced by another run ({held.owner})" in result.stderr
    assert _outbox(state_url) == {}
    bad = deployment.run("backfill", "--site", "demo", "--since", "2026-03-02", "--until", "2026-03-01")
    assert bad.returncode == 2 and "is not after --since" in bad.stderr


def test_backfill_until_stops_at_the_window_end(tmp_path, ralph, fake_moodle, make_deployment):
    state_url = f"sqlite:///{tmp_path / 's.db'}"
    deployment = _deploy(make_deployment, state_url, ralph, fake_moodle)
    deployment.run("backfill", "--site", "demo", "--since", "2000-01-01", "--until", "2001-01-01", check=True)
    assert _outbox(state_url) == {} and _cursors(state_url) == {}


def test_cursor_reset_asks_then_resync_rereads_and_sends_nothing_twice(
    tmp_path, fresh_ralph, fake_moodle, make_deployment
):
    state_url = f"sqlite:///{tmp_path / 's.db'}"
    deployment = _deploy(make_deployment, state_url, fresh_ralph, fake_moodle)
    deployment.run("sync", check=True)
    deployment.run("outbox", "flush", check=True)
    held = {s["id"] for s in lrs_statements(fresh_ralph)}
    listed = deployment.run("cursors", "list", check=True).stdout
    streams = {r[1]: r[2] for r in _rows(listed) if r[0] == "demo"}
    assert set(streams) >= {"course_completions", "forum_posts", "enrolled_users"}
    assert "forums, oldest" in streams["forum_posts"]

    before = _cursors(state_url)
    refused = deployment.run("cursors", "reset", "--site", "demo", "--stream", "forum_posts", "--to", "2020-01-01")
    assert refused.returncode == 130 and "aborted" in refused.stderr  # no terminal, no --yes: nothing done
    assert _cursors(state_url) == before
    full_pass = deployment.run(
        "cursors", "reset", "--site", "demo", "--stream", "enrolled_users", "--to", "2020-01-01", "--yes"
    )
    assert full_pass.returncode == 2 and "read whole on every sync" in full_pass.stderr

    reset = deployment.run(
        "cursors", "reset", "--site", "demo", "--stream", "forum_posts", "--to", "2020-01-01", "--yes", check=True
    )
    assert "cursor demo/forum_posts reset" in reset.stdout
    position = json.loads(_cursors(state_url)[("demo", "forum_posts")])
    jakarta_2020 = 1577811600  # 2020-01-01T00:00+07:00
    assert set(position["forums"].values()) == {jakarta_2020} and position["default"] == 0
    assert _cursors(state_url)[("demo", "course_completions")] == before[("demo", "course_completions")]

    again = deployment.run("sync", "--stream", "forum_posts", check=True)
    forum = next(r for r in _rows(again.stdout) if r[1] == "forum_posts")
    assert int(forum[2]) > 0 and forum[3] == "0"  # re-read, nothing new
    assert "sent 0 statements" in deployment.run("outbox", "flush", check=True).stdout
    assert {s["id"] for s in lrs_statements(fresh_ralph)} == held
    # The walk moved the cursor forward again to where it was.
    assert _cursors(state_url)[("demo", "forum_posts")] == before[("demo", "forum_posts")]


def _conflicting(body: str) -> str:
    """The same statement id with other content (what makes the LRS answer 409)."""
    statement = json.loads(body)
    statement["timestamp"] = "2020-01-01T00:00:00Z"
    return json.dumps(statement, sort_keys=True, separators=(",", ":"))


def test_dead_letters_list_export_import_and_repair(tmp_path, fresh_ralph, make_deployment):
    state_url = f"sqlite:///{tmp_path / 's.db'}"
    deployment = make_deployment(state_url, fresh_ralph.url, fresh_ralph.password)
    deployment.run("import", str(write_activity_file(tmp_path / "p.jsonl", forum_posts(6, site="dl"))), check=True)
    with Session(store.make_engine(state_url)) as session:
        victim = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).first()
        victim_id, victim_body = victim.statement_id, victim.body
    with LRSClient(fresh_ralph.url, fresh_ralph.username, fresh_ralph.password) as client:
        client.post_statements([_conflicting(victim_body)])
    flushed = deployment.run("outbox", "flush", check=True)
    assert "1 dead letters" in flushed.stdout

    listed = deployment.run("outbox", "list", "--status", "dead", check=True).stdout
    rows = _rows(listed)
    assert "outbox: 1 dead" in listed and rows[0][1] == victim_id and rows[0][3] == "1"
    # The 409 is compared with what the LRS holds (issue 24): the reason names the first difference.
    assert "HTTP409:theLRSholdsadifferentstatement" in "".join(r[5] for r in rows)  # folded by the table
    pending = deployment.run("outbox", "list", "--status", "pending", check=True).stdout
    assert "outbox: 0 pending" in pending

    export = tmp_path / "dead.jsonl"
    assert "wrote 1 dead letters" in deployment.run("outbox", "export", str(export), check=True).stdout
    assert oct(export.stat().st_mode & 0o777) == "0o600"
    line = json.loads(export.read_text())
    assert line["statement_id"] == victim_id and line["body"] == victim_body and line["last_error"]

    # Replayed as is: requeued, refused again.
    replay = deployment.run("outbox", "import", str(export), check=True).stdout
    assert "1 dead letters requeued" in replay
    assert "1 dead letters" in deployment.run("outbox", "flush", check=True).stdout

    # Repaired (the body the LRS holds), without the checksum: replaces the dead letter and lands.
    line["body"] = _conflicting(victim_body)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text(json.dumps(line) + "\n")
    refused = deployment.run("outbox", "import", str(tampered))
    assert refused.returncode == 1 and "line 1: body_sha256 does not match" in refused.stderr
    del line["body_sha256"]
    repaired = tmp_path / "repaired.jsonl"
    repaired.write_text(json.dumps(line) + "\n")
    assert "1 replaced by a repaired body" in deployment.run("outbox", "import", str(repaired), check=True).stdout
    assert "sent 1 statements" in deployment.run("outbox", "flush", check=True).stdout
    assert _outbox(state_url)[victim_id] == "sent"
    again = deployment.run("outbox", "import", str(repaired), check=True).stdout
    assert "1 already queued or sent" in again

    # A bad line refuses the whole file, naming the line; nothing is stored.
    bad = tmp_path / "bad.jsonl"
    other = json.loads(export.read_text())
    other["statement_id"] = "00000000-0000-0000-0000-000000000000"
    bad.write_text(export.read_text() + json.dumps(other) + "\n")
    before = _outbox(state_url)
    failed = deployment.run("outbox", "import", str(bad))
    assert failed.returncode == 1 and "line 2: statement_id" in failed.stderr
    assert _outbox(state_url) == before

    # Another deployment takes the file as new statements.
    elsewhere_url = f"sqlite:///{tmp_path / 'other.db'}"
    elsewhere = make_deployment(elsewhere_url, fresh_ralph.url, fresh_ralph.password)
    assert "1 added" in elsewhere.run("outbox", "import", str(export), check=True).stdout
    assert _outbox(elsewhere_url) == {victim_id: "pending"}


def test_outbox_status_counts_every_status_forgotten_too(tmp_path, state_url, ralph, make_deployment):
    """``forget`` marks unsent statements ``forgotten``: ``outbox status`` counts them with the rest."""
    deployment = make_deployment(state_url, ralph.url, ralph.password)
    deployment.run("import", str(write_activity_file(tmp_path / "p.jsonl", forum_posts(7, site="st"))), check=True)
    engine = store.open_engine(state_url)
    with Session(engine) as session, session.begin():
        rows = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
        for row, status in zip(rows, ["sent", "sent", "dead", "forgotten", "forgotten", "forgotten"], strict=False):
            row.status = status
    shown = deployment.run("outbox", "status", check=True).stdout
    assert {row[0]: int(row[1]) for row in _rows(shown)} == {"pending": 1, "sent": 2, "dead": 1, "forgotten": 3}
    assert store.outbox_counts(engine).by_status == {"pending": 1, "sent": 2, "dead": 1, "forgotten": 3}

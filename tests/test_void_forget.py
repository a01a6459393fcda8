"""``void`` and ``forget`` end to end: roster, activity, JP records and ledger, real Ralph, SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import MetaData, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.store.models import OutboxRow
from tests.fixtures.activities import forum_posts, write_activity_file
from tests.fixtures.lrs import lrs_statements
from tests.test_jp import NIP, _activities, _roster
from tests.test_jp import _deploy as _jp_deploy

OTHER_NIP = "199001012015031001"  # the NIP tests.fixtures.activities.forum_posts gives some posts
BASE = "https://lms-bridge.id/xapi"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def _setup(tmp_path, make_deployment, state_url, lrs):
    """A person with a course, CoP days on three platforms and a webinar; JP computed, flushed, mirrored."""
    deployment = _jp_deploy(tmp_path, make_deployment, state_url, lrs)
    deployment.run("people", "import", str(_roster(tmp_path)), check=True)
    deployment.run("import", str(write_activity_file(tmp_path / "a.jsonl", _activities())), check=True)
    deployment.run("import", str(write_activity_file(tmp_path / "o.jsonl", forum_posts(6, site="other"))), check=True)
    deployment.run("jp", "compute", "--year", "2026", check=True)
    deployment.run("outbox", "flush", check=True)
    deployment.run("ledger", "sync", check=True)
    return deployment


def _dump(state_url: str) -> str:
    """Every value of every column of every table (reflected: tables the models do not know too)."""
    engine = store.make_engine(state_url)
    metadata = MetaData()
    metadata.reflect(engine)
    parts = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                parts.extend(f"{table.name}.{key}={value}" for key, value in row._mapping.items())
    return "\n".join(parts)


def _voided_targets(statements: list[dict]) -> dict[str, dict]:
    return {s["object"]["id"]: s for s in statements if s["verb"]["id"] == VOIDED}


def _jp_record_ids(lrs, rule: str) -> list[str]:
    return [s["id"] for s in lrs_statements(lrs) if s["verb"]["id"] == "http://id.tincanapi.com/verb/earned"
            and s["context"]["extensions"][f"{BASE}/extensions/rule"]["id"] == rule]


def test_void_by_statement_and_by_person_reach_the_lrs_ledger_and_jp(tmp_path, state_url, fresh_ralph,
                                                                      make_deployment):
    deployment = _setup(tmp_path, make_deployment, state_url, fresh_ralph)
    [webinar] = _jp_record_ids(fresh_ralph, "webinar")

    usage = deployment.run("void", "--reason", "x")
    assert usage.returncode == 2 and "give either --statement ID" in usage.stderr
    first = deployment.run("void", "--statement", webinar, "--reason", "duplicate webinar record", check=True)
    assert "1 statements to void: queued 1 voiding statements, 0 voided before" in first.stdout
    again = deployment.run("void", "--statement", webinar, "--reason", "duplicate webinar record", check=True)
    assert "queued 0 voiding statements, 1 voided before" in again.stdout
    deployment.run("outbox", "flush", check=True)
    void = _voided_targets(lrs_statements(fresh_ralph))[webinar]
    assert void["actor"]["account"] == {"homePage": BASE, "name": "lms-bridge"}
    assert void["context"]["extensions"][f"{BASE}/extensions/void-reason"] == "duplicate webinar record"

    deployment.run("ledger", "sync", check=True)
    person = json.loads(deployment.run("report", "person", NIP, "--year", "2026", "--format", "json",
                                       check=True).stdout)
    statuses = {row["record_id"]: row["status"] for row in person["rows"] if row["record_id"]}
    assert statuses[webinar] == "voided" and list(statuses.values()).count("counted") == 4

    # The person's forum activity on site "lms" from 4 March on: the reply of day 4 and the discussion of day 5.
    by_person = deployment.run("void", "--person", NIP, "--source", "lms", "--since", "2026-03-04", "--reason",
                               "posted by mistake", check=True)
    assert "2 statements to void: queued 2 voiding statements" in by_person.stdout
    assert "2 evidence rows" in by_person.stdout
    computed = deployment.run("jp", "compute", "--year", "2026", check=True).stdout
    assert "2 voided" in computed, computed  # the CoP days 4 and 5 lost their evidence
    deployment.run("outbox", "flush", check=True)
    targets = _voided_targets(lrs_statements(fresh_ralph))
    voided_natives = {s["context"]["extensions"][f"{BASE}/extensions/source"]["native_id"]
                      for s in lrs_statements(fresh_ralph) if s["id"] in targets and s["verb"]["id"] != VOIDED
                      and f"{BASE}/extensions/source" in s.get("context", {}).get("extensions", {})}
    assert voided_natives == {"9002", "77"}

    unknown = deployment.run("void", "--statement", "6f1c8a52-0000-4000-8000-000000000000", "--reason", "x")
    assert unknown.returncode == 1 and "neither in the outbox, nor in the ledger, nor in the LRS" in unknown.stderr
    void_of_void = deployment.run("void", "--statement", void["id"], "--reason", "x")
    assert void_of_void.returncode == 1 and "itself a voiding statement" in void_of_void.stderr


def test_forget_leaves_no_trace_of_the_nip_and_voids_every_statement_of_the_person(tmp_path, state_url, fresh_ralph,
                                                                                   make_deployment):
    deployment = _setup(tmp_path, make_deployment, state_url, fresh_ralph)
    # A JP record voided but not posted yet: its void names the person and must be rewritten, not lost.
    rules = tmp_path / "rules.toml"
    text = rules.read_text()
    webinar = text.index('id = "webinar"')
    rules.write_text(text[:webinar] + text[webinar:].replace("version = 1", "version = 2", 1))
    assert "1 voided" in deployment.run("jp", "compute", "--year", "2026", check=True).stdout
    before = _dump(state_url)
    assert NIP in before and OTHER_NIP in before

    refused = deployment.run("forget", NIP)
    assert refused.returncode == 130 and _dump(state_url) == before
    dry = deployment.run("forget", NIP, "--dry-run", check=True)
    assert "would remove the person row" in dry.stdout and _dump(state_url) == before

    result = deployment.run("forget", NIP, "--yes", check=True)
    assert f"{NIP}: removed the person row" in result.stdout
    assert "3 pseudonym links" in result.stdout and "1 pending voids rewritten without the NIP" in result.stdout
    assert "the LRS keeps voided statements" in result.stdout
    after = _dump(state_url)
    assert NIP not in after, [line for line in after.splitlines() if NIP in line][:5]
    assert OTHER_NIP in after  # nobody else was touched
    assert "runs.command=forget" in after

    deployment.run("outbox", "flush", check=True)
    statements = lrs_statements(fresh_ralph)
    targets = _voided_targets(statements)
    voids_by_us = [s for s in targets.values() if s["actor"]["account"]["name"] == "lms-bridge"]
    assert voids_by_us and all(s["context"]["extensions"][f"{BASE}/extensions/void-reason"].startswith(
        "data subject deletion request") for s in voids_by_us)
    pseudonym_actors = {s["actor"]["account"]["name"] for s in statements
                        if s["actor"].get("account", {}).get("homePage", "").startswith(f"{BASE}/pseudonym/")}
    of_person = [s for s in statements if s["verb"]["id"] != VOIDED and (
        s["actor"]["account"]["name"] == NIP or s["actor"]["account"]["name"] in pseudonym_actors)]
    assert len(of_person) >= 10
    assert all(s["id"] in targets for s in of_person)  # every statement of the person is voided
    others = [s for s in statements if s["actor"]["account"]["name"] == OTHER_NIP]
    assert others and not any(s["id"] in targets for s in others)

    # Idempotent: nothing left, nothing queued.
    twice = deployment.run("forget", NIP, "--yes", check=True)
    assert "no person row" in twice.stdout and "queued 0 voiding statements" in twice.stdout
    deployment.run("jp", "compute", "--year", "2026", check=True)
    assert NIP not in _dump(state_url)
    with Session(store.make_engine(state_url)) as session:
        forgotten = session.scalars(select(OutboxRow.body).where(OutboxRow.status == "forgotten")).all()
    assert all(json.loads(body)["forgotten"] is True for body in forgotten)

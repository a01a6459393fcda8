"""``void`` and ``forget`` end to end: roster, activity, JP records and ledger, real Ralph, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import date

import pytest
from sqlalchemy import MetaData, func, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.config.settings import load_settings
from lms_bridge.identifiers import phone_identifier
from lms_bridge.ingest.pipeline import Pipeline
from lms_bridge.outbox import voids
from lms_bridge.store.models import Evidence, ForgottenPerson, IdentityLink, JPPending, JPRecord, OutboxRow, Person
from tests.fixtures.activities import forum_posts, write_activity_file
from tests.fixtures.lrs import lrs_statements
from tests.fixtures.moodle import ADMIN_TOKEN, moodle_source
from tests.test_jp import KEY, NIP, PHONE, _activities, _at, _roster, pseudonym
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
    return [
        s["id"]
        for s in lrs_statements(lrs)
        if s["verb"]["id"] == "http://id.tincanapi.com/verb/earned"
        and s["context"]["extensions"][f"{BASE}/extensions/rule"]["id"] == rule
    ]


def test_void_by_statement_and_by_person_reach_the_lrs_ledger_and_jp(tmp_path, state_url, fresh_ralph, make_deployment):
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
    person = json.loads(
        deployment.run("report", "person", NIP, "--year", "2026", "--format", "json", check=True).stdout
    )
    statuses = {row["record_id"]: row["status"] for row in person["rows"] if row["record_id"]}
    assert statuses[webinar] == "voided" and list(statuses.values()).count("counted") == 4

    # The person's forum activity on site "lms" from 4 March on: the reply of day 4 and the discussion of day 5.
    by_person = deployment.run(
        "void", "--person", NIP, "--source", "lms", "--since", "2026-03-04", "--reason", "posted by mistake", check=True
    )
    assert "2 statements to void: queued 2 voiding statements" in by_person.stdout
    assert "2 evidence rows" in by_person.stdout
    computed = deployment.run("jp", "compute", "--year", "2026", check=True).stdout
    assert "2 voided" in computed, computed  # the CoP days 4 and 5 lost their evidence
    deployment.run("outbox", "flush", check=True)
    targets = _voided_targets(lrs_statements(fresh_ralph))
    voided_natives = {
        s["context"]["extensions"][f"{BASE}/extensions/source"]["native_id"]
        for s in lrs_statements(fresh_ralph)
        if s["id"] in targets
        and s["verb"]["id"] != VOIDED
        and f"{BASE}/extensions/source" in s.get("context", {}).get("extensions", {})
    }
    assert voided_natives == {"9002", "77"}

    unknown = deployment.run("void", "--statement", "6f1c8a52-0000-4000-8000-000000000000", "--reason", "x")
    assert unknown.returncode == 1 and "neither in the outbox, nor in the ledger, nor in the LRS" in unknown.stderr
    void_of_void = deployment.run("void", "--statement", void["id"], "--reason", "x")
    assert void_of_void.returncode == 1 and "itself a voiding statement" in void_of_void.stderr


def test_forget_leaves_no_trace_of_the_nip_and_voids_every_statement_of_the_person(
    tmp_path, state_url, fresh_ralph, make_deployment
):
    deployment = _setup(tmp_path, make_deployment, state_url, fresh_ralph)
    # A JP record voided but not posted yet: its void names the person and must be rewritten, not lost.
    rules = tmp_path / "rules.toml"
    text = rules.read_text()
    webinar = text.index('id = "webinar"')
    rules.write_text(text[:webinar] + text[webinar:].replace("version = 1", "version = 2", 1))
    assert "1 voided" in deployment.run("jp", "compute", "--year", "2026", check=True).stdout
    # A credit held back for the person (a course whose program JP is unknown) names them too.
    with Session(store.make_engine(state_url)) as session:
        session.add(
            JPPending(
                nip=NIP,
                rule_id="course",
                period="2026",
                period_day=date(2026, 3, 1),
                activity_key="moodle|lms|course|99",
                site_id="lms",
                course="PT-UNKNOWN",
                evidence_ids="[]",
                evidence_count=1,
            )
        )
        session.commit()
    before = _dump(state_url)
    assert NIP in before and OTHER_NIP in before

    refused = deployment.run("forget", NIP)
    assert refused.returncode == 130 and _dump(state_url) == before
    dry = deployment.run("forget", NIP, "--dry-run", check=True)
    assert "would remove the person row" in dry.stdout and _dump(state_url) == before

    result = deployment.run("forget", NIP, "--yes", check=True)
    assert f"{NIP}: removed the person row" in result.stdout
    assert "1 held credits" in result.stdout
    assert "3 pseudonym links" in result.stdout and "1 pending voids rewritten without the NIP" in result.stdout
    assert "the LRS keeps voided statements" in result.stdout
    assert "kept a tombstone of 4 keyed digests" in result.stdout  # the NIP and its 3 roster pseudonyms
    after = _dump(state_url)
    assert NIP not in after, [line for line in after.splitlines() if NIP in line][:5]
    assert OTHER_NIP in after  # nobody else was touched
    assert "runs.command=forget" in after

    deployment.run("outbox", "flush", check=True)
    statements = lrs_statements(fresh_ralph)
    targets = _voided_targets(statements)
    voids_by_us = [s for s in targets.values() if s["actor"]["account"]["name"] == "lms-bridge"]
    assert voids_by_us and all(
        s["context"]["extensions"][f"{BASE}/extensions/void-reason"].startswith("data subject deletion request")
        for s in voids_by_us
    )
    pseudonym_actors = {
        s["actor"]["account"]["name"]
        for s in statements
        if s["actor"].get("account", {}).get("homePage", "").startswith(f"{BASE}/pseudonym/")
    }
    of_person = [
        s
        for s in statements
        if s["verb"]["id"] != VOIDED
        and (s["actor"]["account"]["name"] == NIP or s["actor"]["account"]["name"] in pseudonym_actors)
    ]
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

    # It stays forgotten. The LRS still holds the person's (voided) records: a full ledger re-read mirrors none.
    held = {s["id"] for s in lrs_statements(fresh_ralph)}
    deployment.run("ledger", "sync", "--full", check=True)
    # The HR roster still lists the person: skipped and counted, never named.
    roster = tmp_path / "roster2.csv"
    roster.write_text(
        _roster(tmp_path).read_text(encoding="utf-8") + f"{OTHER_NIP},Siti Rahma,BPSDM-02,Bidang TI,Analis,PNS,,,\n",
        encoding="utf-8",
    )
    imported = deployment.run("people", "import", str(roster), check=True).stdout
    assert "1 persons imported" in imported and "1 rows of forgotten people skipped" in imported, imported
    assert NIP not in imported
    # New activity naming the person (their NIP, their phone's pseudonym) is dropped; the rest is queued.
    deployment.run("import", str(write_activity_file(tmp_path / "late.jsonl", _late_activities())), check=True)
    deployment.run("jp", "compute", "--year", "2026", check=True)
    deployment.run("outbox", "flush", check=True)
    after = _dump(state_url)
    assert NIP not in after, [line for line in after.splitlines() if NIP in line][:5]
    assert pseudonym(phone_identifier(PHONE)) not in after
    assert "forgotten_people.digest=" in after and "9100" in after
    statements = lrs_statements(fresh_ralph)
    new = [s["actor"]["account"]["name"] for s in statements if s["id"] not in held]
    assert OTHER_NIP in new and not {NIP, pseudonym(phone_identifier(PHONE))} & set(new), new
    voided = _voided_targets(statements)
    assert all(s["id"] in voided for s in statements if s["actor"]["account"]["name"] == NIP)


def _late_activities() -> list[Activity]:
    """After the forget: the person completes another course (their NIP on the record) and posts on WhatsApp
    from the phone the roster listed; somebody else posts on the forum."""
    course = ObjectRef("course", "13", "Pelatihan Lanjut", "https://lms.example.go.id/course/view.php?id=13")
    return [
        Activity(
            source="moodle",
            site="lms",
            kind=Kind.COURSE_COMPLETED,
            native_id="course=13|user=101",
            actor="101",
            object=course,
            occurred_at=_at(9, 11),
            extras={"nip": NIP, "course_shortname": "PT-EVAL", "course_idnumber": "Y", "course_category": 1},
        ),
        Activity(
            source="whatsapp",
            site="cop-wi",
            kind=Kind.MESSAGE_POSTED,
            native_id="wa-late",
            actor=pseudonym(phone_identifier(PHONE)),
            object=ObjectRef("message", "wa-late"),
            occurred_at=_at(10, 10),
            grouping=ObjectRef("community", "cop-wi", "CoP Widyaiswara"),
        ),
        Activity(
            source="moodle",
            site="lms",
            kind=Kind.REPLY_CREATED,
            native_id="9100",
            actor="202",
            object=ObjectRef("post", "9100", None, "https://lms.example.go.id/mod/forum/discuss.php?d=5#p9100"),
            occurred_at=_at(10, 9),
            extras={"nip": OTHER_NIP},
        ),
    ]


def test_a_voided_activity_stays_voided_after_a_backfill_brings_its_evidence_back(
    tmp_path, state_url, ralph, fake_moodle, make_deployment
):
    """``void`` drops the activity's evidence, a backfill of the window stores it again (same statement, same
    evidence): ``jp compute`` must still leave it out, because the outbox holds its void."""
    (tmp_path / "program.toml").write_text('format = 1\n[default]\ndefault = "10"\n', encoding="utf-8")
    deployment = make_deployment(
        state_url,
        ralph.url,
        ralph.password,
        extra_toml=moodle_source(fake_moodle) + '\n[jp]\nprogram_jp_file = "program.toml"\n',
    )
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    deployment.run("sync", check=True)
    engine = store.make_engine(state_url)
    with Session(engine) as session:  # a completion of a person with a NIP: worth 10 JP
        completion, nip, course, when = session.execute(
            select(Evidence.statement_id, Person.nip, Evidence.object_key, Evidence.occurred_at)
            .join(
                IdentityLink,
                (IdentityLink.source == Evidence.source)
                & (IdentityLink.site_id == Evidence.site_id)
                & (IdentityLink.local_id == Evidence.local_actor),
            )
            .join(Person, Person.id == IdentityLink.person_id)
            .where(Evidence.kind == "course_completed")
            .order_by(Evidence.statement_id)
        ).first()
    year = str(when.year)

    voided = deployment.run("void", "--statement", completion, "--reason", "completion recorded in error", check=True)
    assert "queued 1 voiding statements" in voided.stdout and "1 evidence rows" in voided.stdout
    backfilled = deployment.run(
        "backfill", "--site", "demo", "--since", f"{year}-01-01", "--stream", "course_completions", check=True
    )
    assert "course_completions" in backfilled.stdout
    with Session(engine) as session:
        assert session.get(Evidence, completion) is not None  # the backfill stored the evidence again
    deployment.run("jp", "compute", "--year", year, check=True)
    with Session(engine) as session:
        records = session.execute(
            select(JPRecord.nip, JPRecord.activity_key, OutboxRow.body)
            .join(OutboxRow, OutboxRow.statement_id == JPRecord.statement_id)
            .where(JPRecord.rule_id == "training-completed", JPRecord.status == "active")
        ).all()
    assert len(records) > 5  # the other completions earn their JP
    assert (nip, f"moodle/demo/{course}") not in {(r.nip, r.activity_key) for r in records}
    assert not any(completion in r.body for r in records)  # no JP from the voided completion


def test_a_source_account_carrying_a_forgotten_nip_is_never_linked_again(tmp_path, state_url, monkeypatch):
    """A Moodle account whose idnumber is a forgotten NIP: the link is refused and the account gets its own
    tombstone, so its activity is dropped in that run and in a later run that reads no links (in-process:
    the pipeline is what a sync drives; the real-Moodle path is the same ``Pipeline.commit``)."""
    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", KEY)
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "{state_url}"\n', encoding="utf-8")
    settings = load_settings(config)
    engine = store.open_engine(state_url, None)
    assert voids.forget_person(engine, settings, NIP).tombstones == 1  # nobody stored yet: the NIP alone

    def post(native: str, actor: str) -> Activity:
        return Activity(
            source="moodle",
            site="lms",
            kind=Kind.REPLY_CREATED,
            native_id=native,
            actor=actor,
            object=ObjectRef("post", native, None, f"https://lms.example.go.id/p{native}"),
            occurred_at=_at(3, 9),
        )

    first = Pipeline(engine, settings, site_url="https://lms.example.go.id").commit(
        "lms",
        "forum_posts",
        [post("1", "555"), post("2", "556")],
        None,
        [store.LinkIn("moodle", "lms", "555", NIP), store.LinkIn("moodle", "lms", "556", OTHER_NIP)],
    )
    later = Pipeline(engine, settings, site_url="https://lms.example.go.id").commit(
        "lms", "forum_posts", [post("3", "555"), post("4", "556")], None
    )
    assert (first.forgotten, first.new, later.forgotten, later.new) == (1, 1, 1, 1)
    with Session(engine) as session:
        assert session.scalars(select(Person.nip)).all() == [OTHER_NIP]
        assert session.scalars(select(IdentityLink.local_id)).all() == ["556"]
        assert set(session.scalars(select(Evidence.local_actor))) == {"556"}
        assert session.scalar(select(func.count()).select_from(ForgottenPerson)) == 2  # the NIP and account 555
    assert NIP not in _dump(state_url)


def test_a_sync_refused_for_want_of_the_pseudonym_key_leaves_no_running_run(tmp_path, monkeypatch):
    """Once someone is forgotten, a sync without the pseudonym key must stop before it starts a run: a run row
    left 'running' would never be finished (the source is never called: it stops first)."""
    from lms_bridge.errors import ConfigError
    from lms_bridge.ingest import runner as sync_core
    from lms_bridge.store.models import Run

    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = tmp_path / "lms-bridge.toml"
    config.write_text(
        f'[state]\nurl = "{state_url}"\n[[sources]]\nid = "bot"\ntype = "telegram_bot"\n'
        'token_env = "BOT_TOKEN"\napi_url = "http://127.0.0.1:9"\nchats = { "-1001" = "cop" }\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", KEY)
    engine = store.open_engine(state_url, None)
    voids.forget_person(engine, load_settings(config), NIP)
    monkeypatch.delenv("LMS_BRIDGE_PSEUDONYM_KEY")
    settings = load_settings(config, environ={"BOT_TOKEN": "123:abc"})
    ((source, streams),) = sync_core.sync_sources(settings)
    with pytest.raises(ConfigError, match="people were forgotten"):
        sync_core.sync_source(engine, settings, source, streams=streams)
    with Session(engine) as session:
        assert session.scalars(select(Run.status).where(Run.command == "sync")).all() == []


def test_a_forget_that_commits_while_a_sync_runs_reaches_its_next_batch(tmp_path, state_url, monkeypatch):
    """A sync reads the tombstones when it starts; ``forget`` commits between two batches of that same
    pipeline (deterministic: no threads, no sleeps). The next batch's transaction sees the tombstones
    changed (``Tombstones.guard``), reads them again and drops the person: no link, no evidence, no
    outbox row comes back, though the pipeline's cached links still map account 555 to the NIP."""
    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", KEY)
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "{state_url}"\n', encoding="utf-8")
    settings = load_settings(config)
    engine = store.open_engine(state_url, None)

    def post(native: str, actor: str) -> Activity:
        return Activity(
            source="moodle",
            site="lms",
            kind=Kind.REPLY_CREATED,
            native_id=native,
            actor=actor,
            object=ObjectRef("post", native, None, f"https://lms.example.go.id/p{native}"),
            occurred_at=_at(3, 9),
        )

    pipeline = Pipeline(engine, settings, site_url="https://lms.example.go.id")
    links = [store.LinkIn("moodle", "lms", "555", NIP), store.LinkIn("moodle", "lms", "556", OTHER_NIP)]
    first = pipeline.commit("lms", "forum_posts", [post("1", "555"), post("2", "556")], {"n": 1}, links)
    assert (first.new, first.forgotten) == (2, 0)
    forgot = voids.forget_person(engine, settings, NIP)
    assert (forgot.identity_links, forgot.statements) == (1, 1)

    later = pipeline.commit(
        "lms",
        "forum_posts",
        [post("3", "555"), post("4", "556")],
        {"n": 2},
        [store.LinkIn("moodle", "lms", "555", NIP)],
    )
    assert (later.new, later.forgotten) == (1, 1)
    with Session(engine) as session:
        assert session.scalars(select(Person.nip)).all() == [OTHER_NIP]
        assert session.scalars(select(IdentityLink.local_id)).all() == ["556"]
        assert set(session.scalars(select(Evidence.local_actor))) == {"556"}
        assert session.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "pending")) == 3
    assert store.get_cursor(engine, "lms", "forum_posts") == {"n": 2}  # the batch itself committed
    assert NIP not in _dump(state_url)


def test_a_batch_that_starts_while_a_forget_is_in_its_transaction_waits_and_drops_the_person(
    pg_database_url, tmp_path, monkeypatch
):
    """PostgreSQL, the interleaving inside one batch: ``forget`` holds the barrier in an open transaction (its
    tombstones written, not committed) when a batch of the same sync starts. The batch waits on the barrier
    (seen in pg_locks, so the order is certain), then reads the committed tombstones and drops the person.
    The paused ``forget`` is its first steps done by hand (the barrier, then the tombstones it writes)."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import text

    from lms_bridge.identity.pseudonym import pseudonymizer_from_settings
    from lms_bridge.identity.resolver import forgotten_digest, tombstone_barrier
    from lms_bridge.store.people import add_tombstones

    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", KEY)
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "{pg_database_url}"\n', encoding="utf-8")
    settings = load_settings(config)
    engine = store.open_engine(pg_database_url, None)

    def post(native: str, actor: str) -> Activity:
        return Activity(
            source="moodle",
            site="lms",
            kind=Kind.REPLY_CREATED,
            native_id=native,
            actor=actor,
            object=ObjectRef("post", native, None, f"https://lms.example.go.id/p{native}"),
            occurred_at=_at(3, 9),
        )

    pipeline = Pipeline(engine, settings, site_url="https://lms.example.go.id")
    pipeline.commit("lms", "forum_posts", [post("1", "556")], None, [store.LinkIn("moodle", "lms", "555", NIP)])
    pseudonymize = pseudonymizer_from_settings(settings)
    with Session(engine) as forget, ThreadPoolExecutor(max_workers=1) as pool:
        tombstone_barrier(forget, exclusive=True)
        add_tombstones(
            forget,
            [
                forgotten_digest(pseudonymize, "nip", NIP),
                forgotten_digest(pseudonymize, "account", "moodle", "lms", "555"),
            ],
        )
        batch = pool.submit(pipeline.commit, "lms", "forum_posts", [post("3", "555"), post("4", "556")], None)
        deadline = time.monotonic() + 30
        with engine.connect() as watcher:
            while not watcher.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")):
                assert not batch.done(), batch.result()  # it must wait for the forget, not run past it
                assert time.monotonic() < deadline, "the batch neither waited nor finished"
        forget.commit()
        report = batch.result(timeout=30)
    assert (report.new, report.forgotten) == (1, 1)
    with Session(engine) as session:
        assert set(session.scalars(select(Evidence.local_actor))) == {"556"}
    engine.dispose()

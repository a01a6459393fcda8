"""Flushing the outbox into a real Ralph LRS: nothing lost, nothing posted twice.

Every test runs on SQLite and PostgreSQL, against a fresh Ralph (so it can count
everything the LRS holds), through the real CLI in a subprocess. Faults come
from a real loopback proxy (tests/fixtures/lrs.py), never from patched requests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.settings import load_settings
from lms_bridge.config.statements import statement_settings
from lms_bridge.demo.ralph import RalphLRS
from lms_bridge.identity.resolver import actor_for
from lms_bridge.store.models import OutboxRow
from tests.fixtures.activities import forum_posts
from tests.fixtures.deployment import Deployment
from tests.fixtures.lrs import FaultyLRS, lrs_statements
from xapi.statements import BuiltStatement, build_statement


def _queue(state_url: str, count: int, site: str | None = None) -> list[BuiltStatement]:
    """Put ``count`` real statements in the outbox; return them."""
    settings = load_settings(environ={})
    builder = statement_settings(settings)
    site = site or f"t-{uuid.uuid4().hex[:8]}"
    built = [
        build_statement(
            builder,
            activity,
            actor_for(activity, authority="https://siasn.bkn.go.id", base_iri=builder.base_iri, site_url=None),
        )
        for activity in forum_posts(count, site=site)
    ]
    engine = store.open_engine(state_url)
    store.commit_batch(engine, site_id=site, stream="posts", statements=built, position=count)
    return built


def _rows(state_url: str) -> list[OutboxRow]:
    with Session(store.make_engine(state_url)) as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def _assert_lrs_holds_exactly(lrs, built: list[BuiltStatement]) -> None:
    held = lrs_statements(lrs)
    ids = [s["id"] for s in held]
    assert len(ids) == len(set(ids)), "a statement is stored twice"
    assert sorted(ids) == sorted(b.id for b in built)
    by_id = {s["id"]: s for s in held}
    for b in built:  # the LRS holds our content (plus its own stored/authority)
        sent = json.loads(b.body)
        assert {k: by_id[b.id][k] for k in sent} == sent


def test_flush_posts_every_statement_once_and_a_rerun_posts_nothing(state_url, fresh_ralph, make_deployment):
    built = _queue(state_url, 23)
    deployment = make_deployment(state_url, fresh_ralph.url, fresh_ralph.password, lrs_options="batch_size = 5")
    first = deployment.run("outbox", "flush", check=True)
    assert "sent 23 statements in 5 requests, 0 dead letters" in first.stdout
    _assert_lrs_holds_exactly(fresh_ralph, built)
    second = deployment.run("outbox", "flush", check=True)
    assert "sent 0 statements in 0 requests" in second.stdout
    assert all(row.status == "sent" and row.sent_at is not None for row in _rows(state_url))
    status = deployment.run("outbox", "status", check=True).stdout
    assert "pending │ 0" in status and "sent    │ 23" in status


def test_server_errors_are_retried_until_the_lrs_recovers(state_url, fresh_ralph, make_deployment):
    built = _queue(state_url, 12)
    with FaultyLRS(fresh_ralph.url, plan=["500", "500"]) as proxy:
        deployment = make_deployment(state_url, proxy.url, fresh_ralph.password, lrs_options="batch_size = 5")
        result = deployment.run("outbox", "flush", check=True)
    assert proxy.actions[:3] == ["500", "500", "ok"]
    assert "sent 12 statements" in result.stdout
    assert result.stderr.count("HTTP 500") == 2  # one log line per failed attempt
    _assert_lrs_holds_exactly(fresh_ralph, built)


def test_timeout_after_the_lrs_stored_the_batch_posts_nothing_twice(state_url, fresh_ralph, make_deployment):
    built = _queue(state_url, 8)
    with FaultyLRS(fresh_ralph.url, plan=["slow"], slow_seconds=2.5) as proxy:
        deployment = make_deployment(state_url, proxy.url, fresh_ralph.password, lrs_options="timeout = 1")
        result = deployment.run("outbox", "flush", check=True)
    assert proxy.actions == ["slow", "ok"]
    assert "did not answer within 1 s" in result.stderr
    _assert_lrs_holds_exactly(fresh_ralph, built)


def test_a_down_lrs_keeps_rows_pending_and_exits_nonzero(state_url, fresh_ralph, make_deployment):
    _queue(state_url, 6)
    with FaultyLRS(fresh_ralph.url) as proxy:
        proxy.on_post = lambda number: "500"  # a total outage: every POST, whole batch or one statement
        deployment = make_deployment(state_url, proxy.url, fresh_ralph.password, lrs_options="max_attempts = 3")
        result = deployment.run("outbox", "flush")
    assert result.returncode == 1
    assert "failed 3 times in a row" in result.stderr and "Traceback" not in result.stderr
    # The last attempt splits the batch, but two statements failing alone with nothing accepted is an
    # outage: it stops there (3 + [3] + [1] + [2] + [1]), and no good statement becomes a dead letter.
    assert proxy.posts == 7
    rows = _rows(state_url)
    assert all(row.status == "pending" and row.attempts == 3 for row in rows)
    assert lrs_statements(fresh_ralph) == []


def _adl_refusal(poisoned: str) -> Callable[[bytes], tuple[int, bytes] | None]:
    """Answer like ADL's LRS to any batch that holds ``poisoned`` (an account name over its column limit)."""

    def answer(body: bytes) -> tuple[int, bytes] | None:
        if poisoned.encode() not in body:
            return None
        return 500, b'{"detail":"value too long for type character varying(50)"}'

    return answer


def test_a_poison_statement_is_a_dead_letter_and_the_rest_flows(
    state_url: str, fresh_ralph: RalphLRS, make_deployment: Callable[..., Deployment]
) -> None:
    built = _queue(state_url, 10)
    poisoned = built[6].id
    with FaultyLRS(fresh_ralph.url) as proxy:
        proxy.answer_post = _adl_refusal(poisoned)
        deployment = make_deployment(state_url, proxy.url, fresh_ralph.password, lrs_options="max_attempts = 2")
        result = deployment.run("outbox", "flush", check=True)
        assert "sent 9 statements" in result.stdout and "1 dead letters" in result.stdout
        dead = [row for row in _rows(state_url) if row.status == "dead"]
        assert [row.statement_id for row in dead] == [poisoned]
        assert "HTTP 500 for this statement alone, twice" in (dead[0].last_error or "")
        assert "value too long for type character varying(50)" in (dead[0].last_error or "")
        _assert_lrs_holds_exactly(fresh_ralph, [b for b in built if b.id != poisoned])
        # The next flush is not blocked: new statements go out at the first attempt.
        later = _queue(state_url, 4)
        posts_before = proxy.posts
        again = deployment.run("outbox", "flush", check=True)
    assert "sent 4 statements in 1 requests, 0 dead letters" in again.stdout
    assert proxy.posts == posts_before + 1
    _assert_lrs_holds_exactly(fresh_ralph, [b for b in built + later if b.id != poisoned])


def test_a_statement_failing_alone_once_is_not_poison(
    state_url: str, fresh_ralph: RalphLRS, make_deployment: Callable[..., Deployment]
) -> None:
    built = _queue(state_url, 6)
    flaky = built[0].id.encode()
    seen = {"count": 0}

    def answer(body: bytes) -> tuple[int, bytes] | None:
        # The batch fails on both attempts, its first half and the statement alone too; then it passes.
        if flaky in body:
            seen["count"] += 1
            if seen["count"] <= 4:
                return 500, b'{"detail":"try again later"}'
        return None

    with FaultyLRS(fresh_ralph.url) as proxy:
        proxy.answer_post = answer
        deployment = make_deployment(state_url, proxy.url, fresh_ralph.password, lrs_options="max_attempts = 2")
        result = deployment.run("outbox", "flush", check=True)
    assert seen["count"] == 5  # the fifth post holding it is the check after the bisection
    assert "sent 6 statements" in result.stdout and "0 dead letters" in result.stdout
    _assert_lrs_holds_exactly(fresh_ralph, built)


def test_conflicting_statement_is_dead_lettered_and_the_rest_posted(state_url, fresh_ralph, make_deployment):
    built = _queue(state_url, 10)
    # Another emitter already stored a different statement under the id of our 5th one.
    clash = dict(json.loads(built[4].body), verb={"id": "http://adlnet.gov/expapi/verbs/experienced"})
    answer = requests.post(
        fresh_ralph.url + "statements",
        json=[clash],
        auth=(fresh_ralph.username, fresh_ralph.password),
        headers={"X-Experience-API-Version": "1.0.3"},
        timeout=10,
    )
    assert answer.status_code == 200
    deployment = make_deployment(state_url, fresh_ralph.url, fresh_ralph.password, lrs_options="batch_size = 10")
    result = deployment.run("outbox", "flush", check=True)
    assert "sent 9 statements" in result.stdout and "1 dead letters" in result.stdout
    dead = [row for row in _rows(state_url) if row.status == "dead"]
    assert [row.statement_id for row in dead] == [built[4].id]
    # The 409 is read back and compared (xapi.compare): the message says where the two differ.
    assert f"the LRS holds a different statement with id {built[4].id} (first difference: verb.id;" in (
        dead[0].last_error or ""
    )
    held = {s["id"]: s for s in lrs_statements(fresh_ralph)}
    assert len(held) == 10 and held[built[4].id]["verb"]["id"].endswith("experienced")
    assert "dead    │ 1" in deployment.run("outbox", "status", check=True).stdout
    # Requeued, it meets the same conflict and goes back to the dead letters: never retried forever.
    assert "requeued 1 dead letters" in deployment.run("outbox", "retry", "--all", check=True).stdout
    again = deployment.run("outbox", "flush", check=True)
    assert "sent 0 statements" in again.stdout and "1 dead letters" in again.stdout


def test_kill_between_lrs_answer_and_outbox_mark_then_rerun(state_url, fresh_ralph, make_deployment):
    built = _queue(state_url, 20)
    with FaultyLRS(fresh_ralph.url, plan=["ok", "kill"]) as proxy:
        deployment = make_deployment(state_url, proxy.url, fresh_ralph.password, lrs_options="batch_size = 5")
        process = deployment.popen("outbox", "flush")
        proxy.kill_pid = process.pid
        process.communicate(timeout=60)
    assert process.returncode == -9
    rows = _rows(state_url)
    assert sum(row.status == "sent" for row in rows) == 5  # only the first batch was marked
    assert len(lrs_statements(fresh_ralph)) == 10  # the LRS stored the second batch too
    rerun = make_deployment(state_url, fresh_ralph.url, fresh_ralph.password, lrs_options="batch_size = 5")
    rerun.run("outbox", "flush", check=True)
    _assert_lrs_holds_exactly(fresh_ralph, built)
    assert all(row.status == "sent" for row in _rows(state_url))


def test_wrong_lrs_password_is_one_sentence_without_the_password(state_url, ralph, make_deployment):
    _queue(state_url, 2)
    deployment = make_deployment(state_url, ralph.url, "wrong-password-xyz")
    result = deployment.run("outbox", "flush")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: the LRS at http://127.0.0.1:")
    assert "refused the credentials (HTTP 401)" in result.stderr
    assert "wrong-password-xyz" not in result.stdout + result.stderr
    assert all(row.status == "pending" for row in _rows(state_url))

"""Voids an older version queued with ``context.platform`` are repaired at flush time (issue 24).

Ralph stores such voids as they are, ADL's LRS answers 400 (tests/conformance/test_old_voids_adl.py
runs the same flow there). Either way the flush posts the repaired form, stores it in the
outbox first (later re-posts are byte-equal), and nothing becomes a dead letter, also when
the LRS already holds the old form (a post before the upgrade whose mark was lost).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.demo.ralph import RalphLRS
from lms_bridge.errors import LRSRejectedError
from lms_bridge.outbox.flush import flush
from lms_bridge.store.models import OutboxRow
from tests.fixtures.old_voids import queue_old_style_voids
from xapi.lrs_client import LRSClient
from xapi.repair import repair_body


def test_repair_removes_platform_only_from_statements_whose_object_is_not_an_activity() -> None:
    void = '{"context":{"platform":"lms-bridge"},"id":"x","object":{"id":"y","objectType":"StatementRef"}}'
    assert repair_body(void) == '{"id":"x","object":{"id":"y","objectType":"StatementRef"}}'
    kept = '{"context":{"extensions":{"e:x":1},"platform":"p","revision":"2"},"object":{"objectType":"StatementRef"}}'
    assert repair_body(kept) == '{"context":{"extensions":{"e:x":1}},"object":{"objectType":"StatementRef"}}'
    activity = '{"context":{"platform":"Moodle"},"id":"x","object":{"id":"https://a.b/c","objectType":"Activity"}}'
    assert repair_body(activity) is None
    assert repair_body('{"context":{"platform":"Moodle"},"object":{"id":"https://a.b/c"}}') is None  # default type


def flush_old_voids(state_url: str, url: str, username: str, password: str, *, strict: bool) -> dict[str, dict]:
    """Queue old-style voids, flush; return the LRS's voids by id.

    A lax LRS (Ralph) is first given one void in its old form, as if it had been posted
    before the upgrade and its mark lost; a strict one (ADL's) must refuse that form.
    """
    queued = queue_old_style_voids(state_url)
    engine = store.open_engine(state_url)
    with LRSClient(url, username, password) as client:
        client.post_statements([queued.targets[0].body])
        if strict:
            with pytest.raises(LRSRejectedError, match="HTTP 400"):
                client.post_statements([queued.old[0].body])  # what made every old void a dead letter
        else:
            client.post_statements([queued.old[0].body])  # posted before the upgrade, its mark lost
        report = flush(engine, client, batch_size=10, backoff_base=0, backoff_cap=0)
        held = {void.id: client.get_statement(void.id) for void in queued.old}
    with Session(engine) as session:
        rows = {row.statement_id: row for row in session.scalars(select(OutboxRow))}
    engine.dispose()
    assert report.dead == 0 and report.sent == 4, report
    # A 409 for the batch (ids already held): the target read back equal, and on the lax LRS the void equal
    # to its old form (Ralph answers 409 to a batch holding an id it stores with other content).
    assert report.already == (1 if strict else 2), report
    assert {row.status for row in rows.values()} == {"sent"}
    for void in queued.old:
        assert repair_body(rows[void.id].body) is None and "platform" not in rows[void.id].body
    # The LRS that held the old form keeps it (it must not change a stored statement); the other is the new form.
    assert held[queued.old[0].id] is not None
    for void in queued.old[0 if strict else 1 :]:
        assert "platform" not in (held[void.id] or {}).get("context", {})
    return {void_id: statement or {} for void_id, statement in held.items()}


def test_old_style_voids_flush_into_ralph(tmp_path: Path, fresh_ralph: RalphLRS) -> None:
    held = flush_old_voids(
        f"sqlite:///{tmp_path / 'state.db'}", fresh_ralph.url, fresh_ralph.username, fresh_ralph.password, strict=False
    )
    first, second = held.values()
    assert first["context"]["platform"] == "lms-bridge"  # Ralph stored the old form before the upgrade
    # The operator void's new form: its reason kept, no platform.
    assert set(second["context"]) == {"extensions"} and second["object"]["objectType"] == "StatementRef"

"""The one way data flows: activity -> identity -> xAPI statement -> outbox (+ cursor).

A connector yields ``(activity, position)`` pairs; :func:`ingest` turns each batch
into validated statements and commits them with the batch's last position in one
transaction (the cursor rule). A statement that fails validation is counted,
logged by site, stream and native id, and skipped; it never enters the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from lms_bridge import store
from lms_bridge.activity import Activity
from lms_bridge.config import Settings
from lms_bridge.errors import StatementValidationError
from lms_bridge.identity import actor_for
from xapi.statements import BuiltStatement, StatementSettings, build_statement
from xapi.vocabulary import load_vocabulary

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """Counts for one stream of one run.

    Attributes:
        pulled: activities read from the source.
        new: statements added to the outbox.
        unchanged: statements already in the outbox (a rerun or an overlap).
        changed: statements in the outbox with other content (kept, not re-sent).
        invalid: activities whose statement failed validation (skipped, logged).
    """

    pulled: int = 0
    new: int = 0
    unchanged: int = 0
    changed: int = 0
    invalid: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for runs and logs)."""
        return dict(vars(self))


def statement_settings(settings: Settings) -> StatementSettings:
    """Build the statement builders' settings from the configuration."""
    return StatementSettings(
        namespace=settings.deployment.statement_namespace,
        base_iri=settings.deployment.base_iri,
        vocabulary=load_vocabulary(),
    )


def ingest(
    engine: Engine,
    settings: Settings,
    *,
    site_id: str,
    stream: str,
    items: Iterable[tuple[Activity, Any]],
    site_url: str | None = None,
    batch_size: int = 500,
    move_cursor: bool = True,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Build statements for ``items`` and commit them batch by batch with the cursor.

    Args:
        engine: the state store.
        settings: the configuration.
        site_id: the source id (cursor key).
        stream: the stream name (cursor key).
        items: ``(activity, position)`` pairs in cursor order; the position after the
            last item of a batch is stored with that batch.
        site_url: homePage of site-scoped actors.
        batch_size: activities per transaction.
        move_cursor: False for backfills: statements are stored, the cursor stays.
        dry_run: build and validate only; write nothing.
        on_progress: called with the number of activities handled after each batch.
    """
    builder = statement_settings(settings)
    report = IngestReport()
    batch: list[BuiltStatement] = []
    seen = 0
    position: Any = None

    def commit(position: Any) -> None:
        nonlocal batch, seen
        if dry_run:
            report.new += len(batch)
        else:
            result = store.commit_batch(
                engine, site_id=site_id, stream=stream, statements=batch,
                position=position if move_cursor else None,
            )
            report.new += result.new
            report.unchanged += result.unchanged
            report.changed += result.changed
        if on_progress is not None:
            on_progress(seen)
        batch, seen = [], 0

    for activity, position in items:
        report.pulled += 1
        seen += 1
        actor = actor_for(activity, authority=settings.deployment.identity_authority,
                          base_iri=settings.deployment.base_iri, site_url=site_url)
        try:
            batch.append(build_statement(builder, activity, actor))
        except StatementValidationError as exc:
            report.invalid += 1
            log.warning("skipped %s/%s record %s: %s", site_id, stream, activity.native_id, exc,
                        extra={"site": site_id, "stream": stream})
        if seen >= batch_size:
            commit(position)
    if seen:
        commit(position)
    return report

"""The one way data flows: activity -> identity -> xAPI statement -> outbox (+ cursor).

A connector yields batches of activities with the cursor position they cover;
:class:`Pipeline` turns each batch into validated statements and commits them,
with the position and any identity links read, in one transaction (the cursor
rule). A statement that fails validation is counted, logged by site, stream and
native id, and skipped; it never enters the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from lms_bridge import store
from lms_bridge.activity import Activity
from lms_bridge.config import Settings
from lms_bridge.errors import StatementValidationError
from lms_bridge.identity import IdentityResolver
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
        links: identity links read (accounts of the source).
    """

    pulled: int = 0
    new: int = 0
    unchanged: int = 0
    changed: int = 0
    invalid: int = 0
    links: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for runs and logs)."""
        return dict(vars(self))

    def add(self, other: IngestReport) -> None:
        """Add another report's counts to this one."""
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


def statement_settings(settings: Settings) -> StatementSettings:
    """Build the statement builders' settings from the configuration."""
    return StatementSettings(
        namespace=settings.deployment.statement_namespace,
        base_iri=settings.deployment.base_iri,
        vocabulary=load_vocabulary(),
    )


class Pipeline:
    """Builds and commits batches for one source.

    Args:
        engine: the state store.
        settings: the configuration.
        site_url: homePage of the source's site-scoped actors.
        move_cursor: False for backfills: statements are stored, the cursor stays.
        dry_run: build and validate only; write nothing.
    """

    def __init__(self, engine: Engine, settings: Settings, *, site_url: str | None = None,
                 move_cursor: bool = True, dry_run: bool = False) -> None:
        self.engine = engine
        self.builder = statement_settings(settings)
        self.resolver = IdentityResolver(engine, authority=settings.deployment.identity_authority,
                                         base_iri=settings.deployment.base_iri)
        self.site_url = site_url
        self.move_cursor = move_cursor
        self.dry_run = dry_run

    def build(self, site_id: str, stream: str, activities: Iterable[Activity],
              report: IngestReport) -> list[BuiltStatement]:
        """Build and validate the statements of ``activities``; count and skip invalid ones."""
        built = []
        for activity in activities:
            report.pulled += 1
            try:
                built.append(build_statement(self.builder, activity, self.resolver.actor(activity, self.site_url)))
            except StatementValidationError as exc:
                report.invalid += 1
                log.warning("skipped %s/%s record %s: %s", site_id, stream, activity.native_id, exc,
                            extra={"site": site_id, "stream": stream})
        return built

    def commit(self, site_id: str, stream: str, activities: Sequence[Activity], position: Any,
               links: Sequence[store.LinkIn] = ()) -> IngestReport:
        """Store one batch: identity links first (so its own actors resolve), then statements and cursor."""
        report = IngestReport(links=len(links))
        if links and not self.dry_run:
            # Links go first, in their own transaction, so this batch's actors resolve to
            # their NIPs. That is safe: links are idempotent upserts and carry no cursor.
            store.commit_batch(self.engine, site_id=site_id, stream=stream, statements=(), position=None,
                               links=links)
            for source in {link.source for link in links}:
                self.resolver.forget(source, site_id)
        statements = self.build(site_id, stream, activities, report)
        if self.dry_run:
            report.new += len(statements)
            return report
        result = store.commit_batch(self.engine, site_id=site_id, stream=stream, statements=statements,
                                    position=position if self.move_cursor else None)
        report.new, report.unchanged, report.changed = result.new, result.unchanged, result.changed
        return report


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
    """Build statements for ``(activity, position)`` pairs and commit them batch by batch.

    The position after the last item of a batch is stored with that batch.
    """
    pipeline = Pipeline(engine, settings, site_url=site_url, move_cursor=move_cursor, dry_run=dry_run)
    report = IngestReport()
    batch: list[Activity] = []
    position: Any = None
    for activity, position in items:
        batch.append(activity)
        if len(batch) >= batch_size:
            report.add(pipeline.commit(site_id, stream, batch, position))
            if on_progress is not None:
                on_progress(len(batch))
            batch = []
    if batch:
        report.add(pipeline.commit(site_id, stream, batch, position))
        if on_progress is not None:
            on_progress(len(batch))
    return report

"""The one way data flows: activity -> identity -> xAPI statement -> outbox (+ cursor).

A connector yields batches of activities with the cursor position they cover;
:class:`Pipeline` turns each batch into validated statements and commits them,
with the position and any identity links read, in one transaction (the cursor
rule). A statement that fails validation is counted, logged by site, stream and
native id, and skipped; it never enters the outbox.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from lms_bridge import store
from lms_bridge.activity import REPLY_TO, Activity
from lms_bridge.config.settings import Settings
from lms_bridge.config.statements import statement_settings
from lms_bridge.errors import LmsBridgeError, StatementValidationError
from lms_bridge.identity.resolver import IdentityResolver, Tombstones, TombstonesChanged
from lms_bridge.nip import parse_nip
from xapi.statements import BuiltStatement, build_statement

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """Counts for one stream of one run.

    Attributes:
        pulled: activities read from the source.
        read: source records read (courses, accounts, answers, posts...), also those that are no activity.
        new: statements added to the outbox.
        unchanged: statements already in the outbox (a rerun or an overlap).
        changed: statements in the outbox with other content (kept, not re-sent).
        invalid: activities whose statement failed validation (skipped, logged).
        links: identity links read (accounts of the source).
        forgotten: activities of people erased by ``lms-bridge forget`` (dropped, never stored).
    """

    pulled: int = 0
    read: int = 0
    new: int = 0
    unchanged: int = 0
    changed: int = 0
    invalid: int = 0
    links: int = 0
    forgotten: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for runs and logs); ``forgotten`` and ``read`` only when non-zero."""
        return {key: value for key, value in vars(self).items() if value or key not in ("forgotten", "read")}

    def add(self, other: IngestReport) -> None:
        """Add another report's counts to this one."""
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


#: Extras that are not facts for the rules (kept out of the evidence table).
_NOT_FACTS = frozenset({"text_length", "nip", REPLY_TO})


def evidence_for(activity: Activity, statement_id: str) -> store.EvidenceIn:
    """The facts of an activity that JP rules read, stored beside its statement.

    The person is not resolved here: JP computation resolves ``local_actor``
    through the identity links of that moment, so an account linked to a NIP
    later still brings its past activity (the relink rule).
    """
    nip = parse_nip(activity.extras.get("nip"))
    facts = {key: value for key, value in activity.extras.items() if key not in _NOT_FACTS}
    if activity.parent is not None:
        facts["parent"] = f"{activity.parent.type}:{activity.parent.native_id}"
    community = None
    if activity.grouping is not None:
        community = f"{activity.grouping.type}:{activity.grouping.native_id}"
    return store.EvidenceIn(
        statement_id=statement_id,
        source=activity.source,
        site_id=activity.site,
        local_actor=activity.actor,
        nip=nip.value if nip else None,
        kind=activity.kind.value,
        occurred_at=activity.occurred_at,
        duration_seconds=int(activity.duration.total_seconds()) if activity.duration is not None else None,
        object_key=f"{activity.object.type}:{activity.object.native_id}",
        community=community,
        facts=json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        reply_to=str(reply_to) if isinstance(reply_to := activity.extras.get(REPLY_TO), str) and reply_to else None,
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

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        site_url: str | None = None,
        move_cursor: bool = True,
        dry_run: bool = False,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.builder = statement_settings(settings)
        self.resolver = IdentityResolver(
            engine, authority=settings.deployment.identity_authority, base_iri=settings.deployment.base_iri
        )
        self.tombstones = Tombstones.load(engine, settings)
        self.site_url = site_url
        self.move_cursor = move_cursor
        self.dry_run = dry_run

    def build(
        self, site_id: str, stream: str, activities: Iterable[Activity], report: IngestReport
    ) -> list[tuple[Activity, BuiltStatement]]:
        """Build and validate the statements of ``activities``; count and skip invalid ones."""
        built = []
        for activity in activities:
            report.pulled += 1
            try:
                statement = build_statement(self.builder, activity, self.resolver.actor(activity, self.site_url))
                built.append((activity, statement))
            except StatementValidationError as exc:
                report.invalid += 1
                log.warning(
                    "skipped %s/%s record %s: %s",
                    site_id,
                    stream,
                    activity.native_id,
                    exc,
                    extra={"site": site_id, "stream": stream},
                )
        return built

    def commit(
        self,
        site_id: str,
        stream: str,
        activities: Sequence[Activity],
        position: Any,
        links: Sequence[store.LinkIn] = (),
    ) -> IngestReport:
        """Store one batch: identity links first (so its own actors resolve), then statements and cursor.

        A ``forget`` that committed since the tombstones were read fails the batch's transaction
        (:meth:`Tombstones.guard`): the tombstones and links are read again and the batch is screened anew.
        """
        for _ in range(10):
            try:
                return self._commit(site_id, stream, activities, position, links)
            except TombstonesChanged:
                self.tombstones = Tombstones.load(self.engine, self.settings)
                self.resolver = IdentityResolver(
                    self.engine, authority=self.resolver.authority, base_iri=self.resolver.base_iri
                )
        raise LmsBridgeError(
            f"{site_id}/{stream}: people kept being forgotten while this batch was stored; run the sync again"
        )

    def _commit(
        self, site_id: str, stream: str, activities: Sequence[Activity], position: Any, links: Sequence[store.LinkIn]
    ) -> IngestReport:
        report = IngestReport(links=len(links))
        if self.tombstones:  # forgotten people: their links and activities are dropped before anything is stored
            activities, links, report.forgotten = self.tombstones.screen(
                self.engine, activities, links, dry_run=self.dry_run
            )
            report.pulled += report.forgotten
        if links and not self.dry_run:
            # Links go first, in their own transaction, so this batch's actors resolve to
            # their NIPs. That is safe: links are idempotent upserts and carry no cursor.
            store.commit_batch(
                self.engine,
                site_id=site_id,
                stream=stream,
                statements=(),
                position=None,
                links=links,
                guard=self.tombstones.guard,
            )
            for source in {link.source for link in links}:
                self.resolver.forget(source, site_id)
        built = self.build(site_id, stream, activities, report)
        if self.dry_run:
            report.new += len(built)
            return report
        result = store.commit_batch(
            self.engine,
            site_id=site_id,
            stream=stream,
            statements=[statement for _, statement in built],
            position=position if self.move_cursor else None,
            evidence=[evidence_for(activity, statement.id) for activity, statement in built],
            guard=self.tombstones.guard,
        )
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

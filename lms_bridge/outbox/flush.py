"""Flushing the outbox into the LRS: batches, bisection, backoff, dead letters.

Invariants:
- a row is marked ``sent`` only after the LRS answered 200/204 for it, so a crash
  between the answer and the mark re-posts it on the next flush, which is
  harmless: the body is byte-equal, and the LRS answers 204 (Ralph) or 409 (ADL's
  LRS answers 409 to any id it holds; xAPI 1.0.3 allows both);
- a 409 is not a conflict until compared: the flush reads back every statement of
  the refused batch (``statementId``, then ``voidedStatementId``) and compares it
  with the row by the xAPI rules (:mod:`xapi.compare`). The same statement marks the
  row ``sent``; a different one makes it a dead letter naming the first differing
  property and both bodies' digests; the rows the LRS does not hold are posted again;
- a 400/422 for a single statement makes that row a dead letter, with the LRS's
  message kept;
- Ralph fails a whole batch for one bad statement, so a refused batch is split
  in halves until the bad statements are isolated; the rest is posted;
- timeouts, connection failures and 5xx are retried with exponential backoff
  and a cap; after ``max_attempts`` failures in a row the flush stops and the
  rows stay pending (nothing is lost, the next flush resumes);
- poison statements: some LRSs answer 5xx for one statement they cannot store (ADL's
  LRS answers 500 to an account name over 50 characters) and fail its whole batch, so
  retrying alone would block the outbox behind it forever. On the last of its
  ``max_attempts``, a batch that gets a 5xx is split in halves, depth first, like a
  refused one. The rule that tells a poison statement from an LRS outage: a statement
  becomes a dead letter (with the LRS's answer) only when (1) its batch failed with a
  5xx on every attempt, (2) it fails alone, (3) some other post of the same bisection
  was accepted, so the LRS was storing statements at that time, and (4) posted alone
  once more after the bisection, it fails again with a 5xx. When two single statements
  have failed before any post of the bisection was accepted, or nothing was accepted at
  all, it is an outage: the bisection stops and every row stays pending, as above.
  A timeout or a refused connection is never evidence against a statement.
- a void an older version queued with ``context.platform`` (forbidden on a StatementRef;
  ADL's LRS answers 400) is repaired before it is posted (:mod:`xapi.repair`), and the
  repaired body is stored first, so later posts are byte-equal;
- on PostgreSQL several flushers may run at once (``lms-bridge worker`` tasks, a cron
  flush beside ``serve``): each claims its batch with ``SELECT ... FOR UPDATE SKIP
  LOCKED`` and keeps the rows locked until their outcome is committed, so two
  flushers never post the same rows at once. A flusher that dies mid-batch drops its
  connection, PostgreSQL releases the rows, and the next flush posts them again
  (byte-equal, so the LRS answers 204). SQLite serialises writers and keeps the
  plain read.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, Select, select, update
from sqlalchemy.orm import Session

from lms_bridge.errors import LRSConflictError, LRSRejectedError, LRSServerError, RetryableError
from lms_bridge.retry import backoff_delay
from lms_bridge.store.models import OutboxRow, OutboxStatus, utcnow
from xapi.lrs_client import LRSClient
from xapi.repair import repair_body

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Row:
    id: int
    statement_id: str
    body: str
    #: The body an older version queued, when the flush repaired it (:func:`_repaired`).
    previous: str | None = None


@dataclass
class FlushReport:
    """What a flush did.

    Attributes:
        sent: rows the LRS accepted (stored now or already holding the same statement).
        already: of ``sent``, rows found already stored after a 409 (read back and equal).
        dead: rows dead-lettered (a different statement holds the id, or refused on their own).
        posts: HTTP POSTs made (bisection makes more than one per batch).
        failures: failed attempts (timeouts, 5xx) that were retried.
        gave_up: True when the flush stopped after ``max_attempts`` failures in a row.
        last_error: the last transient error sentence, when there was one.
    """

    sent: int = 0
    already: int = 0
    dead: int = 0
    posts: int = 0
    failures: int = 0
    gave_up: bool = False
    last_error: str | None = None


@dataclass
class _Progress:
    sent: list[int] = field(default_factory=list)
    dead: dict[int, str] = field(default_factory=dict)
    already: int = 0


def _due_query(limit: int) -> Select:
    return (
        select(OutboxRow.id, OutboxRow.statement_id, OutboxRow.body)
        .where(OutboxRow.status == OutboxStatus.PENDING.value, OutboxRow.next_attempt_at <= utcnow())
        .order_by(OutboxRow.id)
        .limit(limit)
    )


def _due_rows(engine: Engine, limit: int) -> list[_Row]:
    with Session(engine) as session:
        rows = session.execute(_due_query(limit)).all()
    return [_Row(r.id, r.statement_id, r.body) for r in rows]


def _repaired(engine: Engine, claim: Session | None, rows: list[_Row]) -> list[_Row]:
    """Rows with old-style voids repaired (:mod:`xapi.repair`), the new body stored before it is posted.

    Stored first, so every later post of the row (a retry, a re-post after a crash) is
    byte-equal to this one. ``previous`` keeps the old body for the 409 read-back: an LRS
    that stored the old void before the upgrade holds that one.
    """
    fixed: list[_Row] = []
    changed: list[_Row] = []
    for row in rows:
        body = repair_body(row.body)
        if body is None:
            fixed.append(row)
            continue
        new = _Row(row.id, row.statement_id, body, previous=row.body)
        fixed.append(new)
        changed.append(new)
    if changed:
        with _writing(engine, claim) as session:
            for row in changed:
                digest = hashlib.sha256(row.body.encode("utf-8")).hexdigest()
                session.execute(
                    update(OutboxRow).where(OutboxRow.id == row.id).values(body=row.body, body_sha256=digest)
                )
        log.info("repaired %d queued voids: context.platform removed (xAPI forbids it on a StatementRef)", len(changed))
    return fixed


@contextmanager
def _claim(engine: Engine, limit: int) -> Iterator[tuple[list[_Row], Session | None]]:
    """Up to ``limit`` due rows for this flusher, and the session that holds them (PostgreSQL).

    On PostgreSQL the rows stay locked (``FOR UPDATE SKIP LOCKED``) until the block ends and
    their outcome, written through the yielded session, commits: a concurrent flusher skips
    them. On SQLite the session is None and outcomes are written in transactions of their own.
    """
    if engine.dialect.name != "postgresql":
        yield _repaired(engine, None, _due_rows(engine, limit)), None
        return
    with Session(engine) as session, session.begin():
        rows = session.execute(_due_query(limit).with_for_update(skip_locked=True)).all()
        claimed = [_Row(r.id, r.statement_id, r.body) for r in rows]
        yield _repaired(engine, session, claimed), session


@dataclass
class _ServerErrorSplit:
    """A bisection of a batch whose 5xx retries ran out (the rule is in the module docstring).

    Attributes:
        accepted: some post of this bisection was accepted: the LRS is storing statements.
        suspects: rows that failed alone with a 5xx, and the LRS's answer.
    """

    accepted: bool = False
    suspects: list[tuple[_Row, LRSServerError]] = field(default_factory=list)


def _post_bisect(
    client: LRSClient,
    rows: Sequence[_Row],
    progress: _Progress,
    report: FlushReport,
    split: _ServerErrorSplit | None = None,
) -> None:
    """Post ``rows``; on a refused batch split it until the refused statements are alone.

    With ``split``, a 5xx is handled like a refusal too: the batch is halved, and a row that
    fails alone becomes a suspect, until two suspects came before any accepted post (an
    outage: the LRSServerError is raised). Progress is recorded as it happens, so a
    transient error half-way keeps what was already accepted.
    """
    report.posts += 1
    try:
        client.post_statements([row.body for row in rows])
    except LRSConflictError as exc:
        _settle_conflict(client, rows, progress, report, str(exc), split)
        return
    except LRSRejectedError as exc:
        if len(rows) == 1:
            progress.dead[rows[0].id] = str(exc)
            return
        middle = len(rows) // 2
        _post_bisect(client, rows[:middle], progress, report, split)
        _post_bisect(client, rows[middle:], progress, report, split)
        return
    except LRSServerError as exc:
        if split is None:
            raise
        if len(rows) == 1:
            split.suspects.append((rows[0], exc))
            if not split.accepted and len(split.suspects) >= 2:
                raise  # every statement fails, one by one too: the LRS is down, not a statement
            return
        middle = len(rows) // 2
        _post_bisect(client, rows[:middle], progress, report, split)
        _post_bisect(client, rows[middle:], progress, report, split)
        return
    if split is not None:
        split.accepted = True
    progress.sent.extend(row.id for row in rows)


def _settle_suspects(client: LRSClient, split: _ServerErrorSplit, progress: _Progress, report: FlushReport) -> None:
    """After a bisection on a batch's last attempt: dead-letter only proven poison.

    Raises:
        LRSServerError: nothing of the batch was accepted (an outage); rows not settled stay pending.
        RetryableError: a timeout or a failed connection while checking.
    """
    if not split.suspects:
        return
    if not split.accepted:
        raise split.suspects[-1][1]
    log.warning(
        "%d statements failed alone with HTTP 5xx while the LRS stored others; posting each once more",
        len(split.suspects),
    )
    for row, _ in split.suspects:
        # Once more alone, now that the LRS stored other statements: a 5xx that was a blip passes.
        try:
            _post_bisect(client, [row], progress, report)
        except LRSServerError as exc:
            progress.dead[row.id] = (
                f"HTTP {exc.status} for this statement alone, twice, while the LRS stored the rest of its batch: "
                f"{exc.detail}"
            )


def _settle_conflict(
    client: LRSClient,
    rows: Sequence[_Row],
    progress: _Progress,
    report: FlushReport,
    message: str,
    split: _ServerErrorSplit | None = None,
) -> None:
    """After a 409 for ``rows``: read each back, mark what the LRS holds as sent, post the rest.

    An LRS rejects the whole batch on a 409 (ADL's LRS stores none of it), so the rows it
    does not hold are posted again. When it holds none of them (a 409 nothing explains),
    the batch is split like a refused one, and a single such row is a dead letter.
    """
    unheld: list[_Row] = []
    for row in rows:
        held = client.compare_held(row.body)
        if held.outcome == "different" and row.previous is not None:
            held = client.compare_held(row.previous)  # stored before the repair, in the old form
        if held.outcome == "same":
            progress.sent.append(row.id)
            progress.already += 1
        elif held.outcome == "different":
            progress.dead[row.id] = f"HTTP 409: {held.detail}"
        else:
            unheld.append(row)
    if not unheld:
        return
    if len(unheld) < len(rows):
        _post_bisect(client, unheld, progress, report, split)
    elif len(rows) == 1:
        progress.dead[rows[0].id] = f"HTTP 409 ({message}) but the LRS shows no statement with this id"
    else:
        middle = len(rows) // 2
        _post_bisect(client, rows[:middle], progress, report, split)
        _post_bisect(client, rows[middle:], progress, report, split)


@contextmanager
def _writing(engine: Engine, claim: Session | None) -> Iterator[Session]:
    """The claim's session (its transaction commits when the claim ends), or a transaction of its own."""
    if claim is not None:
        yield claim
        return
    with Session(engine) as session, session.begin():
        yield session


def _persist(engine: Engine, progress: _Progress, claim: Session | None = None) -> None:
    now = utcnow()
    with _writing(engine, claim) as session:
        for start in range(0, len(progress.sent), 500):
            chunk = progress.sent[start : start + 500]
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(chunk))
                .values(status=OutboxStatus.SENT.value, sent_at=now, attempts=OutboxRow.attempts + 1, last_error=None)
            )
        for row_id, message in progress.dead.items():
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id)
                .values(status=OutboxStatus.DEAD.value, attempts=OutboxRow.attempts + 1, last_error=message)
            )


def _record_failure(
    engine: Engine, rows: Sequence[_Row], done: set[int], error: str, delay: float, claim: Session | None = None
) -> None:
    remaining = [row.id for row in rows if row.id not in done]
    if not remaining:
        return
    with _writing(engine, claim) as session:
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(remaining))
            .values(
                attempts=OutboxRow.attempts + 1, last_error=error, next_attempt_at=utcnow() + timedelta(seconds=delay)
            )
        )


def _post_batch(
    engine: Engine,
    claim: Session | None,
    client: LRSClient,
    rows: Sequence[_Row],
    report: FlushReport,
    retry_delay: float,
    last_attempt: bool = False,
) -> str | None:
    """Post one claimed batch and write its outcome; return the transient error sentence, if one stopped it.

    What the LRS accepted before a transient error is marked; the rest waits ``retry_delay`` seconds.
    On the ``last_attempt``, a 5xx makes the batch split to find poison statements.
    """
    progress = _Progress()
    error: str | None = None
    split = _ServerErrorSplit() if last_attempt else None
    try:
        _post_bisect(client, rows, progress, report, split)
        if split is not None:
            _settle_suspects(client, split, progress, report)
    except RetryableError as exc:
        error = str(exc)
    _persist(engine, progress, claim)
    report.sent += len(progress.sent)
    report.already += progress.already
    report.dead += len(progress.dead)
    for row_id, message in progress.dead.items():
        log.warning("dead letter: outbox row %d refused by the LRS: %s", row_id, message)
    if error is not None:
        _record_failure(engine, rows, set(progress.sent) | set(progress.dead), error, retry_delay, claim)
    return error


def flush(
    engine: Engine,
    client: LRSClient,
    *,
    batch_size: int = 500,
    max_attempts: int = 6,
    backoff_base: float = 1.0,
    backoff_cap: float = 60.0,
    limit: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FlushReport:
    """Post pending outbox rows to the LRS until none is due (or ``limit`` rows were handled).

    Args:
        engine: the state store.
        client: the LRS client.
        batch_size: statements per POST.
        max_attempts: failed POSTs in a row before giving up (rows stay pending).
        backoff_base: first wait in seconds; doubles each failure, up to ``backoff_cap``.
        backoff_cap: longest wait in seconds.
        limit: stop after this many rows were sent or dead-lettered.
        on_progress: called with the number of rows finished after each batch.
        sleep: the wait function (tests pass a fast one).

    Returns:
        A report; ``gave_up`` tells the caller to exit non-zero.

    Raises:
        LRSAuthError, LRSError: the LRS refuses us as a whole (wrong credentials,
            wrong URL); nothing is marked.
    """
    report = FlushReport()
    failures_in_row = 0
    waited = False
    while limit is None or report.sent + report.dead < limit:
        size = batch_size if limit is None else min(batch_size, limit - report.sent - report.dead)
        delay = backoff_delay(failures_in_row + 1, backoff_base, backoff_cap)  # if this batch fails
        error: str | None = None
        with _claim(engine, size) as (rows, claim):
            if rows:
                last_attempt = failures_in_row + 1 >= max_attempts
                error = _post_batch(engine, claim, client, rows, report, delay, last_attempt)
        if not rows:
            if failures_in_row == 0 or waited:
                break
            # Rows wait for their backoff to pass: sleep until the first is due, then look once more.
            sleep(backoff_delay(failures_in_row, backoff_base, backoff_cap))
            waited = True
            continue
        waited = False
        if error is not None:
            failures_in_row += 1
            report.failures += 1
            report.last_error = error
            if failures_in_row >= max_attempts:
                report.gave_up = True
                log.error("giving up after %d failed attempts in a row: %s", failures_in_row, error)
                break
            log.warning("attempt %d failed (%s); retrying in %.1f s", failures_in_row, error, delay)
            sleep(delay)
            continue
        failures_in_row = 0
        if on_progress is not None:
            on_progress(len(rows))
    log.info(
        "flush: sent %d statements (%d of them already stored) in %d requests, %d dead letters, %d failed attempts",
        report.sent,
        report.already,
        report.posts,
        report.dead,
        report.failures,
        extra={
            "counts": {
                "sent": report.sent,
                "already": report.already,
                "dead": report.dead,
                "posts": report.posts,
                "failures": report.failures,
            }
        },
    )
    return report

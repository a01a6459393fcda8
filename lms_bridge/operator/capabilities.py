"""What the LRS can do, from its ``about`` and a probe: one doctor line per capability (issue 24).

A header tells nothing (ADL's LRS answers ``X-Experience-API-Version: 2.0.0`` to every
1.0.3 request; Ralph 5.1.0 sends none), so ``doctor`` asks:

- **versions**: ``GET about`` (Ralph has none: 1.0.3 is assumed), and which one ``[lrs] version``
  writes;
- **since**: whether ``since``/``until`` filter on ``stored`` and ``ascending=true`` orders by
  ``stored``, shown on one reference statement whose ``timestamp`` and ``stored`` are far apart:
  a window of two seconds around its ``stored`` must return it, and only statements stored in
  that window, and an ascending page must not go back in ``stored``. This picks the ledger's
  ``since_filter`` (``stored`` or ``none``) and a source-LRS reader's mode (``since`` or ``scan``);
- **voided**: whether a voided statement is hidden from ``GET statements?statementId=`` (the
  specification) and served by ``voidedStatementId``, or returned like any other (Ralph);
- **re-post**: whether a statement the LRS holds is answered 204 or 409 (both are handled).

Read-only by default: the probes only read, using statements the LRS already holds (the
sandbox statement of an earlier ``doctor --write-probe``, the newest statements, a void this
deployment sent). What needs a write is reported as not probed. ``--write-probe`` writes the
sandbox statement, a sandbox target and its void, all with fixed ids and bytes, so every later
run re-posts the same three statements and the LRS holds them once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from lms_bridge.config.settings import Settings
from lms_bridge.errors import LmsBridgeError, LRSConflictError
from lms_bridge.identity.resolver import account
from lms_bridge.store.models import OutboxRow
from xapi.ids import statement_id
from xapi.lrs_client import LRSClient
from xapi.statements import BuiltStatement, finish_statement

_EXPERIENCED = "http://adlnet.gov/expapi/verbs/experienced"
_VOIDED = "http://adlnet.gov/expapi/verbs/voided"
#: Half the width of the ``since``/``until`` window around the reference statement's ``stored``.
_WINDOW = timedelta(seconds=1)
#: Pages of the window read at most (an LRS that ignores ``since`` would otherwise be read whole).
_MAX_PAGES = 5
_NOT_WRITTEN = "not probed: it needs a write (lms-bridge doctor --write-probe)"


@dataclass(frozen=True)
class Capability:
    """One doctor line (the same fields as ``doctor.Check``)."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sandbox_statements(settings: Settings) -> list[BuiltStatement]:
    """The write probe's statements: the round-trip statement, a target and its void (fixed ids and bytes).

    None has a NIP actor or JP, so reports never count them; the ledger mirrors them as
    evidence of nobody (and the target as voided).
    """
    base = settings.deployment.base_iri
    namespace = settings.deployment.statement_namespace
    actor = account(f"{base}/doctor", "lms-bridge-doctor")
    made = []
    for key, name in (("doctor|round-trip|1", "lms-bridge doctor sandbox"), ("doctor|void-target|1", None)):
        data: dict[str, Any] = {
            "id": statement_id(namespace, key),
            "actor": actor,
            "verb": {"id": _EXPERIENCED, "display": {"en-US": "experienced"}},
            "object": {"objectType": "Activity", "id": f"{base}/sandbox/doctor"},
            "context": {"platform": "lms-bridge"},
            "timestamp": "2020-01-01T00:00:00Z",
        }
        if name is not None:
            data["object"]["definition"] = {"name": {"en-US": name}}
        made.append(finish_statement(data))
    target = made[1].id
    made.append(
        finish_statement(
            {
                "id": statement_id(namespace, f"void|{target}"),
                "actor": actor,
                "verb": {"id": _VOIDED, "display": {"en-US": "voided"}},
                "object": {"objectType": "StatementRef", "id": target},
                "timestamp": "2020-01-01T00:00:00Z",
            }
        )
    )
    return made


def post_idempotent(client: LRSClient, statement: BuiltStatement) -> str:
    """Post one statement; how the LRS took it: ``stored now``, ``204`` or ``409`` (read back and equal).

    Raises:
        LmsBridgeError: the LRS refused it, or holds a different statement under its id.
    """
    try:
        posted = client.post_statements([statement.body])
    except LRSConflictError:
        held = client.compare_held(statement.body)
        if held.outcome == "different":
            raise LmsBridgeError(held.detail) from None
        return "409"
    return "stored now" if posted.status == 200 else "204"


def versions(settings: Settings, about: dict[str, Any] | None) -> Capability:
    """The versions ``about`` lists, and the one ``[lrs] version`` writes."""
    configured = settings.lrs.version
    listed = [str(v) for v in (about or {}).get("version", [])]
    where = f"/about lists {', '.join(listed)}" if about is not None else "no /about (as Ralph 5.1.0): 1.0.3 assumed"
    speaks_2 = "2.0.0" in listed
    if configured == "2.0.0" and not speaks_2:
        return Capability(
            "LRS versions",
            False,
            f'{where}, but [lrs] version = "2.0.0"',
            'set [lrs] version = "1.0.3" (or "auto"): this LRS does not list xAPI 2.0.0',
        )
    if configured == "auto":
        picked = "2.0.0" if speaks_2 else "1.0.3"
        why = "it lists 2.0.0" if speaks_2 else "it does not list 2.0.0"
        return Capability(
            "LRS versions",
            True,
            f'{where}; [lrs] version = "auto" sends {picked} ({why}), statements in the 1.0.3 form',
        )
    hint = '; 2.0.0 available: [lrs] version = "2.0.0" opts in' if speaks_2 and configured == "1.0.3" else ""
    return Capability("LRS versions", True, f"{where}; lms-bridge writes {configured} ([lrs] version){hint}")


def _reference(client: LRSClient, sandbox: BuiltStatement) -> dict[str, Any] | None:
    """A statement the LRS holds whose ``timestamp`` and ``stored`` are more than the window apart."""
    candidates: list[dict[str, Any]] = []
    found = client.get_statement(sandbox.id)
    if found is not None:
        candidates.append(found)
    candidates += client.get_statements_page(params={"limit": 20}).get("statements", [])
    for statement in candidates:
        stored, timestamp = _time(statement.get("stored")), _time(statement.get("timestamp"))
        if stored is not None and timestamp is not None and abs(stored - timestamp) > 2 * _WINDOW:
            return statement
    return None


def since(settings: Settings, client: LRSClient, sandbox: BuiltStatement) -> Capability:
    """Whether ``since`` filters on ``stored`` and ``ascending`` orders by it; what that picks."""
    configured = settings.ledger.since_filter
    reference = _reference(client, sandbox)
    if reference is None:
        return Capability(
            "LRS since",
            True,
            "not probed: the LRS holds no statement whose timestamp and stored differ (an empty LRS: run "
            'lms-bridge doctor --write-probe, or after the first flush); picked [ledger] since_filter "none" '
            f'and source-LRS mode "scan" (safe on any LRS); configured: "{configured}"',
        )
    stored = _time(reference.get("stored"))
    assert stored is not None  # noqa: S101 - _reference only returns statements with a stored time
    low, high = stored - _WINDOW, stored + _WINDOW
    params = {"since": _iso(low), "until": _iso(high), "limit": 100}
    seen: list[dict[str, Any]] = []
    more: str | None = None
    for _ in range(_MAX_PAGES):
        page = client.get_statements_page(more, params)
        seen += page.get("statements", [])
        more = page.get("more")
        if not page.get("statements") or not more:
            break
    ids = {str(s.get("id", "")).lower() for s in seen}
    outside = [s for s in seen if (t := _time(s.get("stored"))) is None or not low < t <= high]
    by_stored = str(reference.get("id", "")).lower() in ids and not outside
    ascending = client.get_statements_page(params={"limit": 10, "ascending": "true"}).get("statements", [])
    times = [t for s in ascending if (t := _time(s.get("stored"))) is not None]
    ordered = all(a <= b for a, b in zip(times, times[1:], strict=False))
    if by_stored and ordered:
        how = "since/until filter on stored and ascending=true orders by stored"
        picked = 'picked [ledger] since_filter "stored" and source-LRS mode "since"'
        hint = ' (configured "none": "stored" reads only new statements)' if configured == "none" else ""
        return Capability("LRS since", True, f"{how}; {picked}{hint}")
    if not by_stored:
        how = (
            "since/until do not filter on stored (a window around one statement's stored time "
            + ("missed it" if not outside else f"returned {len(outside)} statement(s) stored outside it")
            + "; Ralph 5.1.0 compares timestamp)"
        )
    else:
        how = "since/until filter on stored but ascending=true does not order by stored (as Ralph 5.1.0)"
    picked = 'picked [ledger] since_filter "none" and source-LRS mode "scan"'
    if configured == "stored":
        return Capability(
            "LRS since",
            False,
            f'{how}; [ledger] since_filter = "stored" would skip statements',
            'set [ledger] since_filter = "none" (the ledger then pages through everything)',
        )
    return Capability("LRS since", True, f"{how}; {picked}")


def sent_void_target(engine: Engine | None) -> str | None:
    """The target of a void this deployment sent (its outbox), for a read-only probe; None when none."""
    if engine is None:
        return None
    try:
        with Session(engine) as session:
            body = session.scalars(
                select(OutboxRow.body).where(OutboxRow.status == "sent", OutboxRow.body.contains(_VOIDED)).limit(1)
            ).first()
    except SQLAlchemyError:
        return None
    if body is None:
        return None
    target = (json.loads(body).get("object") or {}).get("id")
    return str(target) if target else None


def voided(client: LRSClient, target: str | None, *, written: bool) -> Capability:
    """Whether a voided statement is hidden from ``statementId`` (and served by ``voidedStatementId``)."""
    if target is None:
        return Capability(
            "LRS voided",
            True,
            f"{_NOT_WRITTEN}: this deployment has sent no void to read back; the ledger applies voids itself "
            "either way",
        )
    on = "the sandbox void" if written else "a void this deployment sent"
    if client.get_statement(target) is not None:
        return Capability(
            "LRS voided",
            True,
            f"voided statements are not hidden: statementId returns the target of {on} (as Ralph 5.1.0); "
            "the ledger applies voids itself",
        )
    if client.get_statement(target, voided=True) is not None:
        return Capability(
            "LRS voided",
            True,
            f"voided statements are hidden from GET statements and served by voidedStatementId (checked on {on}); "
            "the ledger applies voids itself",
        )
    return Capability(
        "LRS voided",
        True,
        f"not probed: the LRS shows neither the target of {on} nor its voided form; the ledger applies voids itself",
    )


def repost(client: LRSClient, sandbox: BuiltStatement, *, write: bool) -> Capability:
    """How the LRS answers a statement it holds: 204 or 409 (the write probe re-posts the sandbox statement)."""
    if not write:
        return Capability("LRS re-post", True, f"{_NOT_WRITTEN}; lms-bridge handles both 204 and 409")
    answer = post_idempotent(client, sandbox)
    if answer == "204":
        return Capability("LRS re-post", True, "a statement it holds is answered 204 (as Ralph 5.1.0); handled")
    if answer == "409":
        return Capability(
            "LRS re-post",
            True,
            "a statement it holds is answered 409 (as ADL's LRS); lms-bridge reads it back and compares: handled",
        )
    return Capability(
        "LRS re-post",
        False,
        "the sandbox statement it held was stored again (HTTP 200) on a re-post",
        "check that the LRS keeps statement ids unique (xAPI: it must not store an id twice)",
    )

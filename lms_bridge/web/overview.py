"""The figures of the overview page, from the compliance report's rows (no language, no Flask).

Sorting and the status filter are done here on the server (query parameters), so the
page needs no JavaScript; the JP bands, the people close to their target and the people
at risk of missing it by 31 December at their pace so far are computed from the same rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select

from lms_bridge.ledger.reports import ComplianceRow
from lms_bridge.store.models import Run

#: Sortable columns of the people table -> the key each sorts by (ties by NIP).
SORT_KEYS: dict[str, Any] = {
    "nip": lambda r: r.nip,
    "name": lambda r: (r.name is None, (r.name or "").casefold()),
    "unit": lambda r: r.unit_code,
    "jp": lambda r: r.jp,
    "target": lambda r: r.target,
    "status": lambda r: r.met,
    "needed": lambda r: r.needed,
}
STATUSES = ("met", "unmet")
#: A person is close to the target when what is missing is at most this share of it.
CLOSE_SHARE = Decimal("0.25")
LIST_LENGTH = 10


def sort_rows(rows: Sequence[ComplianceRow], column: str, descending: bool) -> list[ComplianceRow]:
    """The rows sorted by a column of SORT_KEYS (stable: ties keep unit and NIP order)."""
    if column not in SORT_KEYS:
        return list(rows)
    return sorted(rows, key=SORT_KEYS[column], reverse=descending)


def filter_status(rows: Sequence[ComplianceRow], status: str) -> list[ComplianceRow]:
    """Only the people who met (``met``) or did not meet (``unmet``) their target; all for anything else."""
    if status == "met":
        return [r for r in rows if r.met]
    if status == "unmet":
        return [r for r in rows if not r.met]
    return list(rows)


@dataclass(frozen=True)
class Band:
    """People whose JP falls in [low, high) (``high`` None: the target and above)."""

    low: Decimal
    high: Decimal | None
    people: int


def common_target(rows: Sequence[ComplianceRow]) -> int:
    """The target most people have (20 when there is nobody)."""
    counts = Counter(r.target for r in rows)
    return counts.most_common(1)[0][0] if counts else 20


def bands(rows: Sequence[ComplianceRow], target: int) -> list[Band]:
    """People per JP band: 0 JP, then quarters of the target (above 0), then the target and above."""
    edges = [Decimal(target) * k / 4 for k in range(5)]
    result = [Band(Decimal(0), Decimal(0), sum(1 for r in rows if r.jp == 0))]
    for low, high in zip(edges, edges[1:], strict=False):
        result.append(Band(low, high, sum(1 for r in rows if r.jp > 0 and low <= r.jp < high)))
    result.append(Band(edges[-1], None, sum(1 for r in rows if r.jp >= edges[-1] and r.jp > 0)))
    return result


def projected(row: ComplianceRow, year: int, as_of: date) -> Decimal:
    """JP by 31 December if the person goes on at the pace of 1 January to the as-of date."""
    elapsed = (as_of - date(year, 1, 1)).days + 1
    days = (date(year, 12, 31) - date(year, 1, 1)).days + 1
    return (row.jp * days / elapsed).quantize(Decimal("0.1"))


def close_to_target(rows: Sequence[ComplianceRow]) -> list[ComplianceRow]:
    """Not yet met, missing at most a quarter of the target: the fewest JP missing first."""
    close = [r for r in rows if not r.met and r.needed <= r.target * CLOSE_SHARE]
    return sorted(close, key=lambda r: (r.needed, r.nip))[:LIST_LENGTH]


def at_risk(rows: Sequence[ComplianceRow], year: int, as_of: date) -> list[tuple[ComplianceRow, Decimal]]:
    """Not yet met and, at their pace so far, short of the target on 31 December: the furthest first."""
    risky = [(r, projected(r, year, as_of)) for r in rows if not r.met]
    risky = [(r, p) for r, p in risky if p < r.target]
    return sorted(risky, key=lambda pair: (pair[1] - pair[0].target, pair[0].nip))[:LIST_LENGTH]


@dataclass(frozen=True)
class Figures:
    """The overview's figures of some people (the web page keeps them with its cached report)."""

    total: int
    met: int
    #: The target most people have, and whether everybody has it.
    target: int
    same_target: bool
    bands: list[Band]
    close: list[ComplianceRow]
    at_risk: list[tuple[ComplianceRow, Decimal]]


def figures(rows: Sequence[ComplianceRow], year: int, pace_day: date) -> Figures:
    """Totals, JP bands, the people close to their target and those at risk, at the pace up to ``pace_day``."""
    target = common_target(rows)
    return Figures(
        total=len(rows),
        met=sum(1 for row in rows if row.met),
        target=target,
        same_target=all(row.target == target for row in rows),
        bands=bands(rows, target),
        close=close_to_target(rows),
        at_risk=at_risk(rows, year, pace_day),
    )


@dataclass(frozen=True)
class Freshness:
    """When the data behind the page last changed (UTC moments; None: never recorded)."""

    #: The last successful ledger mirror and JP computation run (``lms-bridge serve`` records them).
    ledger_sync: datetime | None
    jp_compute: datetime | None
    #: When the LRS stored the newest JP record of the ledger (known even without runs).
    newest_record: datetime | None


def freshness(engine: Engine, newest_record: datetime | None) -> Freshness:
    """The last successful ledger mirror and JP computation, with the newest JP record's moment.

    The runs table has them when ``lms-bridge serve`` ran them (commands ``ledger`` and
    ``jp``); a manual ``ledger sync`` records no run, so the page then shows when the
    newest mirrored record was stored by the LRS instead. That moment is read with the
    cached report (:mod:`lms_bridge.web.report_cache`): ``ledger_records.stored`` has no
    index, and reading its maximum scanned the whole ledger on every page.
    """
    with engine.connect() as connection:
        last = dict(connection.execute(_LAST_RUNS).all())
    return Freshness(last.get("ledger"), last.get("jp"), newest_record)


#: The last successful run of the ledger mirror and of the JP computation, in one query (every page reads it).
_LAST_RUNS = (
    select(Run.command, func.max(Run.finished_at))
    .where(Run.command.in_(("ledger", "jp")), Run.status == "ok")
    .group_by(Run.command)
)

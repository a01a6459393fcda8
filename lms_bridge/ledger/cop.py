"""CoP health (``report cop``, the *Komunitas Belajar* page): is each community alive, open and connecting units?

Computed from metadata only (who acted, when, in which community, which item a reply answers):
no message text exists to use. Definitions (docs in README "CoP health"):

- A **community** is an ``evidence.community`` of a CoP grouping (``community:<id>``) or a Moodle course
  whose forum posts are read (only CoP forums are): ``course:<id>``. Its activity is posts, replies,
  messages and meeting attendance (the six CoP kinds below).
- A **member** is a person (a NIP, through the identity links of now, as JP does) or, unresolved, a
  pseudonymous account, seen in the community at least once up to the end of the period. **Active**: at
  least one activity in the period; **active days**: distinct local days with one. A **newcomer** is first
  seen in the period; **activated**: contributed (posted, replied or messaged) within 14 days of first seen.
- **Ladder**: members with 0, 1-2 and 3+ active days; a **move** compares a member's rung with the previous
  month's (members known at both month ends); the year counts the monthly moves.
- **Conversation** (sources with reply links only: Moodle forums, Telegram): a **thread** is a top-level
  post or message, started in the period; a reply belongs to the thread its chain of reply links reaches.
  **Reply rate**: threads answered by someone other than the starter; **time to first response**: to that
  answer (median over answered threads); **replies per thread**: replies in those threads / threads.
  WhatsApp exports carry no reply link: a community with none of these sources shows "not available".
- **Top 1 / top 3 share**: of all contributions (posts, replies, messages) and of all replies.
- **Reply edges**: a reply and the author of the item it answers (the source's own link), between two
  members. **Peer to peer**: neither is a facilitator (``[cop] facilitators``, else the top 3 posters).
  **Cross-unit**: both on the roster, in different units. **Units reached**: distinct units of active
  members. **Brokers** (year): members whose removal splits the reply graph (articulation points),
  ranked by betweenness (networkx).
- **Product**: JP of C10 (``cop``) and webinar records (``webinar``/B6) from the ledger, shared out by
  the record's evidence in each community; members (NIPs) whose year JP reached their target.

Privacy: a figure about 1 to 4 people is shown as "< 5" outside HR's view (:func:`shown`); pseudonymous
members are counted, never listed.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import networkx as nx
from sqlalchemy import BigInteger, Engine, Integer, and_, case, cast, func, literal, select, text
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import ColumnElement

from lms_bridge.config.settings import Settings
from lms_bridge.identity.resolver import PSEUDONYMOUS_SOURCES
from lms_bridge.jp.engine import Resolver, load_resolver
from lms_bridge.ledger import reports
from lms_bridge.nip import parse_nip
from lms_bridge.store.models import Evidence, Person

#: Fewer people than this: shown as "< 5" outside HR's view.
SMALL_CELL = 5
TOP_LEVEL = ("discussion_created", "post_created", "message_posted")
REPLIES = ("reply_created", "message_replied")
ATTENDED = ("meeting_attended",)
COP_KINDS = TOP_LEVEL + REPLIES + ATTENDED
#: Sources whose records carry the source's own reply links (``evidence.reply_to``).
REPLY_SOURCES = ("moodle", "telegram")
ACTIVATION = timedelta(days=14)
#: Ledger records that are JP earned through a community: CoP (C10) and webinars (B6).
PRODUCT_RULES = ("cop", "webinar")
MAX_CHAIN = 64

MemberKey = str  # a NIP, or "~source|site|actor" for a pseudonymous account


@dataclass
class Figures:
    """One community's figures for one month (1-12) or the year (0). None: not available."""

    members: int = 0
    members_linked: int = 0
    members_pseudonymous: int = 0
    active: int = 0
    newcomers: int = 0
    activated: int = 0
    ladder: tuple[int, int, int] = (0, 0, 0)
    moved_up: int | None = None
    moved_down: int | None = None
    contributions: int = 0
    replies: int = 0
    threads: int | None = None
    answered: int | None = None
    median_response_hours: float | None = None
    replies_in_threads: int | None = None
    top1_posts: float | None = None
    top3_posts: float | None = None
    top1_replies: float | None = None
    top3_replies: float | None = None
    #: Distinct members who contributed / who replied (the basis of the top shares).
    posters: int = 0
    repliers: int = 0
    edges: int = 0
    peer_edges: int = 0
    cross_unit_edges: int = 0
    units_reached: int = 0
    brokers: int | None = None
    top_betweenness: float | None = None
    sessions: int = 0
    attendances: int = 0
    attendees: int = 0
    jp: Decimal = Decimal(0)
    jp_people: int = 0
    targets_met: int | None = None
    targets_people: int | None = None

    @property
    def active_rate(self) -> float | None:
        """Active members / members."""
        return self.active / self.members if self.members else None

    @property
    def reply_rate(self) -> float | None:
        """Answered threads / threads."""
        return self.answered / self.threads if self.threads and self.answered is not None else None

    @property
    def replies_per_thread(self) -> float | None:
        """Replies in the period's threads / threads."""
        if not self.threads or self.replies_in_threads is None:
            return None
        return self.replies_in_threads / self.threads

    @property
    def peer_share(self) -> float | None:
        """Peer-to-peer reply edges / reply edges."""
        return self.peer_edges / self.edges if self.edges else None


@dataclass
class Community:
    """One community's year: figures per month and for the year."""

    key: str
    id: str
    reply_links: bool
    facilitators_configured: bool
    facilitators: int
    months: dict[int, Figures] = field(default_factory=lambda: {m: Figures() for m in range(1, 13)})
    year: Figures = field(default_factory=Figures)


@dataclass
class CopReport:
    """The report of one year."""

    year: int
    communities: list[Community]


# --- SQL helpers ------------------------------------------------------------------------------------


def _local(dialect: str, zone: ZoneInfo, part: str) -> ColumnElement[Any]:
    """The local ``month`` (year*100+month) or ``day`` (of month) of ``Evidence.occurred_at``."""
    if dialect == "postgresql":
        local = func.timezone(zone.key, Evidence.occurred_at)
        if part == "month":
            return cast(func.extract("year", local) * 100 + func.extract("month", local), Integer)
        return cast(func.extract("day", local), Integer)
    # SQLite: the zones of Indonesia keep one offset all year.
    offset = datetime(2000, 1, 1, tzinfo=zone).utcoffset() or timedelta(0)
    shift = f"{int(offset.total_seconds() // 60):+d} minutes"
    if part == "month":
        return cast(func.strftime("%Y%m", Evidence.occurred_at, shift), Integer)
    return cast(func.strftime("%d", Evidence.occurred_at, shift), Integer)


def _day_bit(dialect: str, day: ColumnElement[Any]) -> ColumnElement[Any]:
    """``1 << day``: summed DISTINCT per group, the bitmask of active days of a month."""
    if dialect == "postgresql":
        return literal(1, BigInteger).op("<<")(day)
    return literal(1).op("<<")(day)


def _bounds(year: int, zone: ZoneInfo) -> tuple[datetime, datetime, datetime]:
    """UTC instants of 1 Dec of the year before (for January's moves), 1 Jan and the next 1 Jan."""

    def at(day: date) -> datetime:
        return datetime.combine(day, time(), zone).astimezone(UTC)

    return at(date(year - 1, 12, 1)), at(date(year, 1, 1)), at(date(year + 1, 1, 1))


def _community_id(key: str) -> str:
    return key.removeprefix("community:")


def community_key(identifier: str) -> str:
    """The ``evidence.community`` of a community id given on the command line (``cop-wi-7``, ``course:12``)."""
    return identifier if identifier.startswith(("community:", "course:")) else f"community:{identifier}"


class _Members:
    """Accounts -> member keys (NIP through the identity links of now, else the pseudonymous account)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.cache: dict[tuple[str, str, str, str | None, str], MemberKey] = {}

    def key(self, source: str, site_id: str, actor: str, nip: str | None, community: str) -> MemberKey:
        found = self.cache.get((source, site_id, actor, nip, community))
        if found is not None:
            return found
        person = nip
        r = self.resolver
        if not person and source in PSEUDONYMOUS_SOURCES:
            person = r.pseudonyms.get(actor) or r.names.get((community, actor))
        if not person:
            person = r.accounts.get((source, site_id, actor))
        result = person or f"~{source}|{site_id}|{actor}"
        self.cache[(source, site_id, actor, nip, community)] = result
        return result


def _rung(days: int) -> int:
    return 0 if days == 0 else 1 if days <= 2 else 2


def _share(counts: Iterable[int], top: int) -> float | None:
    values = sorted(counts, reverse=True)
    total = sum(values)
    return sum(values[:top]) / total if total else None


def _months_of(year: int) -> list[int]:
    return [year * 100 + m for m in range(1, 13)]


# --- the report ------------------------------------------------------------------------------------


def cop_report(
    engine: Engine,
    settings: Settings,
    year: int,
    *,
    community: str | None = None,
    units: Sequence[str] = (),
) -> CopReport:
    """Every community's figures of ``year``.

    Args:
        engine: the state store.
        settings: time zone, ``[cop] facilitators``, targets.
        year: the calendar year (local).
        community: only this ``evidence.community`` key (see :func:`community_key`).
        units: only communities with at least one member of the year in one of these units.
    """
    zone = ZoneInfo(settings.deployment.timezone)
    dialect = engine.dialect.name
    before, start, end = _bounds(year, zone)
    month_col, day_col = _local(dialect, zone, "month"), _local(dialect, zone, "day")
    with Session(engine) as session:
        members = _Members(load_resolver(session))
        scope: list[ColumnElement[bool]] = [Evidence.community.is_not(None), Evidence.kind.in_(COP_KINDS)]
        if community is not None:
            scope.append(Evidence.community == community)
        # Which communities: CoP groupings, and Moodle courses with forum posts (only CoP forums are read).
        found = session.execute(
            select(Evidence.community, func.max(case((Evidence.kind.in_(TOP_LEVEL + REPLIES), 1), else_=0)))
            .where(*scope, Evidence.occurred_at < end)
            .group_by(Evidence.community)
        ).all()
        keys = sorted(key for key, posts in found if key.startswith("community:") or posts)
        if not keys:
            return CopReport(year, [])
        scope.append(Evidence.community.in_(keys))
        # Q0: first seen and first contribution, ever (up to the year's end), per account.
        first = session.execute(
            select(
                Evidence.community,
                Evidence.source,
                Evidence.site_id,
                Evidence.local_actor,
                Evidence.nip,
                func.min(Evidence.occurred_at),
                func.min(case((Evidence.kind.in_(TOP_LEVEL + REPLIES), Evidence.occurred_at), else_=None)),
            )
            .where(*scope, Evidence.occurred_at < end)
            .group_by(Evidence.community, Evidence.source, Evidence.site_id, Evidence.local_actor, Evidence.nip)
        ).all()
        # Q1: per account and local month: the bitmask of active days, contributions, replies, attendances.
        bit = _day_bit(dialect, day_col)
        monthly = session.execute(
            select(
                Evidence.community,
                Evidence.source,
                Evidence.site_id,
                Evidence.local_actor,
                Evidence.nip,
                month_col,
                func.sum(bit.distinct()),
                func.sum(case((Evidence.kind.in_(TOP_LEVEL + REPLIES), 1), else_=0)),
                func.sum(case((Evidence.kind.in_(REPLIES), 1), else_=0)),
                func.sum(case((Evidence.kind.in_(ATTENDED), 1), else_=0)),
            )
            .where(*scope, Evidence.occurred_at >= before, Evidence.occurred_at < end)
            .group_by(
                Evidence.community, Evidence.source, Evidence.site_id, Evidence.local_actor, Evidence.nip, month_col
            )
        ).all()
        sessions = session.execute(
            select(Evidence.community, month_col, func.count(func.distinct(Evidence.object_key)))
            .where(*scope, Evidence.kind.in_(ATTENDED), Evidence.occurred_at >= start, Evidence.occurred_at < end)
            .group_by(Evidence.community, month_col)
        ).all()
        year_sessions: dict[str | None, int] = {
            key: int(count)
            for key, count in session.execute(
                select(Evidence.community, func.count(func.distinct(Evidence.object_key)))
                .where(*scope, Evidence.kind.in_(ATTENDED), Evidence.occurred_at >= start, Evidence.occurred_at < end)
                .group_by(Evidence.community)
            )
        }
        linked_sources: set[str | None] = {
            key
            for (key,) in session.execute(
                select(Evidence.community)
                .where(*scope, Evidence.source.in_(REPLY_SOURCES), Evidence.kind.in_(TOP_LEVEL + REPLIES))
                .group_by(Evidence.community)
            )
        }
        edges = _edges(session, scope, month_col, start, end)
        threads = _threads(session, keys, start, end, month_col)
        units_of: dict[str, str | None] = {
            nip: code
            for nip, code in session.execute(select(Person.nip, Person.unit_code).where(Person.unit_code.is_not(None)))
        }
        jp_rows = _product_jp(session, dialect, keys, year)
    standings = reports.compliance(engine, settings, year)
    met = {row.nip: row.jp >= row.target for row in standings.rows if row.on_roster or row.jp}

    # Member keys and first times.
    first_seen: dict[str, dict[MemberKey, datetime]] = defaultdict(dict)
    first_post: dict[str, dict[MemberKey, datetime]] = defaultdict(dict)
    for key, source, site, actor, nip, seen, posted in first:
        member = members.key(source, site, actor, nip, key)
        here, posted_here = first_seen[key], first_post[key]
        if member not in here or seen < here[member]:
            here[member] = seen
        if posted is not None and (member not in posted_here or posted < posted_here[member]):
            posted_here[member] = posted
    # Per member and month: day mask, contributions, replies, attendances.
    activity: dict[tuple[str, MemberKey, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for key, source, site, actor, nip, month, mask, posts, replies, attended in monthly:
        cell = activity[(key, members.key(source, site, actor, nip, key), int(month))]
        cell[0] |= int(mask)
        cell[1] += int(posts)
        cell[2] += int(replies)
        cell[3] += int(attended)

    by_community: dict[str, dict[MemberKey, dict[int, list[int]]]] = defaultdict(lambda: defaultdict(dict))
    for (key, member, month), cell in activity.items():
        by_community[key][member][month] = cell

    result = []
    for key in keys:
        seen_here, posted_here = first_seen[key], first_post[key]
        year_members = {m for m, t in seen_here.items() if t < end}
        if units and not any(units_of.get(m) in units for m in year_members):
            continue
        configured = [
            n.value
            for n in (parse_nip(v) for v in settings.cop.facilitators.get(_community_id(key), []))
            if n is not None
        ]
        acts = by_community.get(key, {})
        year_posts = {m: sum(c[1] for mo, c in months.items() if mo // 100 == year) for m, months in acts.items()}
        facilitators = set(configured) or {
            m for m, n in sorted(year_posts.items(), key=lambda item: (-item[1], item[0]))[:3] if n > 0
        }
        entry = Community(
            key=key,
            id=_community_id(key),
            reply_links=key in linked_sources,
            facilitators_configured=bool(configured),
            facilitators=len(facilitators),
        )
        month_ends = {m: datetime.combine(_next_month(year, m), time(), zone).astimezone(UTC) for m in range(0, 13)}
        month_starts = {m: datetime.combine(date(year, m, 1), time(), zone).astimezone(UTC) for m in range(1, 13)}
        previous_rungs: dict[MemberKey, int] | None = None
        for m in range(0, 13):
            known = {member for member, t in seen_here.items() if t < month_ends[m]}
            rungs = {
                member: _rung(
                    bin(acts.get(member, {}).get(year * 100 + m if m else (year - 1) * 100 + 12, [0])[0]).count("1")
                )
                for member in known
            }
            if m == 0:
                previous_rungs = rungs  # December of the year before
                continue
            figures = entry.months[m]
            _member_figures(
                figures, known, acts, year * 100 + m, seen_here, posted_here, month_starts[m], month_ends[m]
            )
            figures.ladder = (
                sum(1 for r in rungs.values() if r == 0),
                sum(1 for r in rungs.values() if r == 1),
                sum(1 for r in rungs.values() if r == 2),
            )
            both = [member for member in rungs if member in (previous_rungs or {})]
            figures.moved_up = sum(1 for member in both if rungs[member] > (previous_rungs or {})[member])
            figures.moved_down = sum(1 for member in both if rungs[member] < (previous_rungs or {})[member])
            previous_rungs = rungs
            figures.units_reached = len({units_of[x] for x in _active(acts, year * 100 + m) if x in units_of})
            figures.sessions = 0
        # The year.
        y = entry.year
        known = {member for member, t in seen_here.items() if t < end}
        _member_figures(y, known, acts, None, seen_here, posted_here, start, end, year=year)
        days = {
            member: sum(bin(c[0]).count("1") for mo, c in acts.get(member, {}).items() if mo // 100 == year)
            for member in known
        }
        y.ladder = (
            sum(1 for d in days.values() if _rung(d) == 0),
            sum(1 for d in days.values() if _rung(d) == 1),
            sum(1 for d in days.values() if _rung(d) == 2),
        )
        y.moved_up = sum(entry.months[m].moved_up or 0 for m in range(1, 13))
        y.moved_down = sum(entry.months[m].moved_down or 0 for m in range(1, 13))
        y.units_reached = len({units_of[x] for x in _active(acts, None, year) if x in units_of})
        y.sessions = year_sessions.get(key, 0)
        for k2, month, count in sessions:
            if k2 == key and int(month) // 100 == year:
                entry.months[int(month) % 100].sessions = int(count)
        _conversation(entry, threads.get(key, []), zone)
        _edge_figures(entry, edges.get(key, []), members, facilitators, units_of, year)
        _product(entry, jp_rows.get(key, []), met, year, known)
        result.append(entry)
    return CopReport(year, result)


def _next_month(year: int, month: int) -> date:
    if month == 0:
        return date(year, 1, 1)
    return date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)


def _active(acts: dict[MemberKey, dict[int, list[int]]], month: int | None, year: int | None = None) -> set[MemberKey]:
    if month is not None:
        return {m for m, months in acts.items() if month in months}
    return {m for m, months in acts.items() if any(mo // 100 == year for mo in months)}


def _member_figures(
    figures: Figures,
    known: set[MemberKey],
    acts: dict[MemberKey, dict[int, list[int]]],
    month: int | None,
    seen: dict[MemberKey, datetime],
    first_post: dict[MemberKey, datetime],
    start: datetime,
    end: datetime,
    *,
    year: int | None = None,
) -> None:
    figures.members = len(known)
    figures.members_pseudonymous = sum(1 for m in known if m.startswith("~"))
    figures.members_linked = figures.members - figures.members_pseudonymous
    active = _active(acts, month, year) & known
    figures.active = len(active)
    newcomers = [m for m in known if start <= seen[m] < end]
    figures.newcomers = len(newcomers)
    figures.activated = sum(1 for m in newcomers if (t := first_post.get(m)) is not None and t - seen[m] <= ACTIVATION)

    def cells(member: MemberKey) -> list[list[int]]:
        months = acts.get(member, {})
        return [c for mo, c in months.items() if (mo == month if month is not None else mo // 100 == year)]

    posts = {m: sum(c[1] for c in cells(m)) for m in known}
    replies = {m: sum(c[2] for c in cells(m)) for m in known}
    figures.contributions = sum(posts.values())
    figures.replies = sum(replies.values())
    figures.posters = sum(1 for v in posts.values() if v)
    figures.repliers = sum(1 for v in replies.values() if v)
    figures.top1_posts, figures.top3_posts = _share(posts.values(), 1), _share(posts.values(), 3)
    figures.top1_replies, figures.top3_replies = _share(replies.values(), 1), _share(replies.values(), 3)
    figures.attendances = sum(c[3] for m in known for c in cells(m))
    figures.attendees = sum(1 for m in known if any(c[3] for c in cells(m)))


EdgeRow = tuple[str, str, str, str | None, str, str | None, int, int]


def _edges(
    session: Session, scope: list[Any], month_col: ColumnElement[Any], start: datetime, end: datetime
) -> dict[str, list[EdgeRow]]:
    """Per community: (source, site, replier, replier NIP, answered author, their NIP, month, count)."""
    parent = aliased(Evidence)
    rows = session.execute(
        select(
            Evidence.community,
            Evidence.source,
            Evidence.site_id,
            Evidence.local_actor,
            Evidence.nip,
            parent.local_actor,
            parent.nip,
            month_col,
            func.count(),
        )
        .join(
            parent,
            and_(
                parent.site_id == Evidence.site_id,
                parent.object_key == Evidence.reply_to,
                parent.source == Evidence.source,
            ),
        )
        .where(*scope, Evidence.reply_to.is_not(None), Evidence.occurred_at >= start, Evidence.occurred_at < end)
        .group_by(
            Evidence.community,
            Evidence.source,
            Evidence.site_id,
            Evidence.local_actor,
            Evidence.nip,
            parent.local_actor,
            parent.nip,
            month_col,
        )
    ).all()
    found: dict[str, list[EdgeRow]] = defaultdict(list)
    for key, source, site, actor, nip, answered, answered_nip, month, count in rows:
        found[key].append((source, site, actor, nip, answered, answered_nip, int(month), int(count)))
    return found


ThreadRow = tuple[datetime, int, datetime | None]


def _threads(
    session: Session, keys: list[str], start: datetime, end: datetime, month_col: ColumnElement[Any]
) -> dict[str, list[ThreadRow]]:
    """Per community: each thread started in the year (start time, replies, first answer by another account).

    The chain of reply links is walked by a recursive query from each top-level item (at most
    ``MAX_CHAIN`` links deep); a reply whose chain reaches no top-level item of the year is in no thread.
    """
    roots = (
        select(
            Evidence.community.label("community"),
            Evidence.site_id.label("site_id"),
            Evidence.object_key.label("object_key"),
            Evidence.object_key.label("root_key"),
            Evidence.local_actor.label("starter"),
            Evidence.occurred_at.label("started"),
            literal(0).label("depth"),
        )
        .where(
            Evidence.community.in_(keys),
            Evidence.kind.in_(TOP_LEVEL),
            Evidence.source.in_(REPLY_SOURCES),
            Evidence.occurred_at >= start,
            Evidence.occurred_at < end,
        )
        .cte("chain", recursive=True)
    )
    reply = aliased(Evidence)
    chain = roots.union_all(
        select(
            roots.c.community,
            reply.site_id,
            reply.object_key,
            roots.c.root_key,
            roots.c.starter,
            roots.c.started,
            roots.c.depth + 1,
        )
        .join(roots, and_(reply.site_id == roots.c.site_id, reply.reply_to == roots.c.object_key))
        .where(reply.kind.in_(REPLIES), roots.c.depth < MAX_CHAIN)
    )
    item = aliased(Evidence)
    answer = case((and_(chain.c.depth > 0, item.local_actor != chain.c.starter), item.occurred_at), else_=None)
    rows = session.execute(
        select(
            chain.c.community,
            chain.c.started,
            func.sum(case((chain.c.depth > 0, 1), else_=0)),
            func.min(answer),
        )
        .join(item, and_(item.site_id == chain.c.site_id, item.object_key == chain.c.object_key))
        .group_by(chain.c.community, chain.c.site_id, chain.c.root_key, chain.c.started)
    ).all()
    found: dict[str, list[ThreadRow]] = defaultdict(list)
    for key, started, replies, first_answer in rows:
        found[key].append((_aware(started), int(replies), _aware(first_answer) if first_answer is not None else None))
    return found


def _aware(value: Any) -> datetime:
    """A timestamp read through a CTE (SQLite gives text, PostgreSQL a datetime), tz-aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _product_jp(
    session: Session, dialect: str, keys: list[str], year: int
) -> dict[str, list[tuple[str, int, Decimal]]]:
    """Per community: (NIP, month, JP) of C10 and webinar records, shared by the record's evidence in it."""
    if dialect == "postgresql":
        sql = text(
            """
            SELECT e.community, r.nip, r.period_day, r.jp, r.evidence_count, count(*)
            FROM ledger_records r
            CROSS JOIN LATERAL jsonb_array_elements_text(r.evidence_ids::jsonb) AS x(id)
            JOIN evidence e ON e.statement_id = x.id
            WHERE NOT r.voided AND r.rule_id IN ('cop', 'webinar')
              AND r.period_day >= :start AND r.period_day < :end AND e.community IS NOT NULL
            GROUP BY e.community, r.statement_id, r.nip, r.period_day, r.jp, r.evidence_count
            """
        )
    else:
        sql = text(
            """
            SELECT e.community, r.nip, r.period_day, r.jp, r.evidence_count, count(*)
            FROM ledger_records r, json_each(r.evidence_ids) AS x
            JOIN evidence e ON e.statement_id = x.value
            WHERE NOT r.voided AND r.rule_id IN ('cop', 'webinar')
              AND r.period_day >= :start AND r.period_day < :end AND e.community IS NOT NULL
            GROUP BY e.community, r.statement_id, r.nip, r.period_day, r.jp, r.evidence_count
            """
        )
    wanted = set(keys)
    found: dict[str, list[tuple[str, int, Decimal]]] = defaultdict(list)
    for key, nip, day, jp, total, count in session.execute(
        sql, {"start": date(year, 1, 1), "end": date(year + 1, 1, 1)}
    ):
        if key not in wanted:
            continue
        month = (day if isinstance(day, date) else date.fromisoformat(str(day))).month
        share = Decimal(jp) * int(count) / max(int(total), int(count))
        found[key].append((nip, month, share))
    return found


def _conversation(entry: Community, threads: list[ThreadRow], zone: ZoneInfo) -> None:
    """Threads, reply rate, median time to first answer and replies per thread (None without reply links)."""
    if not entry.reply_links:
        return
    periods: dict[int, list[ThreadRow]] = defaultdict(list)
    zone_months = [(t, t[0].astimezone(zone).month) for t in threads]
    for thread, month in zone_months:
        periods[month].append(thread)
    for m, figures in [*entry.months.items(), (0, entry.year)]:
        chosen = threads if m == 0 else periods.get(m, [])
        figures.threads = len(chosen)
        answered = [t for t in chosen if t[2] is not None]
        figures.answered = len(answered)
        figures.replies_in_threads = sum(t[1] for t in chosen)
        if answered:
            figures.median_response_hours = statistics.median(
                (t[2] - t[0]).total_seconds() / 3600 for t in answered if t[2] is not None
            )


def _edge_figures(
    entry: Community,
    rows: list[EdgeRow],
    members: _Members,
    facilitators: set[MemberKey],
    units_of: dict[str, str | None],
    year: int,
) -> None:
    """Reply edges between two members: peer to peer, across units; brokers of the year's reply graph."""
    graph: nx.Graph = nx.Graph()
    for source, site, actor, nip, answered, answered_nip, month, count in rows:
        a = members.key(source, site, actor, nip, entry.key)
        b = members.key(source, site, answered, answered_nip, entry.key)
        if a == b:
            continue  # answering oneself is no edge
        peer = a not in facilitators and b not in facilitators
        ua, ub = units_of.get(a), units_of.get(b)
        cross = ua is not None and ub is not None and ua != ub
        targets = [entry.year]
        if month // 100 == year:
            targets.append(entry.months[month % 100])
        else:
            continue
        for figures in targets:
            figures.edges += count
            figures.peer_edges += count if peer else 0
            figures.cross_unit_edges += count if cross else 0
        graph.add_edge(a, b)
    if graph.number_of_nodes() == 0:
        entry.year.brokers, entry.year.top_betweenness = 0, None
        return
    brokers = set(nx.articulation_points(graph))
    sample = None if graph.number_of_nodes() <= 400 else 400
    betweenness = nx.betweenness_centrality(graph, k=sample, seed=0)
    entry.year.brokers = len(brokers)
    entry.year.top_betweenness = max(betweenness.values()) if betweenness else None


def _product(
    entry: Community,
    rows: list[tuple[str, int, Decimal]],
    met: dict[str, bool],
    year: int,
    known: set[MemberKey],
) -> None:
    """JP through the community (per month and year) and members whose year JP reached their target."""
    people: dict[int, set[str]] = defaultdict(set)
    for nip, month, jp in rows:
        entry.months[month].jp += jp
        entry.year.jp += jp
        people[month].add(nip)
        people[0].add(nip)
    for m, figures in [*entry.months.items(), (0, entry.year)]:
        figures.jp = figures.jp.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        figures.jp_people = len(people.get(m, set()))
    linked = [m for m in known if not m.startswith("~")]
    entry.year.targets_people = len(linked)
    entry.year.targets_met = sum(1 for m in linked if met.get(m))


# --- showing figures -------------------------------------------------------------------------------


def small(people: int | None, hr: bool) -> bool:
    """Whether a figure about ``people`` people is hidden ("< 5") in this view (1 to 4, outside HR's)."""
    return not hr and people is not None and 0 < people < SMALL_CELL

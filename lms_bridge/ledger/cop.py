"""CoP health (``report cop``, the *Komunitas Belajar* page): is each community alive, open and connecting units?

Computed from metadata only (who acted, when, in which community, which item a reply answers):
no message text exists to use. Definitions (docs/hr-reports.md, "CoP health"):

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
  members. **Brokers** (year): members with a normalised betweenness centrality of at least 0.1 in the
  year's reply graph (networkx; exact up to 100 members, else sampled from 16 with a fixed seed).
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
from sqlalchemy import BigInteger, Engine, Float, Integer, and_, case, cast, func, literal, select, text, tuple_
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
#: Brokers: exact betweenness up to this many members in a community's reply graph; above, sampled.
EXACT_BETWEENNESS_UP_TO = 100
#: Source members sampled above that (networkx's ``k``) and the fixed seed of the draw.
SAMPLED_SOURCES = 16
BETWEENNESS_SEED = 21
#: A broker: at least a tenth of the shortest paths between pairs of other members pass through them.
BROKER_BETWEENNESS = 0.1

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


def _day_mask(dialect: str, day: ColumnElement[Any]) -> ColumnElement[Any]:
    """The bitmask of active days of a group's month: ``1 << day`` OR-ed (PostgreSQL) or summed DISTINCT.

    ``bit_or`` lets PostgreSQL group by hashing; a DISTINCT aggregate makes it sort every group's rows.
    """
    if dialect == "postgresql":
        return func.bit_or(literal(1, BigInteger).op("<<")(day))
    return func.sum(literal(1).op("<<")(day).distinct())


def _epoch(dialect: str, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """Seconds since 1970 of a timestamp, as a number: no datetime object is built per row in Python."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", column), Float)
    # SQLite keeps UTC text; julianday() parses it to fractional days (millisecond precision).
    return (func.julianday(column) - 2440587.5) * 86400.0


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

    Six queries do the heavy work (per account and month; before the year; reply edges; threads; JP;
    units), grouped in the database; Python then walks each member's months once.

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
    contribution = Evidence.kind.in_(TOP_LEVEL + REPLIES)
    with Session(engine) as session:
        if dialect == "postgresql":
            # The report groups millions of rows: room to hash them in memory instead of sorting on disk
            # (the default 4 MB), for this transaction only. JIT compiling costs more than it saves here.
            session.execute(text("SET LOCAL work_mem = '256MB'"))
            session.execute(text("SET LOCAL jit = off"))
        members = _Members(load_resolver(session))
        scope: list[ColumnElement[bool]] = [Evidence.community.is_not(None), Evidence.kind.in_(COP_KINDS)]
        if community is not None:
            scope.append(Evidence.community == community)
        account = (Evidence.community, Evidence.source, Evidence.site_id, Evidence.local_actor, Evidence.nip)
        # Per account and local month (December of the year before too: January's moves): the bitmask of
        # active days, contributions, replies, attendances, first activity and first contribution.
        monthly = (
            session.connection()
            .execute(
                select(
                    *account,
                    month_col,
                    _day_mask(dialect, day_col),
                    func.sum(case((contribution, 1), else_=0)),
                    func.sum(case((Evidence.kind.in_(REPLIES), 1), else_=0)),
                    func.sum(case((Evidence.kind.in_(ATTENDED), 1), else_=0)),
                    _epoch(dialect, func.min(Evidence.occurred_at)),
                    _epoch(dialect, func.min(case((contribution, Evidence.occurred_at), else_=None))),
                )
                .where(*scope, Evidence.occurred_at >= before, Evidence.occurred_at < end)
                .group_by(*account, month_col)
            )
            .all()
        )
        # Accounts seen before that: known members already (first seen, first contribution).
        earlier = (
            session.connection()
            .execute(
                select(
                    *account,
                    _epoch(dialect, func.min(Evidence.occurred_at)),
                    _epoch(dialect, func.min(case((contribution, Evidence.occurred_at), else_=None))),
                )
                .where(*scope, Evidence.occurred_at < before)
                .group_by(*account)
            )
            .all()
        )
        meetings = (
            session.connection()
            .execute(
                select(Evidence.community, Evidence.object_key, month_col)
                .where(*scope, Evidence.kind.in_(ATTENDED), Evidence.occurred_at >= start, Evidence.occurred_at < end)
                .group_by(Evidence.community, Evidence.object_key, month_col)
            )
            .all()
        )
        edges = _edges(session, scope, month_col, start, end)
        threads = _threads(session, community, start, end, zone)
        units_of: dict[str, str | None] = {
            nip: code
            for nip, code in session.execute(select(Person.nip, Person.unit_code).where(Person.unit_code.is_not(None)))
        }
        jp_rows = _product_jp(session, dialect, year)
    standings = reports.compliance(engine, settings, year)
    met = {row.nip: row.jp >= row.target for row in standings.rows}

    # Which communities: CoP groupings, and Moodle courses with forum posts (only CoP forums are read).
    # First activity and first contribution per member: seconds since 1970 (see _epoch).
    first_seen: dict[str, dict[MemberKey, float]] = defaultdict(dict)
    first_post: dict[str, dict[MemberKey, float]] = defaultdict(dict)
    activity: dict[str, dict[MemberKey, dict[int, list[int]]]] = defaultdict(lambda: defaultdict(dict))
    # Contributions of the year per member (the default facilitators are the top 3 posters).
    year_posts: dict[str, dict[MemberKey, int]] = defaultdict(lambda: defaultdict(int))
    posting: set[str] = set()
    linked_sources: set[str] = set()

    def seen(key: str, member: MemberKey, at: float, posted: float | None) -> None:
        here, posted_here = first_seen[key], first_post[key]
        if member not in here or at < here[member]:
            here[member] = at
        if posted is not None:
            if member not in posted_here or posted < posted_here[member]:
                posted_here[member] = posted

    for key, source, site, actor, nip, at, posted in earlier:
        seen(key, members.key(source, site, actor, nip, key), float(at), None if posted is None else float(posted))
        if posted is not None:
            posting.add(key)
    for key, source, site, actor, nip, month, mask, posts, replies, attended, at, posted in monthly:
        member = members.key(source, site, actor, nip, key)
        seen(key, member, float(at), None if posted is None else float(posted))
        months = activity[key][member]
        cell = months.setdefault(int(month), [0, 0, 0, 0])
        cell[0] |= int(mask)
        cell[1] += int(posts)
        cell[2] += int(replies)
        cell[3] += int(attended)
        if posts:
            posting.add(key)
            if month // 100 == year:
                year_posts[key][member] += int(posts)
            if source in REPLY_SOURCES:
                linked_sources.add(key)
    sessions: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for key, meeting, month in meetings:
        sessions[key][int(month) % 100].add(meeting)

    result = []
    for key in sorted(k for k in first_seen if k.startswith("community:") or k in posting):
        seen_here = first_seen[key]
        if units and not any(units_of.get(m) in units for m in seen_here):
            continue
        acts = activity.get(key, {})
        configured = [
            n.value
            for n in (parse_nip(v) for v in settings.cop.facilitators.get(_community_id(key), []))
            if n is not None
        ]
        facilitators = set(configured) or {
            m for m, n in sorted(year_posts[key].items(), key=lambda item: (-item[1], item[0]))[:3] if n > 0
        }
        entry = Community(
            key=key,
            id=_community_id(key),
            reply_links=key in linked_sources,
            facilitators_configured=bool(configured),
            facilitators=len(facilitators),
        )
        _member_figures(entry, seen_here, first_post[key], acts, units_of, year, zone, start)
        for month, keys in sessions.get(key, {}).items():
            entry.months[month].sessions = len(keys)
        entry.year.sessions = len(set().union(*sessions[key].values())) if key in sessions else 0
        _conversation(entry, threads.get(key, {}))
        _edge_figures(entry, edges.get(key, []), members, facilitators, units_of, year)
        _product(entry, jp_rows.get(key, []), met, set(seen_here))
        result.append(entry)
    return CopReport(year, result)


def _member_figures(
    entry: Community,
    seen: dict[MemberKey, float],
    first_post: dict[MemberKey, float],
    acts: dict[MemberKey, dict[int, list[int]]],
    units_of: dict[str, str | None],
    year: int,
    zone: ZoneInfo,
    start: datetime,
) -> None:
    """Members, activity, ladder and moves, contributions and their top shares: one walk over each member's months."""
    figures = [entry.year] + [entry.months[m] for m in range(1, 13)]  # index 0 the year, 1-12 the months
    joined = [0] * 14  # members first seen in month m (0: before the year)
    joined_pseudo = [0] * 14
    posts: list[list[int]] = [[] for _ in range(13)]
    replies: list[list[int]] = [[] for _ in range(13)]
    reached: list[set[str | None]] = [set() for _ in range(13)]
    december = (year - 1) * 100 + 12
    ups, downs = [0] * 13, [0] * 13
    begins = start.timestamp()
    for member, first in seen.items():
        month = datetime.fromtimestamp(first, zone).month if first >= begins else 0
        pseudo = member.startswith("~")
        joined[month] += 1
        joined_pseudo[month] += pseudo
        if month:
            for f in (figures[month], entry.year):
                f.newcomers += 1
                posted = first_post.get(member)
                if posted is not None and posted - first <= ACTIVATION.total_seconds():
                    f.activated += 1
        months = acts.get(member, {})
        unit = units_of.get(member)
        rungs = [0] * 13  # rungs[0]: December of the year before
        year_days = year_posts = year_replies = year_attended = 0
        for ym, (mask, n_posts, n_replies, n_attended) in months.items():
            if ym == december:
                rungs[0] = _rung(mask.bit_count())
                continue
            m = ym % 100
            days = mask.bit_count()
            rungs[m] = _rung(days)
            f = figures[m]
            f.active += 1
            if rungs[m] == 1:
                f.ladder = (f.ladder[0], f.ladder[1] + 1, f.ladder[2])
            elif rungs[m] == 2:
                f.ladder = (f.ladder[0], f.ladder[1], f.ladder[2] + 1)
            if n_posts:
                posts[m].append(n_posts)
            if n_replies:
                replies[m].append(n_replies)
            f.attendances += n_attended
            f.attendees += n_attended > 0
            reached[m].add(unit)
            year_days += days
            year_posts += n_posts
            year_replies += n_replies
            year_attended += n_attended
        # Moves between rungs: members known at the end of the month before (first seen before it).
        for m in range(max(month + 1, 1), 13):
            if rungs[m] > rungs[m - 1]:
                ups[m] += 1
            elif rungs[m] < rungs[m - 1]:
                downs[m] += 1
        y = entry.year
        if year_days:
            y.active += 1
            reached[0].add(unit)
        rung = _rung(year_days)
        y.ladder = (y.ladder[0] + (rung == 0), y.ladder[1] + (rung == 1), y.ladder[2] + (rung == 2))
        if year_posts:
            posts[0].append(year_posts)
        if year_replies:
            replies[0].append(year_replies)
        y.attendances += year_attended
        y.attendees += year_attended > 0
    known, pseudo_known = joined[0], joined_pseudo[0]
    for m in range(0, 13):
        f = figures[m]
        if m:
            f.moved_up, f.moved_down = ups[m], downs[m]
            known += joined[m]
            pseudo_known += joined_pseudo[m]
            f.members, f.members_pseudonymous = known, pseudo_known
            f.ladder = (known - f.ladder[1] - f.ladder[2], f.ladder[1], f.ladder[2])
        f.members_linked = f.members - f.members_pseudonymous
        f.contributions, f.replies = sum(posts[m]), sum(replies[m])
        f.posters, f.repliers = len(posts[m]), len(replies[m])
        f.top1_posts, f.top3_posts = _share(posts[m], 1), _share(posts[m], 3)
        f.top1_replies, f.top3_replies = _share(replies[m], 1), _share(replies[m], 3)
        f.units_reached = len({u for u in reached[m] if u is not None})
    y = entry.year
    y.members, y.members_pseudonymous = len(seen), sum(joined_pseudo)
    y.members_linked = y.members - y.members_pseudonymous
    y.moved_up, y.moved_down = sum(ups), sum(downs)


EdgeRow = tuple[str, str, str, str | None, str, str | None, int, int]


def _edges(
    session: Session, scope: list[Any], month_col: ColumnElement[Any], start: datetime, end: datetime
) -> dict[str, list[EdgeRow]]:
    """Per community: (source, site, replier, replier NIP, answered author, their NIP, month, count)."""
    parent = aliased(Evidence)
    rows = (
        session.connection()
        .execute(
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
        )
        .all()
    )
    found: dict[str, list[EdgeRow]] = defaultdict(list)
    for key, source, site, actor, nip, answered, answered_nip, month, count in rows:
        found[key].append((source, site, actor, nip, answered, answered_nip, int(month), int(count)))
    return found


ThreadRow = tuple[datetime, int, datetime | None]
#: Per period (0: the year, 1-12): threads, answered, replies in them, median hours to the first answer.
ThreadFigures = tuple[int, int, int, float | None]


def _threads(
    session: Session, community: str | None, start: datetime, end: datetime, zone: ZoneInfo
) -> dict[str, dict[int, ThreadFigures]]:
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
            Evidence.local_actor.label("actor"),
            Evidence.occurred_at.label("at"),
            literal(0).label("depth"),
        )
        .where(
            Evidence.community.is_not(None) if community is None else Evidence.community == community,
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
            reply.local_actor,
            reply.occurred_at,
            roots.c.depth + 1,
        )
        .join(roots, and_(reply.site_id == roots.c.site_id, reply.reply_to == roots.c.object_key))
        .where(reply.kind.in_(REPLIES), roots.c.depth < MAX_CHAIN)
    )
    answer = case((and_(chain.c.depth > 0, chain.c.actor != chain.c.starter), chain.c.at), else_=None)
    per_thread = select(
        chain.c.community.label("community"),
        chain.c.started.label("started"),
        func.sum(case((chain.c.depth > 0, 1), else_=0)).label("replies"),
        func.min(answer).label("answer"),
    ).group_by(chain.c.community, chain.c.site_id, chain.c.root_key, chain.c.started)
    found: dict[str, dict[int, ThreadFigures]] = defaultdict(dict)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # PostgreSQL sums the threads per community and local month (and the year) and takes the median itself.
        thread = per_thread.subquery()
        month = cast(func.extract("month", func.timezone(zone.key, thread.c.started)), Integer).label("month")
        hours = func.extract("epoch", thread.c.answer - thread.c.started) / 3600
        rows = connection.execute(
            select(
                thread.c.community,
                month,
                func.count(),
                func.count(thread.c.answer),
                func.sum(thread.c.replies),
                func.percentile_cont(0.5).within_group(hours),
            ).group_by(func.grouping_sets(tuple_(thread.c.community, month), tuple_(thread.c.community)))
        ).all()
        for key, at, count, answered, replies, median in rows:
            found[key][int(at) if at is not None else 0] = (
                int(count),
                int(answered),
                int(replies or 0),
                float(median) if median is not None else None,
            )
        return found
    periods: dict[str, dict[int, list[ThreadRow]]] = defaultdict(lambda: defaultdict(list))
    for key, started, replies, first_answer in connection.execute(per_thread):
        row = (_aware(started), int(replies), _aware(first_answer) if first_answer is not None else None)
        periods[key][row[0].astimezone(zone).month].append(row)
        periods[key][0].append(row)
    for key, months in periods.items():
        for m, threads in months.items():
            waits = [(t[2] - t[0]).total_seconds() / 3600 for t in threads if t[2] is not None]
            found[key][m] = (
                len(threads),
                len(waits),
                sum(t[1] for t in threads),
                statistics.median(waits) if waits else None,
            )
    return found


def _aware(value: Any) -> datetime:
    """A timestamp read through a CTE (SQLite gives text, PostgreSQL a datetime), tz-aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _product_jp(session: Session, dialect: str, year: int) -> dict[str, list[tuple[str, int, Decimal]]]:
    """Per community: (NIP, month, JP) of C10 and webinar records, shared by the record's evidence in it.

    A record listing evidence of two communities (the C10 cap is per day across all CoP sources) gives
    each its share: JP x its evidence / all the record's evidence. Summed by the database.
    """
    if dialect == "postgresql":
        expand = "CROSS JOIN LATERAL jsonb_array_elements_text(r.evidence_ids::jsonb) AS x(id)"
        joined, number, month = "x.id", "CAST(r.jp AS NUMERIC)", "CAST(extract(month FROM r.period_day) AS INTEGER)"
    else:
        expand = ", json_each(r.evidence_ids) AS x"
        joined, number, month = "x.value", "CAST(r.jp AS REAL)", "CAST(strftime('%m', r.period_day) AS INTEGER)"
    sql = text(
        f"""
        SELECT community, nip, month, sum(share) FROM (
            SELECT e.community AS community, r.nip AS nip, {month} AS month,
                   {number} * count(*) / r.evidence_count AS share
            FROM ledger_records r {expand}
            JOIN evidence e ON e.statement_id = {joined}
            WHERE NOT r.voided AND r.rule_id IN ('cop', 'webinar') AND r.evidence_count > 0
              AND r.period_day >= :start AND r.period_day < :end AND e.community IS NOT NULL
            GROUP BY e.community, r.statement_id, r.nip, r.period_day, r.jp, r.evidence_count
        ) AS shares
        GROUP BY community, nip, month
        """  # noqa: S608 - the fragments are constants of this function, the values are bound
    )
    found: dict[str, list[tuple[str, int, Decimal]]] = defaultdict(list)
    for key, nip, at, jp in session.connection().execute(sql, {"start": date(year, 1, 1), "end": date(year + 1, 1, 1)}):
        found[key].append((nip, int(at), Decimal(str(round(float(jp), 6))) if dialect != "postgresql" else Decimal(jp)))
    return found


def _conversation(entry: Community, threads: dict[int, ThreadFigures]) -> None:
    """Threads, reply rate, median time to first answer and replies per thread (None without reply links)."""
    if not entry.reply_links:
        return
    for m, figures in [*entry.months.items(), (0, entry.year)]:
        count, answered, replies, median = threads.get(m, (0, 0, 0, None))
        figures.threads, figures.answered, figures.replies_in_threads = count, answered, replies
        figures.median_response_hours = median


def _edge_figures(
    entry: Community,
    rows: list[EdgeRow],
    members: _Members,
    facilitators: set[MemberKey],
    units_of: dict[str, str | None],
    year: int,
) -> None:
    """Reply edges between two members: peer to peer, across units; brokers of the year's reply graph."""
    pairs: set[tuple[MemberKey, MemberKey]] = set()
    key, community, whole = members.key, entry.key, entry.year
    for source, site, actor, nip, answered, answered_nip, month, count in rows:
        a = key(source, site, actor, nip, community)
        b = key(source, site, answered, answered_nip, community)
        if a == b or month // 100 != year:
            continue  # answering oneself is no edge
        figures = entry.months[month % 100]
        figures.edges += count
        whole.edges += count
        if a not in facilitators and b not in facilitators:
            figures.peer_edges += count
            whole.peer_edges += count
        ua, ub = units_of.get(a), units_of.get(b)
        if ua is not None and ub is not None and ua != ub:
            figures.cross_unit_edges += count
            whole.cross_unit_edges += count
        pairs.add((a, b) if a < b else (b, a))
    entry.year.brokers, entry.year.top_betweenness = _brokers(pairs)


def _brokers(edges: Iterable[tuple[Any, Any]]) -> tuple[int, float | None]:
    """Brokers of a reply graph given by its edges, and the highest betweenness.

    A broker is a member whose betweenness reaches :data:`BROKER_BETWEENNESS`.
    Betweenness centrality (``networkx.betweenness_centrality``, normalised): the share of the shortest
    paths between pairs of other members that pass through a member (a pair with several shortest paths
    shares its one among them). Exact up to :data:`EXACT_BETWEENNESS_UP_TO` members (a breadth-first
    search from each); above, estimated from :data:`SAMPLED_SOURCES` members drawn with a fixed seed from
    the members in sorted order, so the same graph always gives the same figures.
    """
    # Nodes and edges in sorted order: the sample and the float sums do not depend on the rows' order.
    ordered: nx.Graph = nx.Graph(sorted({(a, b) if a < b else (b, a) for a, b in edges if a != b}))
    n = ordered.number_of_nodes()
    if n == 0:
        return 0, None
    sample = None if n <= EXACT_BETWEENNESS_UP_TO else SAMPLED_SOURCES
    centrality = nx.betweenness_centrality(ordered, k=sample, normalized=True, seed=BETWEENNESS_SEED)
    return sum(1 for value in centrality.values() if value >= BROKER_BETWEENNESS), max(centrality.values())


def _product(
    entry: Community, rows: list[tuple[str, int, Decimal]], met: dict[str, bool], known: set[MemberKey]
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

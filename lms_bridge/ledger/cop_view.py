"""The CoP health report as people read it: figures in CIPP sections, in the report's language, small cells hidden.

One list of figures (:data:`FIGURES`) serves the terminal, JSON, XLSX, PDF and the web page. Each figure
knows its CIPP section (Context, Input, Process, Product), its label (a catalog message), how to read it
from :class:`~lms_bridge.ledger.cop.Figures` and which people it is about: outside HR's view a figure
about 1 to 4 people is shown as "< 5" (:func:`cell`). Conversation figures of a community whose sources
carry no reply links are "not available", never inferred.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lms_bridge import i18n
from lms_bridge.ledger.cop import SMALL_CELL, Community, CopReport, Figures


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark only, translate later"
    """Mark ``message`` for the catalog; translated when shown."""
    return message


SECTIONS = {
    "context": N_("Context"),
    "input": N_("Input"),
    "process": N_("Process"),
    "product": N_("Product"),
}
STORIES = N_("Stories (filled in by the organiser)")
NOT_AVAILABLE = N_("not available")
SMALL = "< 5"


@dataclass(frozen=True)
class Figure:
    """One row of the report.

    Attributes:
        key: the JSON name.
        section: a key of :data:`SECTIONS`.
        label: the catalog message.
        kind: ``int``, ``percent``, ``hours``, ``decimal`` or ``jp``.
        value: the figure from a period's figures (and its community).
        people: the counts of people it is about (hidden when one is 1 to 4), or none.
        conversation: needs reply links ("not available" without them).
        period: ``both``, ``year`` (only the year's column) or ``month``.
    """

    key: str
    section: str
    label: str
    kind: str
    value: Callable[[Figures, Community], Any]
    people: Callable[[Figures], tuple[int | None, ...]] = lambda f: ()
    conversation: bool = False
    period: str = "both"


def _self(name: str) -> Callable[[Figures], tuple[int | None, ...]]:
    return lambda f: (getattr(f, name),)


FIGURES: tuple[Figure, ...] = (
    # Context: who the community is and how far it reaches.
    Figure("members", "context", N_("Members (known)"), "int", lambda f, c: f.members, _self("members")),
    Figure(
        "members_linked",
        "context",
        N_("  on the HR roster (NIP)"),
        "int",
        lambda f, c: f.members_linked,
        _self("members_linked"),
    ),
    Figure(
        "members_pseudonymous",
        "context",
        N_("  pseudonymous"),
        "int",
        lambda f, c: f.members_pseudonymous,
        _self("members_pseudonymous"),
    ),
    Figure("newcomers", "context", N_("Newcomers"), "int", lambda f, c: f.newcomers, _self("newcomers")),
    Figure(
        "activated",
        "context",
        N_("  contributed within 14 days"),
        "int",
        lambda f, c: f.activated,
        _self("activated"),
    ),
    Figure(
        "units_reached",
        "context",
        N_("Work units reached"),
        "int",
        lambda f, c: f.units_reached,
        lambda f: (f.active,),
    ),
    # Input: what the community was offered.
    Figure(
        "facilitators",
        "input",
        N_("Facilitators (configured, else the top 3 posters)"),
        "int",
        lambda f, c: c.facilitators,
        period="year",
    ),
    Figure("sessions", "input", N_("Sessions held (meetings)"), "int", lambda f, c: f.sessions),
    Figure("threads", "input", N_("Threads started"), "int", lambda f, c: f.threads, conversation=True),
    # Process: participation.
    Figure("active", "process", N_("Active members"), "int", lambda f, c: f.active, _self("active")),
    Figure(
        "active_rate",
        "process",
        N_("Active rate"),
        "percent",
        lambda f, c: f.active_rate,
        lambda f: (f.active, f.members),
    ),
    Figure(
        "ladder_0",
        "process",
        N_("Members with 0 active days"),
        "int",
        lambda f, c: f.ladder[0],
        lambda f: (f.ladder[0],),
    ),
    Figure(
        "ladder_1_2",
        "process",
        N_("Members with 1-2 active days"),
        "int",
        lambda f, c: f.ladder[1],
        lambda f: (f.ladder[1],),
    ),
    Figure(
        "ladder_3",
        "process",
        N_("Members with 3+ active days"),
        "int",
        lambda f, c: f.ladder[2],
        lambda f: (f.ladder[2],),
    ),
    Figure("moved_up", "process", N_("Moved up a rung"), "int", lambda f, c: f.moved_up, _self("moved_up")),
    Figure("moved_down", "process", N_("Moved down a rung"), "int", lambda f, c: f.moved_down, _self("moved_down")),
    Figure(
        "contributions",
        "process",
        N_("Posts, replies and messages"),
        "int",
        lambda f, c: f.contributions,
        _self("posters"),
    ),
    Figure("replies", "process", N_("Replies"), "int", lambda f, c: f.replies, _self("repliers")),
    Figure(
        "reply_rate",
        "process",
        N_("Reply rate (threads answered)"),
        "percent",
        lambda f, c: f.reply_rate,
        conversation=True,
    ),
    Figure(
        "median_response_hours",
        "process",
        N_("Median time to first response (hours)"),
        "hours",
        lambda f, c: f.median_response_hours,
        conversation=True,
    ),
    Figure(
        "replies_per_thread",
        "process",
        N_("Replies per thread"),
        "decimal",
        lambda f, c: f.replies_per_thread,
        conversation=True,
    ),
    Figure(
        "top1_posts",
        "process",
        N_("Share of posts by the top 1 member"),
        "percent",
        lambda f, c: f.top1_posts,
        _self("posters"),
    ),
    Figure(
        "top3_posts",
        "process",
        N_("Share of posts by the top 3 members"),
        "percent",
        lambda f, c: f.top3_posts,
        _self("posters"),
    ),
    Figure(
        "top1_replies",
        "process",
        N_("Share of replies by the top 1 member"),
        "percent",
        lambda f, c: f.top1_replies,
        _self("repliers"),
    ),
    Figure(
        "top3_replies",
        "process",
        N_("Share of replies by the top 3 members"),
        "percent",
        lambda f, c: f.top3_replies,
        _self("repliers"),
    ),
    Figure(
        "reply_edges",
        "process",
        N_("Replies between two members"),
        "int",
        lambda f, c: f.edges,
        _self("repliers"),
        conversation=True,
    ),
    Figure(
        "peer_share",
        "process",
        N_("Peer-to-peer share of replies (no facilitator)"),
        "percent",
        lambda f, c: f.peer_share,
        _self("repliers"),
        conversation=True,
    ),
    Figure(
        "cross_unit_edges",
        "process",
        N_("Replies across work units"),
        "int",
        lambda f, c: f.cross_unit_edges,
        _self("repliers"),
        conversation=True,
    ),
    Figure(
        "brokers",
        "process",
        N_("Brokers (members who bridge separate groups)"),
        "int",
        lambda f, c: f.brokers,
        _self("brokers"),
        conversation=True,
        period="year",
    ),
    Figure(
        "top_betweenness",
        "process",
        N_("Highest betweenness in the reply graph"),
        "decimal",
        lambda f, c: f.top_betweenness,
        lambda f: (f.repliers,),
        conversation=True,
        period="year",
    ),
    # Product: what it earned.
    Figure("attendances", "product", N_("Meeting attendances"), "int", lambda f, c: f.attendances, _self("attendees")),
    Figure("attendees", "product", N_("Members who attended"), "int", lambda f, c: f.attendees, _self("attendees")),
    Figure("jp", "product", N_("JP earned here (C10 and webinars)"), "jp", lambda f, c: f.jp, _self("jp_people")),
    Figure(
        "jp_people", "product", N_("Members who earned JP here"), "int", lambda f, c: f.jp_people, _self("jp_people")
    ),
    Figure(
        "targets_met",
        "product",
        N_("Members who reached their JP target"),
        "int",
        lambda f, c: f.targets_met,
        _self("targets_met"),
        period="year",
    ),
    Figure(
        "targets_people",
        "product",
        N_("  of members on the HR roster"),
        "int",
        lambda f, c: f.targets_people,
        _self("targets_people"),
        period="year",
    ),
)


def hidden(people: tuple[int | None, ...], hr: bool) -> bool:
    """Whether a figure about these counts of people is "< 5" in this view (a count of 1 to 4, outside HR)."""
    return not hr and any(n is not None and 0 < n < SMALL_CELL for n in people)


def raw(figure: Figure, figures: Figures, community: Community, hr: bool) -> Any:
    """The figure's value for JSON: a number, None, ``"< 5"`` or ``"not available"``."""
    if figure.conversation and not community.reply_links:
        return "not available"
    if hidden(figure.people(figures), hr):
        return SMALL
    value = figure.value(figures, community)
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, Decimal):
        return float(value)
    return value


def text(figure: Figure, figures: Figures, community: Community, hr: bool, language: str) -> str:
    """The figure as a person reads it, in ``language`` (``-``: nothing to show)."""
    _ = i18n.translator(language)
    value = raw(figure, figures, community, hr)
    if value == "not available":
        return _(NOT_AVAILABLE)
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if figure.kind == "percent":
        return f"{i18n.decimal(round(float(value) * 100, 1), language)} %"
    if figure.kind in ("hours", "decimal"):
        return i18n.decimal(round(float(value), 2), language)
    if figure.kind == "jp":
        return i18n.decimal(Decimal(str(value)), language)
    return str(value)


def periods(community: Community) -> list[int]:
    """Months with any figure to show (members known), then 0 for the year."""
    return [m for m, f in community.months.items() if f.members] + [0]


def figures_of(community: Community, month: int) -> Figures:
    """A month's figures, or the year's (0)."""
    return community.year if month == 0 else community.months[month]


def applies(figure: Figure, month: int) -> bool:
    """Whether the figure has a value in that column (some are the year's only)."""
    return figure.period == "both" or (figure.period == "year") == (month == 0)


def as_json(report: CopReport, hr: bool) -> dict[str, Any]:
    """The report as JSON data (English keys, values or ``"< 5"``/``"not available"``)."""
    communities = []
    for community in report.communities:

        def period(month: int, community: Community = community) -> dict[str, Any]:
            figures = figures_of(community, month)
            return {f.key: raw(f, figures, community, hr) for f in FIGURES if applies(f, month)}

        communities.append(
            {
                "community": community.id,
                "reply_links": community.reply_links,
                "facilitators_configured": community.facilitators_configured,
                "year": period(0),
                "months": {f"{report.year}-{m:02d}": period(m) for m in range(1, 13)},
            }
        )
    return {"report": "cop", "year": report.year, "view": "hr" if hr else "organiser", "communities": communities}

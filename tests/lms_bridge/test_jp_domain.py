"""Domain truth of the JP engine (pure, no database), hand-computed: held completions, rules by date,
the conversion table's rows and variants, and one credit per event."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lms_bridge.errors import RuleError
from lms_bridge.jp.engine import Credit, EvidenceItem, compute_credits, merge_duplicates
from lms_bridge.jp.rules import ProgramJP, RuleSet, load_program_jp, load_rules

JAKARTA = ZoneInfo("Asia/Jakarta")
RULES = load_rules()
BUDI = "198005122005011002"

PROGRAM_TOML = """\
format = 1

[default]

[sites.lms]
shortnames = { "LATSAR" = "40" }

[sites.explicit]
default = "0"
"""


def ev(
    kind: str,
    at: datetime,
    *,
    source: str = "moodle",
    site: str = "lms",
    obj: str = "object:1",
    duration: int | None = None,
    sid: str | None = None,
    **facts: Any,
) -> EvidenceItem:
    occurred = at.astimezone(UTC)
    return EvidenceItem(
        statement_id=sid or f"{source}-{kind}-{obj}-{occurred:%Y%m%d%H%M}",
        nip=BUDI,
        source=source,
        site_id=site,
        kind=kind,
        occurred_at=occurred,
        local_date=occurred.astimezone(JAKARTA).date(),
        duration_seconds=duration,
        object_key=obj,
        facts=facts,
    )


def wib(month: int, day: int, hour: int = 10, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=JAKARTA)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> ProgramJP:
    path = tmp_path_factory.mktemp("program") / "program_jp.toml"
    path.write_text(PROGRAM_TOML, encoding="utf-8")
    return load_program_jp(path)


def summary(credits: list[Credit]) -> list[tuple[str, str, str, bool]]:
    return [(c.rule.id, c.period, f"{c.jp.normalize():f}", c.pending) for c in credits]


# --- never a silent zero ---------------------------------------------------------------------


def test_completion_of_an_unconfigured_course_is_held(program: ProgramJP) -> None:
    done = ev("course_completed", wib(3, 10), obj="course:9", course_shortname="PKP")
    elsewhere = ev("course_completed", wib(3, 11), site="other", obj="course:7", course_shortname="LATSAR")
    credits = compute_credits([done, elsewhere], RULES, program)
    assert summary(credits) == [
        ("training-completed", "2026-03-10", "0", True),
        ("training-completed", "2026-03-11", "0", True),
    ]


def test_modules_of_an_unconfigured_course_are_held_not_counted_as_elearning(program: ProgramJP) -> None:
    held = [ev("module_completed", wib(3, 10, 8 + n), obj=f"module:{n}", course_shortname="PKP") for n in range(3)]
    known = ev("module_completed", wib(3, 10, 13), site="explicit", obj="module:9", course_shortname="FREE")
    no_course = ev("module_completed", wib(3, 10, 14), obj="module:10")  # names no course: never held
    credits = compute_credits([*held, known, no_course], RULES, program)
    assert summary(credits) == [("elearning", "2026-03-10", "1", False), ("elearning", "2026-03-10", "0", True)]
    assert credits[1].evidence == tuple(held) and credits[1].activity_key == "held:moodle/lms/PKP"


def test_an_explicit_zero_default_is_not_held(program: ProgramJP) -> None:
    done = ev("course_completed", wib(3, 10), site="explicit", obj="course:9", course_shortname="PKP")
    credits = compute_credits([done], RULES, program)
    assert summary(credits) == [("training-completed", "2026-03-10", "0", False)]


def test_held_credits_use_no_cap_room(program: ProgramJP) -> None:
    held = [ev("module_completed", wib(3, 10, 8 + n), obj=f"held:{n}", course_shortname="PKP") for n in range(8)]
    free = [ev("module_completed", wib(3, 10, 15, 5 * n), obj=f"m:{n}", site="explicit") for n in range(5)]
    credits = compute_credits([*held, *free], RULES, program)
    # The 5 free modules give 2.5 JP: the 8 held ones (4 JP if they counted) leave the 3 JP cap untouched.
    assert [(c.pending, c.jp, c.capped_by) for c in credits] == [(False, Decimal("2.5"), None), (True, 0, None)]


# --- every row of the conversion table, both columns -----------------------------------------

ROWS = [
    # (jp_form, variant, kind, minutes, expected rule, expected code, expected JP)
    ("A1", None, "course_completed", None, "study-assignment", "A1", "20"),
    ("A2", "international", "course_completed", None, "study-assignment", "A2", "20"),
    ("B1", None, "course_completed", None, "classical-training", "B1", "40"),
    ("B1", "international", "course_completed", None, "classical-training", "B1", "40"),  # no international column
    ("B3", None, "course_completed", None, "classical-training", "B3", "40"),
    ("B3", "international", "course_completed", None, "classical-training-international", "B3", "48"),
    ("B8", None, "course_completed", None, "classical-training", "B8", "40"),
    ("C6", "international", "course_completed", None, "classical-training-international", "C6", "48"),
    ("B6", None, "meeting_attended", 60, "seminar", "B6", "4"),
    ("B6", "international", "meeting_attended", 60, "seminar-international", "B6", "6"),
    ("B7", None, "meeting_attended", 60, "workshop", "B7", "5"),
    ("B7", "international", "course_completed", None, "workshop-international", "B7", "7"),
    ("B11", None, "meeting_attended", 60, "sosialisasi", "B11", "4"),
    ("B11", "international", "meeting_attended", 60, "sosialisasi-international", "B11", "6"),
    ("C1", None, "coaching_attended", None, "coaching-mentoring", "C1", "2"),
    ("C2", None, "coaching_attended", None, "coaching-mentoring", "C2", "2"),
    ("C2", "international", "coaching_attended", None, "coaching-mentoring-international", "C2", "4"),
    ("C4", None, "meeting_attended", 300, "distance-training", "C4", "6.66"),  # 300/45, no daily cap
    ("C4", "international", "meeting_attended", 300, "distance-training-international", "C4", "8"),  # x 1.2
    ("C4", None, "course_completed", None, "classical-training", "C4", "40"),
    ("C5", None, "course_completed", None, "secondment", "C5", "20"),
    ("C5", "international", "course_completed", None, "secondment-international", "C5", "24"),
    ("C7", None, "course_completed", None, "benchmarking", "C7", "10"),
    ("C7", "international", "course_completed", None, "benchmarking-international", "C7", "20"),
    ("C8", None, "course_completed", None, "exchange", "C8", "20"),
    ("C8", "international", "course_completed", None, "exchange-international", "C8", "24"),
    ("C9", None, "module_completed", 180, "self-study", "C9", "2"),  # 4 JP of minutes, capped at 2 a day
    ("C9", "international", "module_completed", 180, "self-study-international", "C9", "2.4"),
    ("C11", None, "course_completed", None, "internship", "C11", "20"),
    ("C11", "international", "course_completed", None, "internship-international", "C11", "24"),
]


@pytest.mark.parametrize(("form", "variant", "kind", "minutes", "rule", "code", "expected"), ROWS)
def test_every_table_row(
    program: ProgramJP,
    form: str,
    variant: str | None,
    kind: str,
    minutes: int | None,
    rule: str,
    code: str,
    expected: str,
) -> None:
    facts: dict[str, Any] = {"jp_form": form, "course_shortname": "LATSAR"}
    if variant:
        facts["variant"] = variant
    item = ev(kind, wib(3, 10), obj="x:1", duration=minutes * 60 if minutes else None, **facts)
    credits = compute_credits([item], RULES, program)
    assert [(c.rule.id, c.code, f"{c.jp.normalize():f}") for c in credits] == [(rule, code, expected)]


def test_c3_international_caps_at_4_and_c10_international_adds_20_percent(program: ProgramJP) -> None:
    modules = [
        ev("module_completed", wib(3, 10, 8, n), site="explicit", obj=f"m:{n}", variant="international")
        for n in range(10)
    ]
    posts = [
        ev("message_posted", wib(3, 11, 9, n), source="whatsapp", obj=f"msg:{n}", variant="international")
        for n in range(3)
    ]
    credits = compute_credits([*modules, *posts], RULES, program)
    assert [(c.rule.id, c.code, c.raw, c.jp) for c in credits] == [
        ("elearning-international", "C3", Decimal(5), Decimal(4)),
        ("cop-international", "C10", Decimal("2.4"), Decimal("2.4")),
    ]


def test_national_and_international_columns_share_one_daily_limit(program: ProgramJP) -> None:
    # A day with national CoP (2 JP, its cap) and then international CoP: the international
    # column's cap (2.4) bounds the day's total, so only 0.4 JP more, not another 2.4.
    national = [ev("message_posted", wib(3, 11, 9, n), source="whatsapp", obj=f"n:{n}") for n in range(3)]
    international = [
        ev("message_posted", wib(3, 11, 15, n), source="whatsapp", obj=f"i:{n}", variant="international")
        for n in range(3)
    ]
    # E-learning the other way round: 4 JP international first leaves no room for national modules.
    foreign = [
        ev("module_completed", wib(3, 12, 8, n), site="explicit", obj=f"f:{n}", variant="international")
        for n in range(8)
    ]
    local = [ev("module_completed", wib(3, 12, 14, n), site="explicit", obj=f"l:{n}") for n in range(4)]
    credits = compute_credits([*national, *international, *foreign, *local], RULES, program)
    assert [(c.rule.id, c.period, c.jp, c.capped_by) for c in credits] == [
        ("cop", "2026-03-11", Decimal(2), None),
        ("cop-international", "2026-03-11", Decimal("0.4"), "day"),
        ("elearning", "2026-03-12", Decimal(0), "day"),
        ("elearning-international", "2026-03-12", Decimal(4), None),
    ]


def test_rules_of_one_cap_group_must_cap_the_same_periods(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """format = 1

[[rules]]
id = "a"
version = 1
code = "C10"
title = "a"
kinds = ["message_posted"]
credit = "per_item"
jp_per_item = "1"
record = "day"
cap_per_day = "2"
cap_group = "g"

[[rules]]
id = "b"
version = 1
code = "C10"
title = "b"
kinds = ["post_created"]
credit = "per_item"
jp_per_item = "1"
record = "day"
cap_per_month = "2"
cap_group = "g"
""",
        encoding="utf-8",
    )
    with pytest.raises(RuleError, match="must cap the same periods"):
        load_rules(path)


def test_same_activity_without_a_form_keeps_the_default_rules(program: ProgramJP) -> None:
    webinar = ev("meeting_attended", wib(3, 10), source="zoom", obj="meeting:1", duration=100 * 60)
    coaching = ev("coaching_attended", wib(3, 11), source="jsonl", obj="coaching:1")
    credits = compute_credits([webinar, coaching], RULES, program)
    assert [(c.rule.id, c.code, c.jp) for c in credits] == [
        ("webinar", "B6", Decimal("2.22")),
        ("coaching", "C1", Decimal(2)),
    ]


def test_coaching_and_mentoring_share_the_monthly_limit(program: ProgramJP) -> None:
    items = [
        ev("coaching_attended", wib(3, 3), obj="c:1"),
        ev("coaching_attended", wib(3, 10), obj="c:2", jp_form="C2"),
        ev("coaching_attended", wib(3, 17), obj="c:3", jp_form="C1"),
    ]
    credits = compute_credits(items, RULES, program)
    assert [(c.rule.id, c.code, c.jp, c.capped_by) for c in credits] == [
        ("coaching", "C1", Decimal(2), None),
        ("coaching-mentoring", "C2", Decimal(2), None),
        ("coaching-mentoring", "C1", Decimal(0), "month"),
    ]


# --- configuration says what a webinar is ------------------------------------------------------


def _rules_with(tmp_path: Path, extra: str) -> RuleSet:
    path = tmp_path / "rules.toml"
    path.write_text(RULES.path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return load_rules(path)


ASSIGN = """
[[assign]]
when = { source = ["zoom"], site_id = ["sosialisasi-zoom"] }
jp_form = "B11"

[[assign]]
when = { object_key = ["meeting:77"] }
jp_form = "C4"

[[assign]]
when = { course_category = ["9"] }
variant = "international"

[[assign]]
when = { site_id = ["seminar-lms"] }
jp_form = "B6"
"""


def test_assign_files_a_webinar_as_b11_c4_or_b6(program: ProgramJP, tmp_path: Path) -> None:
    rules = _rules_with(tmp_path, ASSIGN)
    three_hours = 180 * 60
    items = [
        ev(
            "meeting_attended",
            wib(3, 10),
            source="zoom",
            site="sosialisasi-zoom",
            obj="meeting:1",
            duration=three_hours,
        ),
        ev("meeting_attended", wib(3, 11), source="zoom", site="main-zoom", obj="meeting:77", duration=three_hours),
        ev("meeting_attended", wib(3, 12), source="zoom", site="main-zoom", obj="meeting:78", duration=three_hours),
        ev(
            "meeting_attended",
            wib(3, 13),
            source="moodle",
            site="seminar-lms",
            obj="bbb:1",
            duration=three_hours,
            course_category=9,
        ),
        # The source says the row itself: it wins over the configuration.
        ev(
            "meeting_attended",
            wib(3, 14),
            source="zoom",
            site="sosialisasi-zoom",
            obj="meeting:2",
            duration=three_hours,
            jp_form="B7",
        ),
    ]
    credits = compute_credits(items, rules, program)
    assert [(c.period, c.rule.id, c.code, f"{c.jp.normalize():f}") for c in credits] == [
        ("2026-03-10", "sosialisasi", "B11", "4"),  # flat 4 JP a day
        ("2026-03-11", "distance-training", "C4", "4"),  # 180 / 45, no daily cap
        ("2026-03-12", "webinar", "B6", "4"),  # the documented default: minutes / 45, at most 4 a day
        ("2026-03-13", "seminar-international", "B6", "6"),  # category 9 is international
        ("2026-03-14", "workshop", "B7", "5"),
    ]


def test_a_bad_assignment_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"\[\[assign\]\] #1 `jp_form`"):
        _rules_with(tmp_path, '\n[[assign]]\nwhen = { site_id = ["x"] }\njp_form = "webinar"\n')
    with pytest.raises(RuleError, match=r"\[\[assign\]\] #1 `variant`"):
        _rules_with(tmp_path, '\n[[assign]]\nwhen = { site_id = ["x"] }\nvariant = "abroad"\n')


# --- rules by date ---------------------------------------------------------------------------

BY_DATE = """\
format = 1

[[rules]]
id = "webinar"
version = 2
code = "B6"
kinds = ["meeting_attended"]
credit = "minutes"
record = "activity"
min_minutes = 0
cap_per_day = "3"
effective_from = 2026-07-01
citation = "Institution letter 12/2026: at most 3 JP a day from July"

[[rules]]
id = "webinar"
version = 1
code = "B6"
kinds = ["meeting_attended"]
credit = "minutes"
record = "activity"
min_minutes = 30
cap_per_day = "4"
effective_from = 2018-01-01
effective_to = 2026-06-30
citation = "Perlan LAN 10/2018"
"""


def test_a_rule_change_mid_year_keeps_each_activity_on_its_own_rule(program: ProgramJP, tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(BY_DATE, encoding="utf-8")
    rules = load_rules(path)
    four_hours = 240 * 60
    items = [
        ev("meeting_attended", wib(6, 30, 9), source="zoom", obj="meeting:1", duration=four_hours),
        ev("meeting_attended", wib(7, 1, 9), source="zoom", obj="meeting:2", duration=four_hours),
        ev("meeting_attended", wib(7, 2, 9), source="zoom", obj="meeting:3", duration=20 * 60),
        ev("meeting_attended", wib(5, 1, 9), source="zoom", obj="meeting:4", duration=20 * 60),
        ev("meeting_attended", wib(1, 1, 9, year=2017), source="zoom", obj="meeting:5", duration=four_hours),
    ]
    credits = compute_credits(items, rules, program)
    assert [(c.period, c.rule.version, f"{c.jp.normalize():f}", c.capped_by) for c in credits] == [
        ("2026-05-01", 1, "0", None),  # 20 minutes: under v1's 30-minute minimum
        ("2026-06-30", 1, "4", "day"),  # 240 / 45 = 5.33, v1 caps at 4
        ("2026-07-01", 2, "3", "day"),  # v2 caps at 3
        ("2026-07-02", 2, "0.44", None),  # 20 minutes count under v2
    ]  # 2017: no rule in force, no credit


def test_overlapping_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(BY_DATE.replace("effective_to = 2026-06-30", "effective_to = 2026-07-01"), encoding="utf-8")
    with pytest.raises(RuleError, match="overlapping periods"):
        load_rules(path)
    path.write_text(BY_DATE.replace("version = 2", "version = 1"), encoding="utf-8")
    with pytest.raises(RuleError, match="`version` 1 is used twice"):
        load_rules(path)
    path.write_text(BY_DATE.replace("effective_from = 2026-07-01", "effective_from = 2026-13-01"), encoding="utf-8")
    with pytest.raises(RuleError, match="not valid TOML"):
        load_rules(path)
    path.write_text(BY_DATE.replace("effective_from = 2018-01-01", 'effective_from = "2026-08-01"'), encoding="utf-8")
    with pytest.raises(RuleError, match="`effective_to` must not be before effective_from"):
        load_rules(path)


def test_shipped_rules_cite_their_regulation() -> None:
    assert all(rule.citation.startswith("Perlan LAN 10/2018") for rule in RULES.rules)
    assert {code for rule in RULES.rules for code in (rule.forms or {rule.code})} >= {
        "A1",
        "A2",
        "B1",
        "B2",
        "B3",
        "B4",
        "B5",
        "B6",
        "B7",
        "B8",
        "B9",
        "B10",
        "B11",
        "C1",
        "C2",
        "C3",
        "C4",
        "C5",
        "C6",
        "C7",
        "C8",
        "C9",
        "C10",
        "C11",
    }


# --- one credit per event ----------------------------------------------------------------------


def test_one_webinar_through_zoom_and_moodle_is_credited_once(program: ProgramJP) -> None:
    link = "https://zoom.us/j/81200000001"
    zoom = ev(
        "meeting_attended",
        wib(3, 10, 9),
        source="zoom",
        site="zoom",
        obj="meeting:812",
        duration=100 * 60,
        event_link=link,
    )
    bbb = ev(
        "meeting_attended",
        wib(3, 10, 9, 30),
        source="moodle",
        site="lms",
        obj="zoom:5",
        duration=90 * 60,
        event_link=link,
    )
    later = ev(
        "meeting_attended", wib(3, 10, 14), source="moodle", site="lms", obj="zoom:6", duration=90 * 60, event_link=link
    )  # the same link 5 hours later: another session
    credits = compute_credits([bbb, later, zoom], RULES, program)
    assert [(c.activity_key, c.jp, c.capped_by) for c in credits] == [
        ("moodle/lms/zoom:6", Decimal("1.78"), "day"),  # 90/45 = 2, but only 4 - 2.22 left that day
        ("zoom/zoom/meeting:812", Decimal("2.22"), None),  # 100/45; the BBB copy is not credited again
    ]
    kept, merges = merge_duplicates([bbb, later, zoom], RULES)
    assert kept == [zoom, later]
    assert [(m.kept, m.dropped, m.reason, m.fact, m.window_minutes) for m in merges] == [
        (zoom, bbb, "shared_fact", "event_link", 60)
    ]
    assert merges[0].explanation == "same event_link within 60 minutes"


def test_same_event_lists_an_elearning_course_in_two_lms(program: ProgramJP, tmp_path: Path) -> None:
    rules = _rules_with(
        tmp_path,
        '\n[dedupe]\nwindow_minutes = 30\nlink_facts = ["course_idnumber"]\n'
        '\n[[same_event]]\nkeys = ["moodle/ministry-lms/course:3", "lrs/mirror-lrs/course:abc"]\n',
    )
    ministry = ev("course_completed", wib(3, 10), site="ministry-lms", obj="course:3", course_shortname="LATSAR")
    mirrored = ev(
        "course_completed", wib(3, 12), source="lrs", site="mirror-lrs", obj="course:abc", course_shortname="LATSAR"
    )
    by_idnumber = [
        ev(
            "course_completed",
            wib(4, 1, 9),
            site="lms",
            obj="course:8",
            course_shortname="LATSAR",
            course_idnumber="PKP-1",
        ),
        ev(
            "course_completed",
            wib(4, 1, 9, 20),
            source="lrs",
            site="lms",
            obj="course:9",
            course_shortname="LATSAR",
            course_idnumber="PKP-1",
        ),
    ]
    _, merges = merge_duplicates([mirrored, ministry, *by_idnumber], rules)
    assert [(m.dropped.object_key, m.explanation) for m in merges] == [
        ("course:abc", "listed in [[same_event]]"),
        ("course:9", "same course_idnumber within 30 minutes"),
    ]
    credits = compute_credits([mirrored, ministry, *by_idnumber], rules, program)
    assert [(c.activity_key, c.jp, c.pending) for c in credits] == [
        ("moodle/ministry-lms/course:3", Decimal(0), True),  # that site's JP is not configured: held
        ("moodle/lms/course:8", Decimal(40), False),
    ]

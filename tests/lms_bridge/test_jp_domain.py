"""Domain truth of the JP engine (pure, no database), hand-computed: held completions, rules by date,
the conversion table's rows and variants, and one credit per event."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lms_bridge.jp.engine import Credit, EvidenceItem, compute_credits
from lms_bridge.jp.rules import ProgramJP, load_program_jp, load_rules

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

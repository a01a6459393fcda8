"""JP meaning of Moodle records (issue 17, items 4 and 7): failed modules and meetings without minutes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from lms_bridge.jp.engine import EvidenceItem, compute_credits
from lms_bridge.jp.rules import ProgramJP, load_program_jp, load_rules

JAKARTA = ZoneInfo("Asia/Jakarta")
RULES = load_rules()
NIP = "198005122005011002"


def item(kind: str, obj: str, *, duration: int | None = None, hour: int = 10, **facts: object) -> EvidenceItem:
    at = datetime(2026, 4, 2, hour, tzinfo=JAKARTA).astimezone(UTC)
    return EvidenceItem(
        statement_id=f"{kind}-{obj}",
        nip=NIP,
        source="moodle",
        site_id="lms",
        kind=kind,
        occurred_at=at,
        local_date=at.astimezone(JAKARTA).date(),
        duration_seconds=duration,
        object_key=obj,
        facts=dict(facts),
    )


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> ProgramJP:
    path: Path = tmp_path_factory.mktemp("program") / "program_jp.toml"
    path.write_text('format = 1\n\n[default]\n\n[sites.lms]\ndefault = "0"\n', encoding="utf-8")
    return load_program_jp(path)


def test_a_failed_module_earns_no_elearning_jp(program: ProgramJP) -> None:
    passed = item("module_completed", "module:1", success=True, course_shortname="X")
    failed = item("module_completed", "module:2", hour=11, success=False, course_shortname="X")
    ungraded = item("module_completed", "module:3", hour=12, course_shortname="X")
    credits = compute_credits([passed, failed, ungraded], RULES, program)
    assert [(c.rule.id, str(c.jp)) for c in credits] == [("elearning", "1.00")]
    assert {e.statement_id for e in credits[0].evidence} == {passed.statement_id, ungraded.statement_id}


def test_a_meeting_without_minutes_is_credited_its_scheduled_length_or_held(program: ProgramJP) -> None:
    # 90 scheduled minutes, minutes present unknown: the rule credits the schedule (2 JP).
    scheduled = item("meeting_attended", "meeting:1", session_seconds=5400, attended_minutes_at_least=30)
    # Neither minutes nor a schedule: held as pending, never a guessed PT30M.
    unknown = item("meeting_attended", "meeting:2", hour=14, attended_minutes_at_least=30)
    credits = compute_credits([scheduled, unknown], RULES, program)
    by_object = {c.evidence[0].object_key: c for c in credits}
    assert str(by_object["meeting:1"].jp) == "2.00" and not by_object["meeting:1"].pending
    assert by_object["meeting:2"].pending and by_object["meeting:2"].jp == 0


def test_known_minutes_win_over_the_schedule(program: ProgramJP) -> None:
    zoom = item("meeting_attended", "meeting:3", duration=45 * 60, session_seconds=5400)
    [credit] = compute_credits([zoom], RULES, program)
    assert str(credit.jp) == "1.00" and not credit.pending


def test_a_viewed_meeting_page_earns_nothing(program: ProgramJP) -> None:
    assert compute_credits([item("module_viewed", "module:9", course_shortname="X")], RULES, program) == []


def test_one_session_through_two_accounts_is_one_credit_not_also_held(program: ProgramJP) -> None:
    # Found by the input-order property test: the same meeting reached through two accounts of one
    # person, one stating the schedule and one not, gave a credit and a held record for one activity.
    stated = item("meeting_attended", "meeting:4", session_seconds=5400)
    unstated = item("meeting_attended", "meeting:4", hour=11)
    for order in ([stated, unstated], [unstated, stated]):
        credits = compute_credits(order, RULES, program)
        assert [(c.activity_key, str(c.jp), c.pending) for c in credits] == [("moodle/lms/meeting:4", "2.00", False)]

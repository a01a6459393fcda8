"""JP rules and program JP files: the shipped files, and every way a file can be wrong."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from lms_bridge.errors import RuleError
from lms_bridge.jp.rules import DEFAULT_PROGRAM_JP, DEFAULT_RULES, load_program_jp, load_rules

SHIPPED_RULES = DEFAULT_RULES.read_text(encoding="utf-8")


def _replace(old: str, new: str) -> Callable[[str], str]:
    """An edit of the shipped text that fails loudly when ``old`` is not in it exactly once."""

    def edit(text: str) -> str:
        assert text.count(old) == 1, f"{old!r} is not in the shipped rules exactly once"
        return text.replace(old, new)

    return edit


def _write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- shipped files ---------------------------------------------------------------------------


def test_shipped_rules_load() -> None:
    rules = load_rules()
    assert rules.path == DEFAULT_RULES
    # The file's own rules come last: the conversion table pack's rules (tried first) only
    # take activities that name their table row (tests/lms_bridge/test_jp_domain.py).
    assert [(rule.id, rule.code) for rule in rules.rules[-5:]] == [
        ("training-completed", "B4"),
        ("elearning", "C3"),
        ("cop", "C10"),
        ("webinar", "B6"),
        ("coaching", "C1"),
    ]
    assert rules.precision == Decimal("0.01")
    assert rules.minutes_per_jp == 45
    assert rules.grace_hours == 24
    assert all(rule.version >= 1 for rule in rules.rules)


def test_shipped_rules_semantics() -> None:
    rules = load_rules()
    training, elearning, cop, webinar, coaching = (
        rules.rule(name) for name in ("training-completed", "elearning", "cop", "webinar", "coaching")
    )
    assert training is not None and training.credit == "program" and training.record == "activity"
    assert training.caps() == {}
    assert elearning is not None and elearning.jp_per_item == Decimal("0.5")
    assert elearning.caps() == {"day": Decimal(3)} and elearning.skip_program_courses
    assert cop is not None and cop.record == "day" and cop.caps() == {"day": Decimal(2)}
    assert cop.kinds == {"discussion_created", "post_created", "reply_created", "message_posted", "message_replied"}
    assert [(tier.jp, tier.min_items, tier.kinds) for tier in cop.tiers] == [
        (Decimal(1), 1, frozenset()),
        (Decimal(2), 3, frozenset()),
        (Decimal(2), 1, {"discussion_created"}),
    ]
    assert webinar is not None and webinar.min_share == Decimal("0.5") and webinar.min_minutes == 30
    assert webinar.caps() == {"day": Decimal(4)}
    assert coaching is not None and coaching.jp_per_item == Decimal(2)
    assert coaching.caps() == {"month": Decimal(4)}
    # Without an explicit cap_group each rule caps alone (the pack's coaching-mentoring shares coaching's month).
    assert [rule.cap_group for rule in rules.rules[-5:]] == [rule.id for rule in rules.rules[-5:]]
    assert rules.rule("no-such-rule") is None
    assert "course_completed" in rules.kinds and "coaching_attended" in rules.kinds


def test_rule_matches_kind_and_sources(tmp_path: Path) -> None:
    rules = load_rules()
    cop = rules.rule("cop")
    assert cop is not None
    assert cop.matches("whatsapp", "message_posted") and cop.matches("moodle", "reply_created")
    assert not cop.matches("moodle", "module_completed")
    path = _write(
        tmp_path,
        _replace('kinds = ["discussion_created",', 'sources = ["moodle"]\nkinds = ["discussion_created",')(
            SHIPPED_RULES
        ),
    )
    only_moodle = load_rules(path).rule("cop")
    assert only_moodle is not None and only_moodle.sources == {"moodle"}
    assert only_moodle.matches("moodle", "reply_created")
    assert not only_moodle.matches("whatsapp", "message_posted")


def test_shipped_program_jp_loads() -> None:
    program = load_program_jp()
    assert program.path == DEFAULT_PROGRAM_JP
    assert program.jp_for("demo-lms", {"course_shortname": "DIKLAT-L-LATSAR"}) == Decimal(40)
    assert program.jp_for("demo-lms", {"course_category": 3}) == Decimal(20)
    assert program.jp_for("demo-lms", {"course_category": 99}) == Decimal(0)
    # A site the file does not list: unknown (held as pending), no longer a silent 0.
    assert program.jp_for("elsewhere", {"course_shortname": "DIKLAT-L-LATSAR"}) is None


# --- bad rule files --------------------------------------------------------------------------

BAD_RULES = [
    pytest.param(lambda text: text + "\n[[rules\n", ["not valid TOML"], id="not-toml"),
    pytest.param(_replace("format = 1\n", ""), ["`format`"], id="missing-format"),
    pytest.param(_replace("format = 1\n", "format = 2\n"), ["`format`"], id="format-2"),
    pytest.param(_replace("format = 1\n", 'format = 1\ncolour = "red"\n'), ["`colour`"], id="unknown-top-level"),
    pytest.param(
        _replace("grace_hours = 24", "grace_hours = 24\ngrace_days = 1"),
        ["[settings]", "`grace_days`"],
        id="unknown-settings-key",
    ),
    pytest.param(
        _replace("minutes_per_jp = 45", "minutes_per_jp = 0"), ["[settings]", "`minutes_per_jp`"], id="minutes-per-jp-0"
    ),
    pytest.param(
        _replace('kinds = ["course_completed"]', 'kinds = ["course_completed"]\njp_per_day = "1"'),
        ["'training-completed'", "`jp_per_day`"],
        id="unknown-rule-key",
    ),
    pytest.param(_replace('id = "coaching"', 'id = "Coaching"'), ["[[rules]] #5", "`id`"], id="bad-id"),
    pytest.param(_replace('id = "coaching"', 'id = "coach ing"'), ["[[rules]] #5", "`id`"], id="id-with-space"),
    pytest.param(_replace('id = "coaching"', 'id = "webinar"'), ["'webinar'", "`id`", "twice"], id="duplicate-id"),
    pytest.param(
        _replace('id = "elearning"\nversion = 1', 'id = "elearning"\nversion = 0'),
        ["'elearning'", "`version`"],
        id="version-0",
    ),
    pytest.param(
        _replace('id = "elearning"\nversion = 1', 'id = "elearning"\nversion = "1"'),
        ["'elearning'", "`version`"],
        id="version-string",
    ),
    pytest.param(_replace('code = "C10"', 'code = "D10"'), ["'cop'", "`code`"], id="bad-code"),
    pytest.param(_replace('code = "C10"', 'code = "C100"'), ["'cop'", "`code`"], id="code-too-long"),
    pytest.param(
        _replace('"message_replied"]', '"message_edited"]'), ["'cop'", "`kinds`", "message_edited"], id="unknown-kind"
    ),
    pytest.param(_replace('kinds = ["meeting_attended"]', "kinds = []"), ["'webinar'", "`kinds`"], id="no-kinds"),
    pytest.param(_replace('credit = "minutes"', 'credit = "hours"'), ["'webinar'", "`credit`"], id="unknown-credit"),
    pytest.param(
        _replace('jp_per_item = "2"\n', ""), ["'coaching'", "`jp_per_item`"], id="per-item-without-jp-per-item"
    ),
    pytest.param(
        _replace('credit = "daily_tiers"\nrecord = "day"', 'credit = "daily_tiers"\nrecord = "activity"'),
        ["'cop'", "`record`"],
        id="daily-tiers-record-activity",
    ),
    pytest.param(
        _replace('credit = "minutes"\nrecord = "activity"', 'credit = "minutes"\nrecord = "week"'),
        ["'webinar'", "`record`"],
        id="unknown-record",
    ),
    pytest.param(
        _replace('kinds = ["discussion_created"] }', 'kinds = ["meeting_attended"] }'),
        ["'cop' tiers #3", "`kinds`"],
        id="tier-kinds-outside-rule",
    ),
    pytest.param(
        _replace('{ jp = "2", min_items = 3 }', '{ jp = "2", min_items = 0 }'),
        ["'cop' tiers #2", "`min_items`"],
        id="tier-min-items-0",
    ),
    pytest.param(
        _replace('{ jp = "2", min_items = 3 }', '{ jp = "2", items = 3 }'),
        ["'cop' tiers #2", "`tiers`"],
        id="tier-unknown-key",
    ),
    pytest.param(
        _replace('min_share = "0.5"', 'min_share = "1.5"'), ["'webinar'", "`min_share`"], id="min-share-above-1"
    ),
    pytest.param(
        _replace("min_minutes = 30", "min_minutes = -30"), ["'webinar'", "`min_minutes`"], id="negative-min-minutes"
    ),
    pytest.param(
        _replace('cap_per_day = "3"', 'cap_per_day = "-3"'), ["'elearning'", "`cap_per_day`"], id="negative-cap"
    ),
    pytest.param(_replace('cap_per_day = "3"', 'cap_per_day = "0"'), ["'elearning'", "`cap_per_day`"], id="zero-cap"),
    pytest.param(
        _replace('cap_per_month = "4"', 'cap_per_month = "NaN"'), ["'coaching'", "`cap_per_month`"], id="nan-cap"
    ),
    pytest.param(
        _replace('jp_per_item = "0.5"', 'jp_per_item = "half"'),
        ["'elearning'", "`jp_per_item`"],
        id="string-not-a-number",
    ),
    pytest.param(
        _replace('jp_per_item = "0.5"', "jp_per_item = true"), ["'elearning'", "`jp_per_item`"], id="bool-not-a-number"
    ),
    pytest.param(
        _replace('credit = "program"\nrecord = "activity"', 'credit = "program"\nrecord = "day"'),
        ["'training-completed'", "`record`"],
        id="program-record-day",
    ),
    pytest.param(
        _replace("min_minutes = 30", 'min_minutes = 30\ncap_group = "coaching"'),
        ["'webinar'", "`cap_group`", "'coaching'", "same periods"],
        id="cap-group-different-periods",
    ),
    pytest.param(
        _replace("skip_program_courses = true", 'skip_program_courses = "yes"'),
        ["'elearning'", "`skip_program_courses`"],
        id="skip-not-bool",
    ),
]


@pytest.mark.parametrize(("edit", "fragments"), BAD_RULES)
def test_bad_rules_file_raises_rule_error(tmp_path: Path, edit: Callable[[str], str], fragments: list[str]) -> None:
    path = _write(tmp_path, edit(SHIPPED_RULES))
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_rules_without_any_rule(tmp_path: Path) -> None:
    path = _write(tmp_path, "format = 1\n")
    with pytest.raises(RuleError, match=r"\[\[rules\]\]") as caught:
        load_rules(path)
    assert str(path) in str(caught.value)


def test_missing_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(RuleError, match="file not found") as caught:
        load_rules(path)
    assert str(path) in str(caught.value)


def test_cap_group_with_same_caps_loads(tmp_path: Path) -> None:
    # Giving webinar the same caps as cop makes the shared group valid.
    text = _replace('cap_per_day = "4"', 'cap_per_day = "2"\ncap_group = "cop"')(SHIPPED_RULES)
    rules = load_rules(_write(tmp_path, text))
    webinar = rules.rule("webinar")
    assert webinar is not None and webinar.cap_group == "cop" and webinar.caps() == {"day": Decimal(2)}


def test_numbers_may_be_toml_integers_and_floats(tmp_path: Path) -> None:
    text = _replace('jp_per_item = "0.5"', "jp_per_item = 0.5")(SHIPPED_RULES)
    text = _replace('cap_per_day = "3"', "cap_per_day = 3")(text)
    elearning = load_rules(_write(tmp_path, text)).rule("elearning")
    assert elearning is not None
    assert elearning.jp_per_item == Decimal("0.5") and elearning.cap_per_day == Decimal(3)


# --- program JP ------------------------------------------------------------------------------

PROGRAM = """\
format = 1

[default]
shortnames = { "NATIONAL" = "12" }
default = "1"

[sites.lms]
shortnames = { "LATSAR" = "40" }
idnumber_pattern = 'JP(?P<jp>\\d+)'
categories = { "3" = "20" }
default = "2"

[sites.plain]
categories = { "5" = "8" }
"""


@pytest.fixture
def program(tmp_path: Path):
    return load_program_jp(_write(tmp_path, PROGRAM, "program_jp.toml"))


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        pytest.param(
            {"course_shortname": "LATSAR", "course_idnumber": "X-JP12", "course_category": 3},
            "40",
            id="shortname-first",
        ),
        pytest.param(
            {"course_shortname": "OTHER", "course_idnumber": "X-JP12", "course_category": 3},
            "12",
            id="idnumber-before-category",
        ),
        pytest.param(
            {"course_shortname": "OTHER", "course_idnumber": "X-12", "course_category": 3},
            "20",
            id="category-when-pattern-misses",
        ),
        pytest.param({"course_category": "3"}, "20", id="category-as-text"),
        pytest.param(
            {"course_shortname": "OTHER", "course_idnumber": "X", "course_category": 4}, "2", id="site-default"
        ),
        pytest.param({}, "2", id="no-facts"),
        pytest.param({"course_shortname": "NATIONAL"}, "2", id="default-table-not-merged-into-site"),
    ],
)
def test_program_jp_precedence(program, facts: dict, expected: str) -> None:
    assert program.jp_for("lms", facts) == Decimal(expected)


def test_program_jp_default_table_for_unknown_sites(program) -> None:
    assert program.jp_for("unknown", {"course_shortname": "NATIONAL"}) == Decimal(12)
    assert program.jp_for("unknown", {"course_shortname": "LATSAR", "course_category": 3}) == Decimal(1)
    # A site with its own table does not fall back to [default]'s default either.
    assert program.jp_for("plain", {"course_category": 5}) == Decimal(8)
    # Its table has no `default`: any other course's JP is unknown (held), not 0.
    assert program.jp_for("plain", {"course_category": 6}) is None


BAD_PROGRAMS = [
    pytest.param(
        _replace("idnumber_pattern = 'JP(?P<jp>\\d+)'", "idnumber_pattern = 'JP(\\d+)'"),
        ["[sites.lms]", "`idnumber_pattern`"],
        id="pattern-without-jp-group",
    ),
    pytest.param(
        _replace("idnumber_pattern = 'JP(?P<jp>\\d+)'", "idnumber_pattern = 'JP(?P<jp>\\d+'"),
        ["[sites.lms]", "`idnumber_pattern`"],
        id="bad-regex",
    ),
    pytest.param(
        _replace("idnumber_pattern = 'JP(?P<jp>\\d+)'", "idnumber_pattern = 5"),
        ["[sites.lms]", "`idnumber_pattern`"],
        id="pattern-not-text",
    ),
    pytest.param(
        _replace('shortnames = { "LATSAR" = "40" }', 'shortname = { "LATSAR" = "40" }'),
        ["[sites.lms]", "`shortname`"],
        id="unknown-site-key",
    ),
    pytest.param(
        _replace('default = "1"', 'default = "1"\nfallback = "0"'),
        ["[default]", "`fallback`"],
        id="unknown-default-key",
    ),
    pytest.param(_replace("format = 1\n", "format = 1\nextra = 1\n"), ["`extra`"], id="unknown-top-level"),
    pytest.param(_replace("format = 1\n", ""), ["`format`"], id="missing-format"),
    pytest.param(
        _replace('{ "LATSAR" = "40" }', '{ "LATSAR" = "forty" }'),
        ["[sites.lms] shortnames", "`LATSAR`"],
        id="shortname-jp-not-a-number",
    ),
    pytest.param(
        _replace('{ "3" = "20" }', '{ "3" = "-20" }'), ["[sites.lms] categories", "`3`"], id="negative-category-jp"
    ),
    pytest.param(_replace('default = "2"', 'default = "two"'), ["[sites.lms]", "`default`"], id="bad-default"),
    pytest.param(lambda text: text + "\n[sites.lms\n", ["not valid TOML"], id="not-toml"),
]


@pytest.mark.parametrize(("edit", "fragments"), BAD_PROGRAMS)
def test_bad_program_jp_file_raises_rule_error(
    tmp_path: Path, edit: Callable[[str], str], fragments: list[str]
) -> None:
    path = _write(tmp_path, edit(PROGRAM), "program_jp.toml")
    with pytest.raises(RuleError) as caught:
        load_program_jp(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_missing_program_jp_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(RuleError, match="file not found") as caught:
        load_program_jp(path)
    assert str(path) in str(caught.value)


def test_idnumber_jp_group_that_is_not_a_number_does_not_crash(tmp_path: Path) -> None:
    text = _replace("idnumber_pattern = 'JP(?P<jp>\\d+)'", "idnumber_pattern = 'JP-(?P<jp>\\w+)'")(PROGRAM)
    program = load_program_jp(_write(tmp_path, text, "program_jp.toml"))
    assert program.jp_for("lms", {"course_idnumber": "JP-40"}) == Decimal(40)
    try:
        jp = program.jp_for("lms", {"course_idnumber": "JP-XL", "course_category": 3})
    except RuleError:
        return  # naming the file and key is an acceptable answer too
    except Exception as exc:  # noqa: BLE001 - the point is that it is not a RuleError
        raise AssertionError(f"jp_for raised {type(exc).__name__}") from exc
    assert jp == Decimal(20)  # not a number: fall through to the category


def test_a_program_jp_the_source_gives_counts_unless_the_shortname_table_overrides_it(tmp_path: Path) -> None:
    text = (
        'format = 1\n[default]\ndefault = "0"\n[sites.lms]\nshortnames = { "OVR" = "7" }\ncategories = { "3" = "20" }\n'
    )
    program = load_program_jp(_write(tmp_path, text, "program_jp.toml"))
    assert program.jp_for("csv-site", {"program_jp": "12"}) == Decimal(12)
    assert program.jp_for("lms", {"program_jp": "1.5", "course_category": 3}) == Decimal("1.5")
    assert program.jp_for("lms", {"program_jp": "12", "course_shortname": "OVR"}) == Decimal(7)
    assert program.jp_for("lms", {"program_jp": "abc", "course_category": 3}) == Decimal(20)


CUSTOMFIELD_PROGRAM = """\
format = 1
[default]
default = "0"
[sites.lms]
shortnames = { "OVR" = "7" }
customfield = "jp"
idnumber_pattern = 'JP(?P<jp>\\d+)'
categories = { "3" = "20" }
default = "2"
"""


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        pytest.param({"course_shortname": "OVR", "course_customfields": {"jp": "30"}}, "7", id="shortname-first"),
        pytest.param({"program_jp": "5", "course_customfields": {"jp": "30"}}, "5", id="source-figure-before-field"),
        pytest.param(
            {"course_customfields": {"jp": "30"}, "course_idnumber": "X-JP12", "course_category": 3},
            "30",
            id="field-before-idnumber-and-category",
        ),
        pytest.param({"course_customfields": {"jp": " 1.5 "}}, "1.5", id="decimal-field"),
        pytest.param(
            {"course_customfields": {"jp": "tiga"}, "course_idnumber": "X-JP12"}, "12", id="non-numeric-falls-through"
        ),
        pytest.param({"course_customfields": {"jp": ""}, "course_category": 3}, "20", id="blank-falls-through"),
        pytest.param({"course_customfields": {"jp": "-4"}, "course_category": 3}, "20", id="negative-falls-through"),
        pytest.param({"course_customfields": {"other": "30"}}, "2", id="other-field-ignored"),
        pytest.param({"course_customfields": "jp=30"}, "2", id="malformed-facts-ignored"),
    ],
)
def test_program_jp_customfield_precedence(tmp_path: Path, facts: dict, expected: str) -> None:
    program = load_program_jp(_write(tmp_path, CUSTOMFIELD_PROGRAM, "program_jp.toml"))
    assert program.jp_for("lms", facts) == Decimal(expected)


def test_customfield_only_for_sites_that_name_it(tmp_path: Path) -> None:
    program = load_program_jp(_write(tmp_path, CUSTOMFIELD_PROGRAM, "program_jp.toml"))
    assert program.jp_for("other", {"course_customfields": {"jp": "30"}}) == Decimal(0)


@pytest.mark.parametrize("value", ['""', '"  "', "5", "true", '["jp"]'])
def test_bad_customfield_key_raises_rule_error(tmp_path: Path, value: str) -> None:
    path = _write(
        tmp_path, CUSTOMFIELD_PROGRAM.replace('customfield = "jp"', f"customfield = {value}"), "program_jp.toml"
    )
    with pytest.raises(RuleError) as caught:
        load_program_jp(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "[sites.lms]" in message and "`customfield`" in message

"""NIP and NI PPPK: normalising and validating (docs/domain.md §3a)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lms_bridge.nip import EmployeeType, Nip, normalise_nip, parse_nip

TODAY = date(2026, 6, 30)


# --- examples --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value", "kind", "birth", "gender"),
    [
        pytest.param("19880517 201403 2 004", "198805172014032004", EmployeeType.PNS, date(1988, 5, 17), "2", id="pns"),
        pytest.param(
            "19920214 2022 21 1 007", "199202142022211007", EmployeeType.PPPK, date(1992, 2, 14), "1", id="pppk"
        ),
        pytest.param(
            "19660801.198803.1.001",
            "196608011988031001",
            EmployeeType.PNS,
            date(1966, 8, 1),
            "1",
            id="dotted-perka-bkn-example",
        ),
        pytest.param(
            "199202142022241007",
            "199202142022241007",
            EmployeeType.PPPK,
            date(1992, 2, 14),
            "1",
            id="pppk-paruh-waktu-24",
        ),
        pytest.param(
            " 19880517\u00a0201403\u202f2-004\n",
            "198805172014032004",
            EmployeeType.PNS,
            date(1988, 5, 17),
            "2",
            id="nbsp-narrow-nbsp-dash",
        ),
        pytest.param(
            "198805172014122004", "198805172014122004", EmployeeType.PNS, date(1988, 5, 17), "2", id="month-12-is-pns"
        ),
        pytest.param(
            "198805172014132004", "198805172014132004", EmployeeType.PPPK, date(1988, 5, 17), "2", id="code-13-is-pppk"
        ),
    ],
)
def test_valid_examples(raw: str, value: str, kind: EmployeeType, birth: date, gender: str) -> None:
    assert normalise_nip(raw) == value
    assert parse_nip(raw, today=TODAY) == Nip(value=value, employee_type=kind, birth_date=birth, gender=gender)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("19880231 201403 2 004", id="february-31"),
        pytest.param("19881317 201403 2 004", id="month-13-birth"),
        pytest.param("00000000 201403 2 004", id="year-0-birth"),
        pytest.param("19880517 201403 3 004", id="gender-3"),
        pytest.param("19880517 201403 0 004", id="gender-0"),
        pytest.param("19880517 201403 2 000", id="sequence-000"),
        pytest.param("20000101 201312 1 001", id="appointed-at-13"),
        pytest.param("19880517 198701 2 004", id="appointed-before-birth"),
        pytest.param("19880517 202707 2 004", id="appointed-next-year"),
        pytest.param("19880517 202607 2 004", id="appointed-next-month"),
        pytest.param("19920214 2027 21 1 007", id="pppk-next-year"),
        pytest.param("20270101 204101 1 001", id="born-in-the-future"),
        pytest.param("19880517 201403 2 04", id="17-digits"),
        pytest.param("19880517 201403 2 0044", id="19-digits"),
        pytest.param("19880517/201403/2/004", id="slashes"),
        pytest.param("NIP 19880517 201403 2 004", id="with-label"),
        pytest.param(
            "\uff11\uff19\uff18\uff18\uff10\uff15\uff11\uff17\uff12\uff10\uff11\uff14\uff10\uff13\uff12"
            "\uff10\uff10\uff14",
            id="full-width-digits",
        ),
        pytest.param(
            "\u0661\u0669\u0668\u0668\u0660\u0665\u0661\u0667\u0662\u0660\u0661\u0664\u0660\u0663\u0662"
            "\u0660\u0660\u0664",
            id="arabic-indic-digits",
        ),
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
    ],
)
def test_invalid_examples(raw: str | None) -> None:
    assert parse_nip(raw, today=TODAY) is None


def test_normalise_keeps_text_and_rejects_wrong_length() -> None:
    assert normalise_nip("19880517 201403 2 004") == "198805172014032004"
    assert isinstance(normalise_nip("19880517 201403 2 004"), str)
    assert normalise_nip("1988-0517-2014-0320-04") == "198805172014032004"
    assert normalise_nip("19880517 201403 2 04") is None
    assert normalise_nip("19880517 201403 2 00x") is None
    assert normalise_nip(None) is None
    # Normalising does not validate: an impossible date still has 18 digits.
    assert normalise_nip("19880231 201403 9 000") == "198802312014039000"


def test_appointment_boundaries() -> None:
    assert parse_nip("20000101 201401 1 001", today=TODAY) is not None  # birth year + 14
    assert parse_nip("20000101 201301 1 001", today=TODAY) is None
    assert parse_nip("19880517 201403 2 004", today=date(2014, 3, 1)) is not None  # this month
    assert parse_nip("19880517 201403 2 004", today=date(2014, 2, 28)) is None  # next month
    assert parse_nip("19920214 2022 21 1 007", today=date(2022, 1, 1)) is not None
    assert parse_nip("19920214 2022 21 1 007", today=date(2021, 12, 31)) is None


def test_default_today_rejects_the_far_future() -> None:
    assert parse_nip("19880517 201403 2 004") is not None
    assert parse_nip("19880517 209903 2 004") is None


# --- properties ------------------------------------------------------------------------------

SEPARATORS = ["", "", "", " ", "  ", ".", "-", "\u00a0", "\u202f", " . ", "\t"]


@st.composite
def valid_nips(draw: st.DrawFn) -> str:
    birth = draw(st.dates(min_value=date(1950, 1, 1), max_value=date(TODAY.year - 14, 12, 31)))
    year = draw(st.integers(min_value=birth.year + 14, max_value=TODAY.year))
    if draw(st.booleans()):
        code = draw(st.integers(min_value=1, max_value=TODAY.month if year == TODAY.year else 12))  # PNS month
    else:
        code = draw(st.integers(min_value=13, max_value=99))  # PPPK agreement code
    gender = draw(st.sampled_from("12"))
    sequence = draw(st.integers(min_value=1, max_value=999))
    return f"{birth:%Y%m%d}{year:04d}{code:02d}{gender}{sequence:03d}"


@settings(max_examples=300)
@given(data=st.data(), digits=valid_nips())
def test_separators_do_not_change_the_result(data: st.DataObject, digits: str) -> None:
    gaps = data.draw(st.lists(st.sampled_from(SEPARATORS), min_size=19, max_size=19))
    written = "".join(gap + digit for gap, digit in zip(gaps, digits, strict=False)) + gaps[-1]
    parsed = parse_nip(digits, today=TODAY)
    assert parsed is not None and parsed.value == digits
    assert parsed.employee_type == (EmployeeType.PNS if 1 <= int(digits[12:14]) <= 12 else EmployeeType.PPPK)
    assert parsed.gender == digits[14]
    assert normalise_nip(written) == digits
    assert parse_nip(written, today=TODAY) == parsed


@settings(max_examples=300)
@given(
    raw=st.one_of(st.text(), st.text(alphabet="0123456789 .-\u00a0x\uff11"), st.none()),
    today=st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
)
def test_parse_never_raises(raw: str | None, today: date) -> None:
    parsed = parse_nip(raw, today=today)
    if parsed is not None:
        assert normalise_nip(raw) == parsed.value
        assert len(parsed.value) == 18 and parsed.value.isascii() and parsed.value.isdigit()
        assert parsed.gender in ("1", "2") and parsed.birth_date <= today


@given(digits=st.text(alphabet="0123456789", min_size=18, max_size=18))
def test_parse_never_raises_on_any_18_digits(digits: str) -> None:
    parsed = parse_nip(digits, today=TODAY)
    assert parsed is None or parsed.value == digits

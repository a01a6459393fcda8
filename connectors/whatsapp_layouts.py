"""Header layouts of WhatsApp exports that the reader's one header regex does not read directly.

Each layout below is rewritten, header by header, into the layout the reader knows
best, ``[YYYY/MM/DD, HH:MM:SS AM] `` (year first, so the day/month order is the
rewriter's, which knows it from the language). Only the header prefix of a line
changes and a line stays one line, so line numbers, senders, bodies and therefore
message keys are those the original header gives. A rewrite runs only when its
layout occurs in the file's first 64 KB (the layout of an export is set by the
phone's language), so exports in the usual layouts pay one bounded search each.

Layouts (as the phones write them):
    Arabic     ``١٢‏/٣‏/٢٠٢٤، ٩:٠٥ م - `` (Arabic-Indic digits, RLM marks, ``ص``/``م``)
    Vietnamese ``[09:05:00, 12/3/2024] `` and ``09:05, 12/3/2024 - `` (time before date)
    Hungarian, Korean ``[2024. 03. 12. 9:05:00] ``, ``2024. 3. 12. 오후 9:05 - ``
    English    ``12/03/2024, 9:05 in the morning - `` (day periods instead of AM/PM)
    Japanese   ``[R6/03/12 9:05:00] ``, ``[令和6/03/12 9:05:00] `` (era years)
    Chinese, Japanese ``[2024/3/12 下午9:05:00] ``, ``2024/03/12 午後9:05 - `` (day half before the time)
"""

from __future__ import annotations

import re
from collections.abc import Callable

_HEAD = 64 * 1024
_MARKS = "[\u200e\u200f]*"
# Android " - " or iOS "] " after the time; the rewrite always ends in "] ".
_END = r"(?:\x20[-\u2013]\x20|\]\x20)"

_ARABIC_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")


def _canonical(marks: str, year: str, month: str, day: str, time: str, period: str | None) -> str:
    parts = time.split(":")
    if len(parts) == 2:
        parts.append("00")
    hour, minute, second = (int(part) for part in parts)
    suffix = f" {period}" if period else ""
    return f"{marks}[{int(year):04d}/{int(month):02d}/{int(day):02d}, {hour:02d}:{minute:02d}:{second:02d}{suffix}] "


def _full_year(year: str) -> str:
    return str(2000 + int(year)) if len(year) == 2 else year


_ARABIC = re.compile(
    rf"^({_MARKS})\[?{_MARKS}([٠-٩]{{1,2}}){_MARKS}/{_MARKS}([٠-٩]{{1,2}}){_MARKS}/{_MARKS}([٠-٩]{{2,4}}){_MARKS}"
    rf"[،,]?\x20{_MARKS}([٠-٩]{{1,2}}:[٠-٩]{{2}}(?::[٠-٩]{{2}})?){_MARKS}(?:\x20?([صم]))?{_MARKS}{_END}",
    re.MULTILINE,
)


def _arabic(match: re.Match[str]) -> str:
    day, month, year, time = (match[index].translate(_ARABIC_DIGITS) for index in (2, 3, 4, 5))
    period = {"ص": "AM", "م": "PM"}.get(match[6] or "")
    return _canonical(match[1], _full_year(year), month, day, time, period)


_TIME_FIRST = re.compile(
    rf"^({_MARKS})\[?([0-9]{{1,2}}:[0-9]{{2}}(?::[0-9]{{2}})?),\x20([0-9]{{1,2}})/([0-9]{{1,2}})/([0-9]{{2,4}}){_END}",
    re.MULTILINE | re.ASCII,
)


def _time_first(match: re.Match[str]) -> str:
    # Vietnamese writes day/month.
    return _canonical(match[1], _full_year(match[5]), match[4], match[3], match[2], None)


_DOTTED = re.compile(
    rf"^({_MARKS})\[?([0-9]{{4}})\.\x20([0-9]{{1,2}})\.\x20([0-9]{{1,2}})\.,?\x20"
    rf"(?:(오전|오후|de\.|du\.)\x20)?([0-9]{{1,2}}:[0-9]{{2}}(?::[0-9]{{2}})?){_END}",
    re.MULTILINE,
)


def _dotted(match: re.Match[str]) -> str:
    period = {"오전": "AM", "오후": "PM", "de.": "AM", "du.": "PM"}.get(match[5] or "")
    return _canonical(match[1], match[2], match[3], match[4], match[6], period)


_DAY_PERIODS = {"in the morning": "AM", "in the afternoon": "PM", "in the evening": "PM", "at night": "PM"}
_DAY_PERIOD = re.compile(
    rf"^({_MARKS})\[?([0-9]{{1,2}})/([0-9]{{1,2}})/([0-9]{{2,4}}),\x20([0-9]{{1,2}}:[0-9]{{2}}(?::[0-9]{{2}})?)"
    rf"\x20(in\x20the\x20morning|in\x20the\x20afternoon|in\x20the\x20evening|at\x20night){_END}",
    re.MULTILINE | re.ASCII,
)


def _day_period(match: re.Match[str]) -> str:
    # The British English locale that writes day periods is day/month. "12 at night" is midnight.
    hour = int(match[5].split(":")[0])
    period = _DAY_PERIODS[match[6]]
    if match[6] == "at night" and hour == 12:
        period = "AM"
    elif match[6] == "in the morning" and hour == 12:
        period = "PM"
    return _canonical(match[1], _full_year(match[4]), match[3], match[2], match[5], period)


_ERAS = {"R": 2018, "令和": 2018, "H": 1988, "平成": 1988}
_JAPANESE_ERA = re.compile(
    rf"^({_MARKS})\[?(R|H|令和|平成)([0-9]{{1,2}})/([0-9]{{1,2}})/([0-9]{{1,2}}),?\x20"
    rf"([0-9]{{1,2}}:[0-9]{{2}}(?::[0-9]{{2}})?){_END}",
    re.MULTILINE,
)


def _japanese_era(match: re.Match[str]) -> str:
    year = _ERAS[match[2]] + int(match[3])
    return _canonical(match[1], str(year), match[4], match[5], match[6], None)


_CJK_PERIODS = {"上午": "AM", "下午": "PM", "午前": "AM", "午後": "PM", "오전": "AM", "오후": "PM"}
_CJK_PERIOD = re.compile(
    rf"^({_MARKS})\[?([0-9]{{4}})/([0-9]{{1,2}})/([0-9]{{1,2}}),?\x20(上午|下午|午前|午後|오전|오후)\x20?"
    rf"([0-9]{{1,2}}:[0-9]{{2}}(?::[0-9]{{2}})?){_END}",
    re.MULTILINE,
)


def _cjk_period(match: re.Match[str]) -> str:
    return _canonical(match[1], match[2], match[3], match[4], match[6], _CJK_PERIODS[match[5]])


_REWRITES: tuple[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    ("Arabic digits", _ARABIC, _arabic),
    ("time before date", _TIME_FIRST, _time_first),
    ("year. month. day.", _DOTTED, _dotted),
    ("day periods", _DAY_PERIOD, _day_period),
    ("Japanese era", _JAPANESE_ERA, _japanese_era),
    ("Chinese, Japanese or Korean day half before the time", _CJK_PERIOD, _cjk_period),
)


def active(text: str) -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]]:
    """The rewrites a file needs, in order, told from ``text``: its first lines (at least twice :data:`_HEAD`).

    :func:`rewrite` applies the same ones to a whole text; a reader of lines applies them line by line
    (a rewrite changes one header prefix and never joins lines).
    """
    chosen: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = []
    for _, pattern, replace in _REWRITES:
        if pattern.search(text, 0, _HEAD) is not None:
            text = pattern.sub(replace, text)
            chosen.append((pattern, replace))
    return chosen


def rewrite(text: str) -> str:
    """Return ``text`` with the headers of the layouts above in the reader's own layout."""
    for _, pattern, replace in _REWRITES:
        if pattern.search(text, 0, _HEAD) is not None:
            text = pattern.sub(replace, text)
    return text

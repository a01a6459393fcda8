"""The strings WhatsApp itself writes into a chat export, per app language, read from data.

The tables are ``whatsapp_strings.toml`` next to this module (one ``[lang.xx]`` table
per app language; its header comment says what each list means). Keeping them as data
means a new language or wording is one line in that file, and the reader's rule stays
one rule: a ``Sender: body`` line is a member's message unless its body is a known
placeholder (:func:`classify`).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from pathlib import Path
from typing import Literal

from lms_bridge.identifiers import strip_invisible

Placeholder = Literal["media", "deleted", "call"]

_TABLES = Path(__file__).with_name("whatsapp_strings.toml")


def _key(text: str) -> str:
    """How a placeholder is compared: no invisible marks, NFC, casefolded, no outer spaces or final dot."""
    return unicodedata.normalize("NFC", strip_invisible(text)).casefold().strip().rstrip(".").strip()


def _load() -> dict[str, dict[str, list[str]]]:
    with _TABLES.open("rb") as handle:
        data = tomllib.load(handle)
    languages: dict[str, dict[str, list[str]]] = data["lang"]
    return languages


#: ``{language: {list name: strings}}`` as written in the TOML file (tests read it too).
LANGUAGES = _load()


def _words(field: str) -> list[str]:
    # Longest first, so an alternation prefers "file terlampir" to "terlampir".
    found = {_key(word) for table in LANGUAGES.values() for word in table.get(field, []) if _key(word)}
    return sorted(found, key=lambda word: (-len(word), word))


def _alternation(field: str) -> str:
    return "|".join(re.escape(word) for word in _words(field))


# Whole bodies, keyed as _key() keys them.
_EXACT: dict[str, Placeholder] = {}
for _field, _kind in (("media", "media"), ("calls", "call"), ("deleted", "deleted")):
    for _word in _words(_field):
        _EXACT.setdefault(_word, _kind)  # type: ignore[arg-type]
_LONGEST = max(len(word) for word in _EXACT)


def _forms(text: str) -> set[str]:
    """The spellings a placeholder is looked up in without casefolding every message."""
    text = unicodedata.normalize("NFC", strip_invisible(text)).strip()
    cased = {text, text.lower(), text[:1].upper() + text[1:], text[:1].upper() + text[1:].lower()}
    return cased | {form + "." for form in cased}


#: Every listed spelling of a whole-body placeholder, as written and in the usual casings:
#: one dict lookup tells an ordinary message from a placeholder (the casefolded _EXACT
#: lookup is the fallback for a marked body only).
FORMS: dict[str, Placeholder] = {}
for _field, _kind in (("media", "media"), ("calls", "call"), ("deleted", "deleted")):
    for _table in LANGUAGES.values():
        for _word in _table.get(_field, []):
            for _form in _forms(_word):
                FORMS.setdefault(_form, _kind)  # type: ignore[arg-type]
_CALLS = frozenset(_words("calls"))
_LONGEST_CALL = max(len(word) for word in _CALLS)
_CALL_END = re.compile("[,.]")

# iOS with media: "<attached: 00000012-PHOTO-2024-03-12-09-15-02.jpg>", "<Anhang: ...>".
# Android with media: "IMG-20240312-WA0001.jpg (file attached)", "DOC-...pdf (Datei angehängt)".
# Both: "Location: https://maps.google.com/?q=-6.2,106.8", "Standort: https://...".
_SHAPES = re.compile(
    rf"<(?:{_alternation('attachment')})\s?:\s?[^<>]+>"
    rf"|\S.*\s\((?:{_alternation('file_attached')})\)"
    rf"|(?:{_alternation('location')})\s?:\s?https?://\S+",
)
_NOTICES = re.compile("|".join(re.escape(word) for word in _words("notices")))


def classify(first_line: str, *, marked: bool = True) -> Placeholder | None:
    """Which placeholder a message body's first line is, or None for a member's own text.

    Args:
        first_line: the body's first line, already without invisible marks (NFC).
        marked: whether the body started with U+200E. iOS marks its call logs, and only
            a marked call log has a suffix (", Tap to call back"); skipping that test
            for unmarked bodies keeps it off the path of ordinary messages.

    Returns:
        ``"media"`` (participation), ``"deleted"`` or ``"call"`` (not participation), or None.
    """
    found = FORMS.get(first_line)
    if found is not None:
        return found
    if marked and len(first_line) <= _LONGEST + 2:
        found = _EXACT.get(first_line.casefold().strip().rstrip(".").strip())
        if found is not None:
            return found
    # iOS call logs: "Missed voice call, Tap to call back", "Voice call. 12 min".
    if marked:
        end = _CALL_END.search(first_line, 0, _LONGEST_CALL + 2)
        if end is not None and first_line[: end.start()].casefold().strip() in _CALLS:
            return "call"
    if (first_line.startswith("<") or first_line.endswith(")") or "://" in first_line) and _SHAPES.fullmatch(
        first_line.casefold().strip()
    ):
        return "media"
    return None


def is_notice(text: str) -> bool:
    """A marked body is a group notice (encryption banner, security code...) in any listed language."""
    return _NOTICES.search(_key(text)) is not None

"""Normalise personal identifiers before they are pseudonymised.

Every chat or attendance reader turns a raw phone number, Telegram user id,
e-mail or display name into ONE canonical text (``phone:+62...``,
``telegram:user123``, ``email:a@b.org``, ``name:budi santoso``) and hands only
that text to the caller's keyed pseudonymiser (docs/domain.md §3b: store a keyed
HMAC of the normalised value, never the raw value). The roster import must use
these same helpers so that a roster row and a chat author give the same pseudonym.

All functions are pure and never raise on any ``str``: an input that is not
a valid identifier of the asked kind gives ``None``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

IdentifierKind = Literal["phone", "email", "telegram", "name"]

# Indonesia's country code: local numbers ("0812...") and numbers whose leading
# zero a spreadsheet dropped ("812...") are read as Indonesian (docs/domain.md §3b).
_COUNTRY_CODE = "62"

# Separators people and WhatsApp put inside phone numbers ("+62 812-0000-1234",
# "(021) 555.1234"), plus the no-break and thin spaces of docs/domain.md §2a rule 3.
_PHONE_SEPARATORS = re.compile(r"[\s\-().\u00a0\u202f\u2009/]+")
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_TELEGRAM_USER = re.compile(r"(?:user)?([0-9]{1,20})", re.ASCII)
_WHITESPACE = re.compile(r"\s+")
_INVISIBLE = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f]"
)


def strip_invisible(text: str) -> str:
    """Remove invisible format characters.

    This drops the marks WhatsApp wraps around names and numbers (U+200E/U+200F,
    U+202A..U+202E, U+2066..U+2069, docs/domain.md §2a rule 5), a BOM, soft
    hyphens, zero-width spaces and joiners, word joiners and tag characters: the
    format (``Cf``) characters that occur in chat text. The set is explicit rather
    than read from the Unicode database so a newer Python cannot change the keys
    derived from normalised text.

    Args:
        text: any text.

    Returns:
        The text without those characters.
    """
    if text.isascii():
        return text
    return _INVISIBLE.sub("", text)


def normalize_phone(raw: str) -> str | None:
    """Return a phone number in E.164 form (``+62812...``), or None.

    ``0812-0000-1234``, ``62812 0000 1234``, ``+62 812-0000-1234``,
    ``+62 (0)812...`` and ``8120000 1234`` (a leading zero eaten by a
    spreadsheet) all give ``+6281200001234``. Other international numbers keep
    their country code (``+1 555 0100 200`` gives ``+15550100200``).

    Args:
        raw: the number as written, possibly wrapped in invisible marks.

    Returns:
        ``+`` and 8 to 15 digits, or None when ``raw`` is not a phone number.
    """
    text = _PHONE_SEPARATORS.sub("", strip_invisible(raw))
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]  # international call prefix
    elif text.startswith("0"):
        digits = _COUNTRY_CODE + text[1:]
    elif text.startswith(_COUNTRY_CODE):
        digits = text
    elif text.startswith("8"):
        digits = _COUNTRY_CODE + text  # Indonesian mobile without its trunk zero
    else:
        return None
    if not _DIGITS.fullmatch(digits):
        return None
    if digits.startswith(_COUNTRY_CODE + "0"):
        digits = _COUNTRY_CODE + digits[len(_COUNTRY_CODE) + 1 :]  # "+62 (0)812..."
    if not 8 <= len(digits) <= 15:
        return None
    return "+" + digits


def phone_identifier(raw: str) -> str | None:
    """Return ``phone:+62...`` for a phone number, or None when it is not one."""
    number = normalize_phone(raw)
    return None if number is None else "phone:" + number


def email_identifier(raw: str) -> str | None:
    """Return ``email:`` + the lowercased address, or None when ``raw`` is not an e-mail.

    Args:
        raw: an e-mail address, possibly with spaces or invisible marks around it.

    Returns:
        The identifier, or None when there is not exactly one ``@`` with text on
        both sides, or when the address contains spaces.
    """
    text = strip_invisible(raw).strip().lower()
    local, at, domain = text.partition("@")
    if not at or not local or not domain or "@" in domain or _WHITESPACE.search(text):
        return None
    return "email:" + text


def telegram_identifier(user_id: str | int) -> str | None:
    """Return ``telegram:user<digits>`` for a Telegram user id, or None.

    Args:
        user_id: ``"user100000001"`` (the ``from_id`` of a Telegram Desktop export),
            or the bare number as a roster may hold it.

    Returns:
        The identifier, or None for a ``channel...``/``chat...`` id or anything else
        that is not a person's user id.
    """
    if isinstance(user_id, bool):
        return None
    text = str(user_id).strip().lower()
    match = _TELEGRAM_USER.fullmatch(text)
    if match is None:
        return None
    return "telegram:user" + match.group(1)


def name_identifier(raw: str) -> str | None:
    """Return ``name:`` + a canonical display name, or None when nothing visible is left.

    NFKC (so U+00A0/U+202F become spaces and full-width letters plain ones),
    invisible marks removed, casefolded, runs of whitespace collapsed to one
    space. Names are weak identifiers (two people can share one); prefer a
    phone number, e-mail or platform id when the source has one.

    Args:
        raw: a display name as shown by the source.

    Returns:
        The identifier, or None for an empty name.
    """
    text = strip_invisible(unicodedata.normalize("NFKC", raw)).casefold()
    text = " ".join(text.split())
    return "name:" + text if text else None


def classify_identifier(raw: str) -> tuple[IdentifierKind, str] | None:
    """Pick the identifier kind a free-form contact value holds and normalise it.

    An e-mail wins when there is an ``@``; a value made only of digits and phone
    separators is a phone number; anything else is a display name. Telegram ids
    are never guessed here (a bare number could be a phone): call
    :func:`telegram_identifier` for a column known to hold them.

    Args:
        raw: a chat author, an attendance name or a roster cell.

    Returns:
        ``(kind, identifier)``, or None when nothing usable is left.
    """
    text = strip_invisible(raw).strip()
    if "@" in text:
        email = email_identifier(text)
        if email is not None:
            return "email", email
    compact = _PHONE_SEPARATORS.sub("", text)
    if compact and _DIGITS.fullmatch(compact[1:] if compact[0] == "+" else compact):
        phone = phone_identifier(text)
        if phone is not None:
            return "phone", phone
    name = name_identifier(text)
    return None if name is None else ("name", name)

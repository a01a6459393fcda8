"""Linking chat senders to people by display name (``people suggest`` and ``people link-names``).

Most CoP exports come from a phone on which members are saved contacts, so a sender is a display
name ("Pak Budi Santoso, S.Pd"), not a number the roster can match. The chat parsers already turn a
name into a keyed pseudonym of its canonical text (``name:`` + NFKC, casefolded:
:func:`lms_bridge.identifiers.name_identifier`). Two steps link it to a person:

1. ``suggest`` reads an export, keeps each unlinked sender's canonical name in memory only, and
   ranks roster names against it with `rapidfuzz` on a *matching key* (:func:`match_key`) that drops
   Indonesian titles, degrees and honorifics, emoji, diacritics and case. Nothing is stored.
2. The operator confirms pairs in a ``display_name,nip`` CSV; ``link-names`` checks every row and
   stores, per row, only the pseudonym of the canonical name (the one the parser gives that sender)
   linked to the person within that community: an ``identity_links`` row ``source="name"``,
   ``site_id=<community>``. No name is stored. The JP engine resolves evidence through the links
   of *now*, so the sender's past activity follows the link as it does for a late NIP.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import fuzz, process
from sqlalchemy import Engine

from lms_bridge.errors import InputError
from lms_bridge.identifiers import name_identifier, strip_invisible
from lms_bridge.input_files import read_regular
from lms_bridge.nip import parse_nip
from lms_bridge.store.people import (
    NameLinkCounts,
    linked_chat_actors,
    person_ids,
    roster_names,
    store_name_links,
)

Pseudonymizer = Callable[[str], str]

#: Honorifics and titles written before a name (compared without dots, casefolded).
PREFIXES = frozenset(
    {
        "pak", "bu", "bapak", "ibu", "bpk", "ibuk", "bunda", "mas", "mbak", "mba", "kak", "bang", "om",
        "tante", "dik", "adik", "ustadz", "ustaz", "ustadzah", "ust", "kyai", "kh", "ning", "gus",
        "dr", "drs", "dra", "ir", "h", "hj", "prof", "dokter", "ns", "apt", "ners",
    }
)  # fmt: skip
#: Academic degrees written after a name (compared without dots, casefolded).
DEGREES = frozenset(
    {
        "spd", "mpd", "skom", "mkom", "msi", "ssi", "se", "me", "sh", "mh", "st", "mt", "mm", "mkes",
        "skm", "skep", "ssos", "msos", "sag", "mag", "sip", "mip", "map", "msc", "bsc", "ma", "ba",
        "phd", "amd", "amdkep", "amdkeb", "spdi", "mpdi", "shi", "mhi", "sthi", "sfarm", "mfarm",
        "sked", "spsi", "mpsi", "ssn", "msn", "stp", "mp", "sp", "si", "ak", "cpa", "ca", "meng",
        "mba", "mtr", "sstp", "ssttp", "mec", "dev", "ssit", "str", "sst", "spt", "mpa", "mkm",
    }
)  # fmt: skip
#: Candidates below this score (0-100) are not shown.
MIN_SCORE = 60.0
#: Roster candidates shown per display name.
CANDIDATES = 3

_TOKEN_SPLIT = re.compile(r"[\s,;/|()\[\]]+")


def _fold(text: str) -> str:
    """NFKD without combining marks, invisible marks removed, casefolded: ``Dédé`` -> ``dede``."""
    decomposed = unicodedata.normalize("NFKD", strip_invisible(text))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def match_key(name: str) -> str:
    """The text a display name is fuzzy-matched on: the person's own name words, in order.

    ``~ Pak Dr. H. Budi Santoso, S.Pd., M.Pd 🙏`` -> ``budi santoso``. Emoji and punctuation go;
    titles and honorifics (:data:`PREFIXES`) go while they lead the name, degrees (:data:`DEGREES`)
    anywhere after its first word; an initial stays a one-letter word (``b santoso``). Only ever
    used to rank candidates: the stored link uses the parser's own canonical name.
    """
    words: list[str] = []
    for raw in _TOKEN_SPLIT.split(_fold(name)):
        # "S.Pd." -> "spd"; letters and digits only ("~", emoji and quotes go).
        token = "".join(ch for ch in raw if ch.isalnum())
        if not token:
            continue
        if not words and token in PREFIXES:
            continue
        if words and token in DEGREES:
            continue
        words.append(token)
    return " ".join(words)


def _initials_score(query: str, choice: str) -> float:
    """Score a name written with initials ("b santoso") against a full one ("budi santoso")."""
    initials = [word for word in query.split() if len(word) == 1]
    if not initials:
        return 0.0
    full = set(query.split())
    abbreviated = [word[0] if word not in full and word[0] in initials else word for word in choice.split()]
    return fuzz.token_sort_ratio(query, " ".join(abbreviated)) * 0.95  # an initial is weaker evidence


def score(query: str, choice: str, **_: object) -> float:
    """How well two matching keys agree, 0-100: order-insensitive, subsets and initials allowed."""
    if not query or not choice:
        return 0.0
    return max(
        fuzz.token_sort_ratio(query, choice),
        fuzz.token_set_ratio(query, choice) * 0.9,  # "budi" in "budi santoso": likely, not certain
        _initials_score(query, choice),
    )


@dataclass(frozen=True)
class Candidate:
    """A roster person a display name may be: NIP, roster name, score (0-100)."""

    nip: str
    name: str
    score: float


def candidates(name: str, roster: list[tuple[str, str]], *, limit: int = CANDIDATES) -> list[Candidate]:
    """The roster people whose name best matches a display name, best first (ties by NIP).

    Args:
        name: the display name (as seen, or canonical).
        roster: ``(nip, name)`` of the roster.
        limit: at most this many.
    """
    keys = {index: match_key(person_name) for index, (_, person_name) in enumerate(roster)}
    found = process.extract(match_key(name), keys, scorer=score, limit=None, score_cutoff=MIN_SCORE)
    ranked = sorted(found, key=lambda hit: (-hit[1], roster[hit[2]][0]))
    return [Candidate(nip=roster[i][0], name=roster[i][1], score=round(s, 1)) for _, s, i in ranked[:limit]]


@dataclass(frozen=True)
class Suggestion:
    """An unlinked display name of an export, its message count and its best roster candidates."""

    name: str
    messages: int
    candidates: list[Candidate]


@dataclass(frozen=True)
class SuggestReport:
    """What ``people suggest`` found (held in memory only).

    Attributes:
        names: display-name senders in the export.
        linked: of those, already linked to a person (by the roster or by name in this community).
        suggestions: the others, the most active first.
        unlinked_other: senders known by a phone, e-mail or platform id that no roster row lists.
    """

    names: int
    linked: int
    suggestions: list[Suggestion]
    unlinked_other: int


def suggest(engine: Engine, community: str, senders: dict[str, str], messages: dict[str, int]) -> SuggestReport:
    """Rank roster candidates for each unlinked display-name sender of an export.

    Args:
        engine: the state store (read only).
        community: the community the export belongs to.
        senders: pseudonym -> canonical name of every display-name sender (never stored).
        messages: pseudonym -> activities of every sender in the export.
    """
    linked = linked_chat_actors(engine, community)
    roster = roster_names(engine)
    unlinked = [pseudonym for pseudonym in senders if pseudonym not in linked]
    suggestions = [
        Suggestion(name=senders[p], messages=messages.get(p, 0), candidates=candidates(senders[p], roster))
        for p in unlinked
    ]
    suggestions.sort(key=lambda s: (-s.messages, s.name))
    other = sum(1 for pseudonym in messages if pseudonym not in senders and pseudonym not in linked)
    return SuggestReport(
        names=len(senders), linked=len(senders) - len(unlinked), suggestions=suggestions, unlinked_other=other
    )


# --- link-names: the operator's confirmed CSV ---------------------------------------------------

_HEADERS = {
    "display_name": "display_name",
    "nama_tampilan": "display_name",
    "name": "display_name",
    "nama": "display_name",
    "nip": "nip",
}


@dataclass(frozen=True)
class NameLinkReport:
    """What ``people link-names`` did: rows read and the links' counts."""

    path: Path
    rows: int
    counts: NameLinkCounts


#: The largest name-link CSV read (one line per member of a community: a few KB in practice).
MAX_BYTES = 64 * 1024 * 1024


def _read_rows(path: Path) -> list[tuple[int, str, str]]:
    """``(line, display name, nip cell)`` per data row; refuses a file it cannot read whole."""
    data = read_regular(path, str(path), limit=MAX_BYTES, refusal="not a name list")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f'{path} is not UTF-8 text: save it as "CSV UTF-8" and try again') from exc
    header_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, str, str]] = []
    columns: dict[str, int] | None = None
    try:
        while True:
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                break
            if not any(cell.strip() for cell in row):
                continue
            if columns is None:
                named = {_HEADERS.get(_fold(cell).strip().replace(" ", "_")): i for i, cell in enumerate(row)}
                if "display_name" not in named or "nip" not in named:
                    raise InputError(
                        f"{path} line {start} is not the header line display_name,nip "
                        "(one confirmed pair per line below it)"
                    )
                columns = {"display_name": named["display_name"], "nip": named["nip"]}
                width = len(row)
                continue
            if len(row) > width and any(cell.strip() for cell in row[width:]):
                raise InputError(
                    f"{path} line {start} has {len(row)} fields but the header has {width} "
                    "(a name with the delimiter in it must be quoted)"
                )
            cells = [row[i] if i < len(row) else "" for i in (columns["display_name"], columns["nip"])]
            rows.append((start, cells[0], cells[1]))
    except csv.Error as exc:
        raise InputError(f"{path} line {reader.line_num} is not valid CSV: {exc}") from exc
    if columns is None:
        raise InputError(f"{path} is empty: it needs the header line display_name,nip and one pair per line")
    if not rows:
        raise InputError(f"{path} has a header line but no display_name,nip pair below it")
    return rows


def link_names(engine: Engine, community: str, path: Path, pseudonymize: Pseudonymizer) -> NameLinkReport:
    """Check every row of a confirmed ``display_name,nip`` CSV, then link the names within a community.

    Every row is checked before anything is stored: an empty name, a bad or unknown NIP, or a name
    given twice (after normalisation) refuses the whole file in one sentence naming the line.

    Args:
        engine: the state store.
        community: the community the names were seen in.
        path: the CSV.
        pseudonymize: the deployment's keyed pseudonymiser.

    Returns:
        The report.

    Raises:
        InputError: the file is unreadable or a row is wrong (nothing stored).
    """
    checked: list[tuple[int, str, str]] = []  # (line, canonical name identifier, nip)
    seen: dict[str, int] = {}
    for line, raw_name, raw_nip in _read_rows(path):
        # "~ Name" is how WhatsApp shows an unsaved member; its parser links the name without the tilde.
        identifier = name_identifier(strip_invisible(raw_name).strip().removeprefix("~"))
        if identifier is None:
            raise InputError(f"{path} line {line} has no display name")
        if identifier in seen:
            raise InputError(f"{path} line {line} gives the same display name as line {seen[identifier]}")
        parsed = parse_nip(raw_nip)
        if parsed is None:
            if not raw_nip.strip():
                raise InputError(f"{path} line {line} has no NIP")
            digits = sum(ch.isdigit() for ch in raw_nip)
            why = f"it has {digits} digits, expected 18" if digits != 18 else "not a valid PNS or PPPK number"
            raise InputError(f"{path} line {line}: the NIP {raw_nip.strip()!r} is not a NIP ({why})")
        seen[identifier] = line
        checked.append((line, identifier, parsed.value))
    ids = person_ids(engine, [nip for _, _, nip in checked])
    for line, _, nip in checked:
        if nip not in ids:
            raise InputError(
                f"{path} line {line}: no person with NIP {nip} in the state database "
                "(import the roster first: lms-bridge people import)"
            )
    links = [(pseudonymize(identifier), ids[nip]) for _, identifier, nip in checked]
    counts = store_name_links(engine, community, links)
    return NameLinkReport(path=path, rows=len(checked), counts=counts)

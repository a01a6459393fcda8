"""The HR roster: NIP, name, unit, position and the consented chat identities of each member.

``import_roster`` reads a CSV (UTF-8 with or without BOM, ``,`` or ``;`` as the
delimiter, Indonesian or English headers in any case), checks each row and stores
the good ones in one transaction. Phone numbers (normalised to E.164), Telegram
ids and e-mails are turned into keyed pseudonyms at once: no raw value is stored,
logged or put in a report (docs/domain.md §3b). A bad row is reported with its
line number and skipped; a bad identifier in a good row is dropped with a warning.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from lms_bridge.errors import InputError
from lms_bridge.identifiers import email_identifier, phone_identifier, strip_invisible, telegram_identifier
from lms_bridge.identity.resolver import Tombstones
from lms_bridge.input_files import read_regular
from lms_bridge.nip import EmployeeType, normalise_nip, parse_nip
from lms_bridge.store.people import (
    PersonView,
    RosterPerson,
    SiteAccount,
    UnresolvedActor,
    forgotten_digests,
    person_view,
    store_roster,
    unresolved_actors,
)

__all__ = [
    "PersonView",
    "RosterReport",
    "SiteAccount",
    "UnresolvedActor",
    "import_roster",
    "show_person",
    "unresolved",
]

Pseudonymizer = Callable[[str], str]

#: Column header (lowercased, spaces and dashes as ``_``) -> field. Indonesian first, then English.
HEADERS: dict[str, str] = {
    "nip": "nip",
    "ni_pppk": "nip",
    "nama": "name",
    "name": "name",
    "nama_lengkap": "name",
    "full_name": "name",
    "unit_kode": "unit_code",
    "kode_unit": "unit_code",
    "unit_code": "unit_code",
    "unit_nama": "unit_name",
    "nama_unit": "unit_name",
    "unit_kerja": "unit_name",
    "unit_name": "unit_name",
    "jabatan": "position",
    "position": "position",
    "jenis_asn": "employee_type",
    "jenis_pegawai": "employee_type",
    "employee_type": "employee_type",
    "telepon": "phone",
    "no_hp": "phone",
    "nomor_hp": "phone",
    "hp": "phone",
    "whatsapp": "phone",
    "phone": "phone",
    "phone_number": "phone",
    "telegram_id": "telegram_id",
    "telegram": "telegram_id",
    "email": "email",
    "e_mail": "email",
    # SIASN's own person id (pns/data-utama/{nip} data.id): the pnsOrangId of `report siasn`.
    "siasn_id": "siasn_id",
    "pns_orang_id": "siasn_id",
    "pnsorangid": "siasn_id",
    "id_siasn": "siasn_id",
}
_LABELS = {"phone": "phone number", "telegram_id": "Telegram id", "email": "e-mail"}
_IDENTIFIERS: dict[str, Callable[[str], str | None]] = {
    "phone": phone_identifier,
    "telegram_id": telegram_identifier,
    "email": email_identifier,
}
#: Several values in one cell: ``0811... / 0812...``, or ``;`` inside a comma-separated file.
_MULTI_SPLIT = re.compile(r"[/;,]")
_EMAIL_SPLIT = re.compile(r"[/;,\s]")
_HEADER_SPACES = re.compile(r"[\s\-]+")
_WHITESPACE = re.compile(r"\s+")
_EMPLOYEE_TYPES = {"PNS": "PNS", "CPNS": "PNS", "PPPK": "PPPK", "P3K": "PPPK"}
#: Column widths of the persons table (PostgreSQL refuses longer text).
_MAX_LENGTH = {"unit_code": 64, "siasn_id": 64}


@dataclass
class RosterReport:
    """What one roster import did.

    Attributes:
        path: the file read.
        rows: data rows read (blank lines not counted).
        imported: persons new to the roster.
        updated: roster persons whose fields changed.
        unchanged: roster persons already up to date.
        identities: consented identities on the good rows (phones, Telegram ids, e-mails).
        links_added: pseudonym links created.
        links_moved: pseudonym links moved to another NIP.
        links_removed: pseudonym links of imported persons no longer listed.
        skipped: ``(line, reason)`` of each row not imported.
        warnings: ``(line, message)`` of identifiers dropped from imported rows.
        forgotten: rows of people erased by ``lms-bridge forget``, not imported (a count: never their NIPs).
        dry_run: nothing was stored.
    """

    path: Path
    rows: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    identities: int = 0
    links_added: int = 0
    links_moved: int = 0
    links_removed: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    forgotten: int = 0
    dry_run: bool = False

    @property
    def stored(self) -> int:
        """Rows stored (imported, updated or unchanged)."""
        return self.imported + self.updated + self.unchanged


#: The largest roster read unless ``[limits] roster_max_mb`` says otherwise: 100,000 employees take about 20 MB.
MAX_BYTES = 64 * 1024 * 1024


def _read_text(path: Path, max_bytes: int = MAX_BYTES) -> str:
    # A regular file only (a named pipe would block, /dev/zero never ends), and never more than the cap.
    data = read_regular(path, f"roster {path}", limit=max_bytes, refusal="not a roster")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f'roster {path} is not UTF-8 text: save it as "CSV UTF-8" and import it again') from exc


def _delimiter(text: str) -> str:
    """``;`` when the header line has more semicolons than commas (Excel in an Indonesian locale), else ``,``."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    return ";" if header.count(";") > header.count(",") else ","


def _header_field(cell: str) -> str | None:
    key = _HEADER_SPACES.sub("_", strip_invisible(cell).strip().lower())
    return HEADERS.get(key)


def _records(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(first line number, {field: cell})`` per data row; the header must name a ``nip`` column."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        header: list[str] | None = None
        while header is None:
            row = next(reader, None)
            if row is None:
                raise InputError(f"roster {path} is empty: it needs a header line with a nip column")
            if any(cell.strip() for cell in row):
                header = row
        columns: dict[int, str] = {}
        for index, cell in enumerate(header):
            name = _header_field(cell)
            if name is not None and name not in columns.values():
                columns[index] = name
        if "nip" not in columns.values():
            raise InputError(
                f"roster {path} has no nip column in its header line "
                "(expected columns such as nip,nama,unit_kode,jabatan,telepon)"
            )
        while True:
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                return
            if not any(cell.strip() for cell in row):
                continue
            extra = [cell for cell in row[len(header) :] if cell.strip()]
            if extra:
                yield (
                    start,
                    {
                        "__error__": f"has {len(row)} fields but the header has {len(header)} "
                        "(a value with the delimiter in it must be quoted)"
                    },
                )
                continue
            yield start, {name: row[index] if index < len(row) else "" for index, name in columns.items()}
    except csv.Error as exc:
        raise InputError(f"roster {path} line {reader.line_num} is not valid CSV: {exc}") from exc


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = _WHITESPACE.sub(" ", strip_invisible(value)).strip()
    return text or None


def _nip_problem(raw: str | None) -> str:
    digits = normalise_nip(raw)
    if _clean(raw) is None:
        return "no NIP"
    if digits is None:
        count = sum(ch.isdigit() for ch in raw or "")
        return f"the NIP has {count} digits, expected 18"
    return "the NIP is not a valid PNS or PPPK number (birth date, appointment, gender or sequence)"


def _employee_type(value: str | None, from_nip: EmployeeType) -> tuple[str | None, str | None]:
    """Return ``(type, problem)``: the file's value when given (normalised), else the NIP's."""
    text = _clean(value)
    if text is None:
        return from_nip.value, None
    key = text.upper().replace(" ", "")
    if key in _EMPLOYEE_TYPES:
        return _EMPLOYEE_TYPES[key], None
    if key.startswith("PPPK"):
        return "PPPK", None  # "PPPK Paruh Waktu"
    return None, "the employee type is neither PNS nor PPPK"


@dataclass
class _Row:
    line: int
    person: RosterPerson
    identifiers: dict[str, str]  # canonical identifier -> label ("phone number 1")


def _identifiers(record: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    found: dict[str, str] = {}
    problems: list[str] = []
    for name, normalise in _IDENTIFIERS.items():
        cell = _clean(record.get(name))
        if cell is None:
            continue
        parts = [part.strip() for part in (_EMAIL_SPLIT if name == "email" else _MULTI_SPLIT).split(cell)]
        values = [part for part in parts if part]
        for position, value in enumerate(values, start=1):
            label = _LABELS[name] + (f" {position}" if len(values) > 1 else "")
            identifier = normalise(value)
            if identifier is None:
                problems.append(f"{label} is not a valid {_LABELS[name]}: ignored")
            else:
                found.setdefault(identifier, label)
    return found, problems


def _parse_rows(path: Path, text: str, report: RosterReport, today: date | None) -> list[_Row]:
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    for line, record in _records(path, text):
        report.rows += 1
        if "__error__" in record:
            report.skipped.append((line, record["__error__"]))
            continue
        nip = parse_nip(record.get("nip"), today=today)
        if nip is None:
            report.skipped.append((line, _nip_problem(record.get("nip"))))
            continue
        if nip.value in seen:
            report.skipped.append((line, f"the NIP is already on line {seen[nip.value]}"))
            continue
        employee_type, problem = _employee_type(record.get("employee_type"), nip.employee_type)
        fields = {name: _clean(record.get(name)) for name in ("name", "unit_code", "unit_name", "position", "siasn_id")}
        too_long = [name for name, limit in _MAX_LENGTH.items() if len(fields[name] or "") > limit]
        if problem is None and too_long:
            problem = f"the {too_long[0].replace('_', ' ')} is longer than {_MAX_LENGTH[too_long[0]]} characters"
        if problem is not None:
            report.skipped.append((line, problem))
            continue
        seen[nip.value] = line
        identifiers, problems = _identifiers(record)
        report.warnings.extend((line, message) for message in problems)
        person = RosterPerson(
            nip=nip.value,
            employee_type=employee_type,
            name=fields["name"],
            unit_code=fields["unit_code"],
            unit_name=fields["unit_name"],
            position=fields["position"],
            siasn_id=fields["siasn_id"],
        )
        rows.append(_Row(line=line, person=person, identifiers=identifiers))
    return rows


def _drop_shared_identifiers(rows: list[_Row], report: RosterReport) -> None:
    """An identifier listed for two NIPs is linked to neither (it would credit the wrong person)."""
    owners: dict[str, list[_Row]] = {}
    for row in rows:
        for identifier in row.identifiers:
            owners.setdefault(identifier, []).append(row)
    for identifier, holders in owners.items():
        if len(holders) < 2:
            continue
        lines = ", ".join(str(row.line) for row in holders)
        for row in holders:
            label = row.identifiers.pop(identifier)
            report.warnings.append((row.line, f"{label} is also on line(s) {lines} of other NIPs: not linked"))


def import_roster(
    engine: Engine,
    path: Path,
    pseudonymize: Pseudonymizer,
    *,
    today: date | None = None,
    dry_run: bool = False,
    effective: date | None = None,
    max_bytes: int = MAX_BYTES,
) -> RosterReport:
    """Import an HR roster CSV: upsert persons by NIP and link their pseudonymised identities.

    The good rows are stored in one transaction; bad rows are reported and skipped.
    A phone number, Telegram id or e-mail is stored only as
    ``pseudonymize(canonical identifier)``, linked to the row's person (moved there
    when an earlier roster gave it to another NIP). A person's pseudonym links that
    its row no longer lists are removed. A row of a person erased by ``lms-bridge
    forget`` (a tombstoned NIP) is skipped and only counted.

    Args:
        engine: the state store.
        path: the CSV file.
        pseudonymize: the deployment's keyed pseudonymiser.
        today: reference date for NIP validation (default: today).
        dry_run: check and count, store nothing.
        effective: the day the roster's units take effect (default: today); reports
            count a person in the unit they had on the as-of date.
        max_bytes: the largest file read (``[limits] roster_max_mb``); a larger one is refused.

    Returns:
        The report (counts, skipped rows, warnings).

    Raises:
        InputError: when the file is not a regular file, is too large, cannot be read, is not UTF-8,
            is not CSV or has no ``nip`` column.
    """
    report = RosterReport(path=path, dry_run=dry_run)
    rows = _parse_rows(path, _read_text(path, max_bytes), report, today)
    _drop_shared_identifiers(rows, report)
    with Session(engine) as session:
        tombstones = Tombstones(forgotten_digests(session), pseudonymize)
    if tombstones:  # a person erased by lms-bridge forget is never imported again (nor linked)
        kept = [row for row in rows if not tombstones.nip(row.person.nip)]
        report.forgotten = len(rows) - len(kept)
        rows = kept
    people = []
    for row in rows:
        pseudonyms = frozenset(pseudonymize(identifier) for identifier in row.identifiers)
        report.identities += len(pseudonyms)
        people.append(replace(row.person, pseudonyms=pseudonyms))
    report.skipped.sort()
    report.warnings.sort()
    if not people:
        return report
    counts = store_roster(engine, people, dry_run=dry_run, effective=effective)
    report.imported, report.updated, report.unchanged = counts.imported, counts.updated, counts.unchanged
    report.links_added, report.links_moved, report.links_removed = (
        counts.links_added,
        counts.links_moved,
        counts.links_removed,
    )
    return report


def show_person(engine: Engine, nip: str) -> PersonView | None:
    """Return what the store knows about one person: roster fields, links, evidence, JP per year.

    Args:
        engine: the state store.
        nip: the NIP, with or without spaces and dots.

    Returns:
        The person, or None when no person has this NIP.

    Raises:
        InputError: when ``nip`` is not 18 digits.
    """
    digits = normalise_nip(nip)
    if digits is None:
        raise InputError("that is not a NIP: give its 18 digits (spaces and dots allowed)")
    return person_view(engine, digits)


def unresolved(engine: Engine, *, limit: int | None = None) -> list[UnresolvedActor]:
    """Accounts and chat identities with no NIP, the most active first.

    Args:
        engine: the state store.
        limit: at most this many.

    Returns:
        Evidence actors linked to no person (with activity counts and first/last
        activity), then site accounts without a NIP and without activity (count 0).
    """
    return unresolved_actors(engine, limit=limit)

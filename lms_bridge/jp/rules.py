"""JP rules and program JP, read from ``mappings/`` (data, not code; docs/DOMAIN.md §1).

Both files are TOML, read with ``tomllib`` and checked whole at load: a wrong key
gives one :class:`RuleError` naming the file, the table and the key, and nothing
is computed from a half-valid file. See the comments in ``mappings/jp_rules.toml``
for what each key means.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lms_bridge.activity import Kind
from lms_bridge.errors import RuleError

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
DEFAULT_RULES = MAPPINGS / "jp_rules.toml"
DEFAULT_PROGRAM_JP = MAPPINGS / "program_jp.toml"

CREDITS = ("program", "per_item", "minutes", "daily_tiers")
RECORDS = ("activity", "day")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_CODE = re.compile(r"^[A-C][0-9]{1,2}$")


@dataclass(frozen=True)
class Tier:
    """A day reaching ``min_items`` activities (of ``kinds``, when given) is worth ``jp``."""

    jp: Decimal
    min_items: int
    kinds: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rule:
    """One JP rule (see ``mappings/jp_rules.toml``)."""

    id: str
    version: int
    code: str
    title: str
    kinds: frozenset[str]
    credit: str
    record: str
    sources: frozenset[str] = frozenset()
    jp_per_item: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    min_share: Decimal | None = None
    min_minutes: int | None = None
    cap_per_day: Decimal | None = None
    cap_per_month: Decimal | None = None
    cap_per_year: Decimal | None = None
    cap_group: str = ""
    skip_program_courses: bool = False

    def matches(self, source: str, kind: str) -> bool:
        """Whether an activity of this source and kind falls under the rule."""
        return kind in self.kinds and (not self.sources or source in self.sources)

    def caps(self) -> dict[str, Decimal]:
        """The caps that are set, by period (``day``, ``month``, ``year``)."""
        caps = {"day": self.cap_per_day, "month": self.cap_per_month, "year": self.cap_per_year}
        return {period: cap for period, cap in caps.items() if cap is not None}


@dataclass(frozen=True)
class RuleSet:
    """Every rule, in file order, with the file-wide settings."""

    path: Path
    rules: tuple[Rule, ...]
    precision: Decimal
    minutes_per_jp: int
    grace_hours: int

    def rule(self, rule_id: str) -> Rule | None:
        """The rule with this id, or None."""
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    @property
    def kinds(self) -> frozenset[str]:
        """Every activity kind some rule reads."""
        return frozenset(kind for rule in self.rules for kind in rule.kinds)


def _figure(value: Any) -> Decimal | None:
    """A non-negative finite number read from a fact, or None (blank, not a number, negative)."""
    if value is None or isinstance(value, bool) or str(value).strip() == "":
        return None
    try:
        figure = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return figure if figure.is_finite() and figure >= 0 else None


@dataclass(frozen=True)
class SiteProgramJP:
    """How one site's courses carry program JP (first match wins, in this order).

    The shortname table, then a ``program_jp`` fact the source gave (an LMS report
    column), then the course custom field named by ``customfield`` (Moodle), then the
    idnumber pattern, the category table and the default.

    ``default`` None (the key left out) means the program JP of any other course is
    *unknown*: its completion is held as pending, never credited as 0 in silence.
    Only a ``default`` written in the file (e.g. ``"0"``) says other courses carry none.
    """

    shortnames: dict[str, Decimal] = field(default_factory=dict)
    customfield: str | None = None
    idnumber_pattern: re.Pattern[str] | None = None
    categories: dict[str, Decimal] = field(default_factory=dict)
    default: Decimal | None = None

    def jp_for(self, facts: dict[str, Any]) -> Decimal | None:
        """Program JP of the course described by ``facts`` (shortname, idnumber, category); None: unknown."""
        shortname = str(facts.get("course_shortname") or "")
        if shortname in self.shortnames:
            return self.shortnames[shortname]
        given = facts.get("program_jp")
        if given not in (None, ""):
            # The source states the program's JP itself (an LMS completion report).
            try:
                figure = Decimal(str(given))
            except InvalidOperation:
                figure = Decimal(-1)
            if figure.is_finite() and figure >= 0:
                return figure
        if self.customfield is not None:
            fields = facts.get("course_customfields")
            custom = _figure(fields.get(self.customfield) if isinstance(fields, dict) else None)
            if custom is not None:
                return custom  # a blank or non-numeric value falls through to the next way
        if self.idnumber_pattern is not None:
            match = self.idnumber_pattern.search(str(facts.get("course_idnumber") or ""))
            if match and match.group("jp"):
                try:
                    return Decimal(match.group("jp"))
                except InvalidOperation:
                    pass  # the pattern matched something that is not a number: try the next way
        category = str(facts.get("course_category") or "")
        if category in self.categories:
            return self.categories[category]
        return self.default


@dataclass(frozen=True)
class ProgramJP:
    """Program JP tables: one per site, and a default table."""

    path: Path
    default: SiteProgramJP
    sites: dict[str, SiteProgramJP]

    def jp_for(self, site: str, facts: dict[str, Any]) -> Decimal | None:
        """Program JP of a course of ``site``; None when the configuration does not know it."""
        return self.sites.get(site, self.default).jp_for(facts)


#: Facts that say an activity belongs to a course (a module inside it, or the course itself).
COURSE_FACTS = ("course_shortname", "course_idnumber", "course_category", "program_jp", "course_customfields")


def describes_course(facts: dict[str, Any]) -> bool:
    """Whether the facts name a course at all (an activity outside any course is never held)."""
    return any(facts.get(name) not in (None, "", {}) for name in COURSE_FACTS)


def course_label(facts: dict[str, Any]) -> str:
    """How ``rules check`` names a course to configure: its shortname, else idnumber, else category."""
    for name, prefix in (("course_shortname", ""), ("course_idnumber", "idnumber "), ("course_category", "category ")):
        value = facts.get(name)
        if value not in (None, ""):
            return f"{prefix}{value}"
    return "(a course without shortname, idnumber or category)"


# --- reading ---------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RuleError(f"{path}: file not found") from exc
    except OSError as exc:
        raise RuleError(f"{path}: cannot be read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise RuleError(f"{path}: not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{path}: not valid TOML: {exc}") from exc


class _Where:
    """Names a place in a file for error messages: ``file: [table] key``."""

    def __init__(self, path: Path, table: str) -> None:
        self.path, self.table = path, table

    def error(self, key: str, problem: str) -> RuleError:
        return RuleError(f"{self.path}: {self.table} `{key}` {problem}")


def _decimal(where: _Where, key: str, value: Any, *, positive: bool = True) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise where.error(key, 'must be a number (write decimals as strings, e.g. "1.5")')
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise where.error(key, f"must be a number, not {value!r}") from None
    if not number.is_finite() or number < 0 or (positive and number == 0):
        raise where.error(key, f"must be a {'positive' if positive else 'non-negative'} number, not {value!r}")
    return number


def _int(where: _Where, key: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise where.error(key, f"must be an integer >= {minimum}, not {value!r}")
    return value


def _kinds(where: _Where, key: str, value: Any) -> frozenset[str]:
    known = {kind.value for kind in Kind}
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise where.error(key, "must be a non-empty list of activity kinds")
    unknown = sorted(set(value) - known)
    if unknown:
        raise where.error(key, f"names unknown activity kinds {unknown} (known: {', '.join(sorted(known))})")
    return frozenset(value)


_RULE_KEYS = {
    "id",
    "version",
    "code",
    "title",
    "kinds",
    "sources",
    "credit",
    "record",
    "jp_per_item",
    "tiers",
    "min_share",
    "min_minutes",
    "cap_per_day",
    "cap_per_month",
    "cap_per_year",
    "cap_group",
    "skip_program_courses",
}


def _rule(path: Path, index: int, data: Any) -> Rule:
    where = _Where(path, f"[[rules]] #{index + 1}")
    if not isinstance(data, dict):
        raise RuleError(f"{path}: [[rules]] #{index + 1} must be a table")
    rule_id = data.get("id")
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
        raise where.error("id", "must be lower-case letters, digits and dashes (it is part of record ids)")
    where = _Where(path, f"[[rules]] {rule_id!r}")
    unknown = sorted(set(data) - _RULE_KEYS)
    if unknown:
        raise where.error(unknown[0], "is not a rule key")
    version = _int(where, "version", data.get("version"), minimum=1)
    code = data.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        raise where.error("code", "must be a Perlan 10/2018 table code such as B6, C3 or C10")
    title = data.get("title", "")
    if not isinstance(title, str):
        raise where.error("title", "must be a string")
    kinds = _kinds(where, "kinds", data.get("kinds"))
    sources = data.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(item, str) and item for item in sources):
        raise where.error("sources", "must be a list of connector kinds (moodle, whatsapp...)")
    credit = data.get("credit")
    if credit not in CREDITS:
        raise where.error("credit", f"must be one of {', '.join(CREDITS)}")
    record = data.get("record")
    if record not in RECORDS:
        raise where.error("record", f"must be one of {', '.join(RECORDS)}")

    fields: dict[str, Any] = {}
    if credit == "per_item":
        if "jp_per_item" not in data:
            raise where.error("jp_per_item", 'is required when credit = "per_item"')
        fields["jp_per_item"] = _decimal(where, "jp_per_item", data["jp_per_item"])
    if credit == "daily_tiers":
        if record != "day":
            raise where.error("record", 'must be "day" when credit = "daily_tiers"')
        raw_tiers = data.get("tiers")
        if not isinstance(raw_tiers, list) or not raw_tiers:
            raise where.error("tiers", "must be a non-empty list of { jp, min_items [, kinds] }")
        tiers = []
        for number, tier in enumerate(raw_tiers, start=1):
            tier_where = _Where(path, f"[[rules]] {rule_id!r} tiers #{number}")
            if not isinstance(tier, dict) or set(tier) - {"jp", "min_items", "kinds"}:
                raise tier_where.error("tiers", "must be a table with jp, min_items and optional kinds")
            tier_kinds = _kinds(tier_where, "kinds", tier["kinds"]) if "kinds" in tier else frozenset()
            if tier_kinds - kinds:
                raise tier_where.error("kinds", "must be among the rule's own kinds")
            tiers.append(
                Tier(
                    jp=_decimal(tier_where, "jp", tier.get("jp")),
                    min_items=_int(tier_where, "min_items", tier.get("min_items"), minimum=1),
                    kinds=tier_kinds,
                )
            )
        fields["tiers"] = tuple(tiers)
    if credit == "minutes":
        fields["min_share"] = _decimal(where, "min_share", data.get("min_share", 0), positive=False)
        if fields["min_share"] > 1:
            raise where.error("min_share", "must be between 0 and 1")
        fields["min_minutes"] = _int(where, "min_minutes", data.get("min_minutes", 0))
    if credit == "program" and record != "activity":
        raise where.error("record", 'must be "activity" when credit = "program"')
    for cap in ("cap_per_day", "cap_per_month", "cap_per_year"):
        if cap in data:
            fields[cap] = _decimal(where, cap, data[cap])
    cap_group = data.get("cap_group", rule_id)
    if not isinstance(cap_group, str) or not cap_group:
        raise where.error("cap_group", "must be a non-empty string")
    skip = data.get("skip_program_courses", False)
    if not isinstance(skip, bool):
        raise where.error("skip_program_courses", "must be true or false")
    return Rule(
        id=rule_id,
        version=version,
        code=code,
        title=title,
        kinds=kinds,
        credit=credit,
        record=record,
        sources=frozenset(sources),
        cap_group=cap_group,
        skip_program_courses=skip,
        **fields,
    )


def load_rules(path: Path = DEFAULT_RULES) -> RuleSet:
    """Read and check a JP rules file.

    Raises:
        RuleError: naming the file, the table and the key that is wrong.
    """
    data = _read_toml(path)
    if data.get("format") != 1:
        raise RuleError(f"{path}: `format` must be 1 (the rules file format this lms-bridge reads)")
    unknown = sorted(set(data) - {"format", "settings", "rules"})
    if unknown:
        raise RuleError(f"{path}: top-level key `{unknown[0]}` is not known (format, [settings], [[rules]])")
    settings = data.get("settings", {})
    where = _Where(path, "[settings]")
    if not isinstance(settings, dict):
        raise RuleError(f"{path}: [settings] must be a table")
    unknown = sorted(set(settings) - {"precision", "minutes_per_jp", "grace_hours"})
    if unknown:
        raise where.error(unknown[0], "is not a settings key")
    precision = _decimal(where, "precision", settings.get("precision", "0.01"))
    minutes_per_jp = _int(where, "minutes_per_jp", settings.get("minutes_per_jp", 45), minimum=1)
    grace_hours = _int(where, "grace_hours", settings.get("grace_hours", 24))
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleError(f"{path}: [[rules]] must list at least one rule")
    rules = tuple(_rule(path, index, entry) for index, entry in enumerate(raw_rules))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise RuleError(f"{path}: [[rules]] {rule.id!r} `id` is used twice")
        seen.add(rule.id)
    groups: dict[str, Rule] = {}
    for rule in rules:
        first = groups.setdefault(rule.cap_group, rule)
        if first.caps() != rule.caps():
            raise RuleError(
                f"{path}: [[rules]] {rule.id!r} `cap_group` {rule.cap_group!r} must have the same "
                f"caps as rule {first.id!r}"
            )
    return RuleSet(path=path, rules=rules, precision=precision, minutes_per_jp=minutes_per_jp, grace_hours=grace_hours)


def _site_program(path: Path, table: str, data: Any) -> SiteProgramJP:
    where = _Where(path, table)
    if not isinstance(data, dict):
        raise RuleError(f"{path}: {table} must be a table")
    unknown = sorted(set(data) - {"shortnames", "customfield", "idnumber_pattern", "categories", "default"})
    if unknown:
        raise where.error(unknown[0], "is not known (shortnames, customfield, idnumber_pattern, categories, default)")
    tables: dict[str, dict[str, Decimal]] = {}
    for key in ("shortnames", "categories"):
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise where.error(key, "must be a table of name = JP")
        tables[key] = {
            str(name): _decimal(_Where(path, f"{table} {key}"), str(name), jp, positive=False)
            for name, jp in value.items()
        }
    pattern = None
    if "idnumber_pattern" in data:
        raw = data["idnumber_pattern"]
        try:
            pattern = re.compile(raw) if isinstance(raw, str) else None
        except re.error as exc:
            raise where.error("idnumber_pattern", f"is not a valid regular expression ({exc})") from None
        if pattern is None or "jp" not in pattern.groupindex:
            raise where.error("idnumber_pattern", "must be a regular expression with a group named `jp`")
    customfield = None
    if "customfield" in data:
        customfield = data["customfield"]
        if not isinstance(customfield, str) or not customfield.strip():
            raise where.error(
                "customfield", f"must be a course custom field shortname (a non-empty string), not {customfield!r}"
            )
        customfield = customfield.strip()
    default = _decimal(where, "default", data["default"], positive=False) if "default" in data else None
    return SiteProgramJP(
        shortnames=tables["shortnames"],
        customfield=customfield,
        idnumber_pattern=pattern,
        categories=tables["categories"],
        default=default,
    )


def load_program_jp(path: Path = DEFAULT_PROGRAM_JP) -> ProgramJP:
    """Read and check a program JP file.

    Raises:
        RuleError: naming the file, the table and the key that is wrong.
    """
    data = _read_toml(path)
    if data.get("format") != 1:
        raise RuleError(f"{path}: `format` must be 1 (the program JP file format this lms-bridge reads)")
    unknown = sorted(set(data) - {"format", "default", "sites"})
    if unknown:
        raise RuleError(f"{path}: top-level key `{unknown[0]}` is not known (format, [default], [sites.<id>])")
    default = _site_program(path, "[default]", data.get("default", {}))
    sites_data = data.get("sites", {})
    if not isinstance(sites_data, dict):
        raise RuleError(f"{path}: [sites] must hold one table per site id")
    sites = {str(site): _site_program(path, f"[sites.{site}]", table) for site, table in sites_data.items()}
    return ProgramJP(path=path, default=default, sites=sites)

"""JP rules and program JP, read from ``mappings/`` (data, not code; docs/domain.md §1).

Both files are TOML, read with ``tomllib`` and checked whole at load: a wrong key
gives one :class:`RuleError` naming the file, the table and the key, and nothing
is computed from a half-valid file. See the comments in ``mappings/jp_rules.toml``
for what each key means.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
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
    #: True: an activity whose ``success`` fact is false (a failed graded module) is not taken by this rule.
    exclude_failed: bool = False
    #: ``"session"``: when the source does not know the minutes present, credit the session's
    #: scheduled length it states (``session_seconds``); empty: such an attendance is held.
    unknown_minutes: str = ""
    effective_from: date | None = None
    effective_to: date | None = None
    citation: str = ""
    #: Fact name -> accepted values (as text); every listed fact must match.
    match: tuple[tuple[str, frozenset[str]], ...] = ()
    #: Table rows (codes) this rule credits when the activity's ``jp_form`` names one of them.
    forms: frozenset[str] = frozenset()
    jp_factor: Decimal | None = None

    def matches(self, source: str, kind: str) -> bool:
        """Whether an activity of this source and kind falls under the rule."""
        return kind in self.kinds and (not self.sources or source in self.sources)

    def in_force(self, day: date) -> bool:
        """Whether the rule is in force on a local day (``effective_from`` to ``effective_to``, inclusive)."""
        if self.effective_from is not None and day < self.effective_from:
            return False
        return self.effective_to is None or day <= self.effective_to

    def accepts(self, site_id: str, object_key: str, facts: dict[str, Any]) -> bool:
        """Whether the activity's facts pass the rule's ``forms`` and ``match`` filters."""
        if self.forms and str(facts.get("jp_form") or "") not in self.forms:
            return False
        if self.exclude_failed and facts.get("success") is False:
            return False
        for name, values in self.match:
            if name == "site_id":
                value: Any = site_id
            elif name == "object_key":
                value = object_key
            else:
                value = facts.get(name)
            if value is None or str(value) not in values:
                return False
        return True

    def code_for(self, facts: dict[str, Any]) -> str:
        """The table row of a record: the activity's ``jp_form`` when this rule lists it, else ``code``."""
        form = str(facts.get("jp_form") or "")
        return form if form in self.forms else self.code

    def period_text(self) -> str:
        """``2018-01-01 .. 2026-06-30`` (an open end as ``..``)."""
        start = self.effective_from.isoformat() if self.effective_from else "always"
        end = self.effective_to.isoformat() if self.effective_to else ""
        return f"{start} .. {end}".rstrip()

    def caps(self) -> dict[str, Decimal]:
        """The caps that are set, by period (``day``, ``month``, ``year``)."""
        caps = {"day": self.cap_per_day, "month": self.cap_per_month, "year": self.cap_per_year}
        return {period: cap for period, cap in caps.items() if cap is not None}


@dataclass(frozen=True)
class Assignment:
    """Configuration that fills facts the source did not give (``[[assign]]`` in the rules file).

    It says which table row (``jp_form``) and which column (``variant``) an event belongs
    to, by source, site, course category, community or meeting.
    """

    when: tuple[tuple[str, frozenset[str]], ...]
    facts: tuple[tuple[str, str], ...]

    def applies(self, source: str, site_id: str, kind: str, object_key: str, facts: dict[str, Any]) -> bool:
        """Whether every ``when`` condition holds for the activity."""
        known = {"source": source, "site_id": site_id, "kind": kind, "object_key": object_key}
        for name, values in self.when:
            value = known[name] if name in known else facts.get(name)
            if value is None or str(value) not in values:
                return False
        return True


@dataclass(frozen=True)
class Target:
    """A yearly JP target (``[[targets]]``): per employee type, optionally per institution's units."""

    jp: int
    employee_type: str = "*"
    institution: str = ""
    unit_prefixes: tuple[str, ...] = ()
    effective_from: date | None = None
    effective_to: date | None = None
    citation: str = ""

    def applies(self, employee_type: str, unit_code: str, day: date) -> bool:
        """Whether the target is in force on ``day`` for a person of this type and unit."""
        if self.effective_from is not None and day < self.effective_from:
            return False
        if self.effective_to is not None and day > self.effective_to:
            return False
        if self.employee_type not in ("*", employee_type):
            return False
        return not self.unit_prefixes or any(unit_code.startswith(prefix) for prefix in self.unit_prefixes)

    def specificity(self) -> tuple[bool, bool, date]:
        """Which of two applying targets wins: an institution's over all, a type over ``*``, the newer."""
        return (bool(self.unit_prefixes), self.employee_type != "*", self.effective_from or date.min)


def target_for(targets: Sequence[Target], employee_type: str, unit_code: str, day: date, fallback: int) -> int:
    """The JP target in force on ``day`` for a person (``fallback`` when no ``[[targets]]`` entry applies)."""
    applying = [target for target in targets if target.applies(employee_type, unit_code, day)]
    return max(applying, key=Target.specificity).jp if applying else fallback


@dataclass(frozen=True)
class Dedupe:
    """How one event seen through two sources is recognised (``[dedupe]`` and ``[[same_event]]``).

    Two activities of one person, of one kind, from different sources or sites, are the
    same event when their times are at most ``window_minutes`` apart and they share a
    value of one of ``link_facts`` (a meeting link, an event id the sources both give),
    or when ``[[same_event]]`` lists both their activity keys (``source/site/object``).
    """

    window_minutes: int = 60
    link_facts: tuple[str, ...] = ("event_link",)
    same_events: tuple[frozenset[str], ...] = ()


@dataclass(frozen=True)
class RuleSet:
    """Every rule, in file order, with the file-wide settings.

    An activity is credited under the FIRST rule, in file order, that is in force on its
    local day and matches its source, kind, ``forms`` and ``match``: one activity, one rule.
    """

    path: Path
    rules: tuple[Rule, ...]
    precision: Decimal
    minutes_per_jp: int
    grace_hours: int
    assignments: tuple[Assignment, ...] = ()
    targets: tuple[Target, ...] = ()
    dedupe: Dedupe = Dedupe()
    #: Indexes of the rules that match each (source, kind), filled by :meth:`route` as it meets them:
    #: trying every rule's ``matches`` on every activity was most of routing's CPU (BENCHMARKS.md 7.1).
    _by_source_kind: dict[tuple[str, str], tuple[int, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def rule(self, rule_id: str) -> Rule | None:
        """The first rule with this id (any version), or None."""
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def versions(self, rule_id: str) -> list[Rule]:
        """Every version of a rule, in file order."""
        return [rule for rule in self.rules if rule.id == rule_id]

    def assigned_facts(
        self, source: str, site_id: str, kind: str, object_key: str, facts: dict[str, Any]
    ) -> dict[str, Any]:
        """The facts with what ``[[assign]]`` adds (a fact the source gave is kept; first assignment wins)."""
        added: dict[str, Any] = {}
        for assignment in self.assignments:
            if assignment.applies(source, site_id, kind, object_key, facts):
                for name, value in assignment.facts:
                    if facts.get(name) in (None, "") and name not in added:
                        added[name] = value
        return {**facts, **added} if added else facts

    def route(self, source: str, kind: str, day: date, site_id: str, object_key: str, facts: dict[str, Any]) -> int:
        """Index of the rule that credits an activity, or -1 when none does."""
        candidates = self._by_source_kind.get((source, kind))
        if candidates is None:
            candidates = tuple(index for index, rule in enumerate(self.rules) if rule.matches(source, kind))
            self._by_source_kind[(source, kind)] = candidates
        for index in candidates:
            rule = self.rules[index]
            if rule.in_force(day) and rule.accepts(site_id, object_key, facts):
                return index
        return -1

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
    "exclude_failed",
    "unknown_minutes",
    "effective_from",
    "effective_to",
    "citation",
    "match",
    "forms",
    "jp_factor",
}
#: Facts ``[[assign]]`` may set.
ASSIGNABLE = ("jp_form", "variant")
VARIANTS = ("national", "international")


def _date(where: _Where, key: str, value: Any) -> date:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise where.error(key, f"must be a date such as 2026-07-01, not {value!r}")


def _filter(where: _Where, key: str, value: Any) -> tuple[tuple[str, frozenset[str]], ...]:
    """``{ fact = ["a", "b"] }`` (or a single value) -> sorted (fact, values) pairs."""
    if not isinstance(value, dict) or not value:
        raise where.error(key, 'must be a table of fact = ["value", ...], e.g. { course_category = ["3"] }')
    pairs = []
    for name, accepted in sorted(value.items()):
        items = accepted if isinstance(accepted, list) else [accepted]
        if not items or not all(isinstance(item, (str, int)) and not isinstance(item, bool) for item in items):
            raise where.error(key, f"{name!r} must list text or integer values")
        pairs.append((str(name), frozenset(str(item) for item in items)))
    return tuple(pairs)


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
    exclude_failed = data.get("exclude_failed", False)
    if not isinstance(exclude_failed, bool):
        raise where.error("exclude_failed", "must be true or false")
    unknown_minutes = data.get("unknown_minutes", "")
    if unknown_minutes not in ("", "session"):
        raise where.error("unknown_minutes", 'must be "session" (or left out)')
    if unknown_minutes and credit != "minutes":
        raise where.error("unknown_minutes", 'applies only to credit = "minutes"')
    if "effective_from" in data:
        fields["effective_from"] = _date(where, "effective_from", data["effective_from"])
    if "effective_to" in data:
        fields["effective_to"] = _date(where, "effective_to", data["effective_to"])
    if (
        fields.get("effective_from")
        and fields.get("effective_to")
        and fields["effective_to"] < fields["effective_from"]
    ):
        raise where.error("effective_to", "must not be before effective_from")
    citation = data.get("citation", "")
    if not isinstance(citation, str):
        raise where.error("citation", "must be text naming the regulation the rule follows")
    fields["citation"] = citation.strip()
    if "match" in data:
        fields["match"] = _filter(where, "match", data["match"])
    if "forms" in data:
        forms = data["forms"]
        if not isinstance(forms, list) or not forms or not all(isinstance(f, str) and _CODE.match(f) for f in forms):
            raise where.error("forms", "must be a non-empty list of table codes such as B6, B11, C4")
        fields["forms"] = frozenset(forms)
    if "jp_factor" in data:
        fields["jp_factor"] = _decimal(where, "jp_factor", data["jp_factor"])
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
        exclude_failed=exclude_failed,
        unknown_minutes=unknown_minutes,
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
    unknown = sorted(set(data) - {"format", "packs", "settings", "rules", "assign", "targets", "dedupe", "same_event"})
    if unknown:
        raise RuleError(
            f"{path}: top-level key `{unknown[0]}` is not known "
            "(format, packs, [settings], [[rules]], [[assign]], [[targets]], [dedupe], [[same_event]])"
        )
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
    own = tuple(_rule(path, index, entry) for index, entry in enumerate(raw_rules))
    # Pack rules (rows of a conversion table, per regulation) first: they are the more specific.
    rules = (*_pack_rules(path, data.get("packs", [])), *own)
    for index, rule in enumerate(rules):
        for other in rules[:index]:
            if other.id == rule.id:
                # Versions of one rule: one per period, each with its own version number.
                if _overlap(other, rule):
                    raise RuleError(
                        f"{path}: [[rules]] {rule.id!r} `id` is used twice for overlapping periods "
                        f"({other.period_text()} and {rule.period_text()}): give the old one an effective_to"
                    )
                if other.version == rule.version:
                    raise RuleError(f"{path}: [[rules]] {rule.id!r} `version` {rule.version} is used twice")
            # Rules of one cap group share its counters, each with its own ceiling (a national row
            # and its international column: one day's total never passes the cap of the rule that
            # credits). The counters only add up when every rule caps the same periods.
            if other.cap_group == rule.cap_group and _overlap(other, rule) and set(other.caps()) != set(rule.caps()):
                raise RuleError(
                    f"{path}: [[rules]] {rule.id!r} `cap_group` {rule.cap_group!r} must cap the same "
                    f"periods (day, month, year) as rule {other.id!r}"
                )
    assignments = tuple(_assignment(path, index, entry) for index, entry in enumerate(_list(path, data, "assign")))
    targets = tuple(_target(path, index, entry) for index, entry in enumerate(_list(path, data, "targets")))
    dedupe = _dedupe(path, data.get("dedupe", {}), _list(path, data, "same_event"))
    return RuleSet(
        path=path,
        rules=rules,
        precision=precision,
        minutes_per_jp=minutes_per_jp,
        grace_hours=grace_hours,
        assignments=assignments,
        targets=targets,
        dedupe=dedupe,
    )


def _dedupe(path: Path, table: Any, same: list[Any]) -> Dedupe:
    where = _Where(path, "[dedupe]")
    if not isinstance(table, dict) or set(table) - {"window_minutes", "link_facts"}:
        raise RuleError(f"{path}: [dedupe] may hold only window_minutes and link_facts")
    window = _int(where, "window_minutes", table.get("window_minutes", 60))
    facts = table.get("link_facts", ["event_link"])
    if not isinstance(facts, list) or not all(isinstance(item, str) and item for item in facts):
        raise where.error("link_facts", "must be a list of fact names")
    groups = []
    for number, entry in enumerate(same, start=1):
        keys = entry.get("keys") if isinstance(entry, dict) else None
        if set(entry if isinstance(entry, dict) else {"?"}) - {"keys"} or not isinstance(keys, list) or len(keys) < 2:
            raise RuleError(f"{path}: [[same_event]] #{number} `keys` must list two or more source/site/object keys")
        groups.append(frozenset(str(key) for key in keys))
    return Dedupe(window_minutes=window, link_facts=tuple(facts), same_events=tuple(groups))


_TARGET_KEYS = {"jp", "employee_type", "institution", "unit_prefixes", "effective_from", "effective_to", "citation"}


def _target(path: Path, index: int, data: Any) -> Target:
    where = _Where(path, f"[[targets]] #{index + 1}")
    if not isinstance(data, dict):
        raise RuleError(f"{path}: [[targets]] #{index + 1} must be a table")
    unknown = sorted(set(data) - _TARGET_KEYS)
    if unknown:
        raise where.error(unknown[0], f"is not known ({', '.join(sorted(_TARGET_KEYS))})")
    jp = _int(where, "jp", data.get("jp"), minimum=1)
    employee_type = data.get("employee_type", "*")
    if employee_type not in ("*", "PNS", "PPPK"):
        raise where.error("employee_type", 'must be "PNS", "PPPK" or "*"')
    prefixes = data.get("unit_prefixes", [])
    if not isinstance(prefixes, list) or not all(isinstance(item, str) and item for item in prefixes):
        raise where.error("unit_prefixes", "must be a list of unit code prefixes (the institution's units)")
    texts = {key: data.get(key, "") for key in ("institution", "citation")}
    for key, value in texts.items():
        if not isinstance(value, str):
            raise where.error(key, "must be text")
    start = _date(where, "effective_from", data["effective_from"]) if "effective_from" in data else None
    end = _date(where, "effective_to", data["effective_to"]) if "effective_to" in data else None
    if start and end and end < start:
        raise where.error("effective_to", "must not be before effective_from")
    return Target(
        jp=jp,
        employee_type=employee_type,
        institution=texts["institution"],
        unit_prefixes=tuple(prefixes),
        effective_from=start,
        effective_to=end,
        citation=texts["citation"],
    )


_PACK_DEFAULTS = ("effective_from", "effective_to", "citation")


def _pack_rules(path: Path, names: Any) -> list[Rule]:
    """The rules of the packs a rules file lists (``packs = ["jp_table_perlan_10_2018.toml"]``).

    A pack name is read beside the rules file, else among the shipped ``mappings/``; its
    ``[pack]`` table gives each of its rules ``effective_from``, ``effective_to`` and
    ``citation`` unless the rule sets its own.
    """
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise RuleError(f"{path}: `packs` must be a list of rule pack file names")
    found: list[Rule] = []
    for name in names:
        pack_path = path.parent / name
        if not pack_path.exists() and (MAPPINGS / name).exists():
            pack_path = MAPPINGS / name
        data = _read_toml(pack_path)
        if data.get("format") != 1:
            raise RuleError(f"{pack_path}: `format` must be 1 (the rule pack format this lms-bridge reads)")
        unknown = sorted(set(data) - {"format", "pack", "rules"})
        if unknown:
            raise RuleError(f"{pack_path}: top-level key `{unknown[0]}` is not known (format, [pack], [[rules]])")
        header = data.get("pack", {})
        if not isinstance(header, dict) or set(header) - {"name", *_PACK_DEFAULTS}:
            raise RuleError(f"{pack_path}: [pack] may hold only name, effective_from, effective_to and citation")
        defaults = {key: header[key] for key in _PACK_DEFAULTS if key in header}
        entries = data.get("rules")
        if not isinstance(entries, list) or not entries:
            raise RuleError(f"{pack_path}: [[rules]] must list at least one rule")
        for index, entry in enumerate(entries):
            found.append(_rule(pack_path, index, {**defaults, **entry} if isinstance(entry, dict) else entry))
    return found


def _overlap(first: Rule, second: Rule) -> bool:
    """Whether two rules' periods share a day."""
    starts = [day for day in (first.effective_from, second.effective_from) if day is not None]
    ends = [day for day in (first.effective_to, second.effective_to) if day is not None]
    return not starts or not ends or max(starts) <= min(ends)


def _list(path: Path, data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise RuleError(f"{path}: [[{key}]] must be an array of tables")
    return value


def _assignment(path: Path, index: int, data: Any) -> Assignment:
    where = _Where(path, f"[[assign]] #{index + 1}")
    if not isinstance(data, dict):
        raise RuleError(f"{path}: [[assign]] #{index + 1} must be a table")
    unknown = sorted(set(data) - {"when", *ASSIGNABLE})
    if unknown:
        raise where.error(unknown[0], f"is not known (when, {', '.join(ASSIGNABLE)})")
    when = _filter(where, "when", data.get("when"))
    facts: list[tuple[str, str]] = []
    if "jp_form" in data:
        if not isinstance(data["jp_form"], str) or not _CODE.match(data["jp_form"]):
            raise where.error("jp_form", "must be a table code such as B6, B11 or C4")
        facts.append(("jp_form", data["jp_form"]))
    if "variant" in data:
        if data["variant"] not in VARIANTS:
            raise where.error("variant", f"must be one of {', '.join(VARIANTS)}")
        facts.append(("variant", data["variant"]))
    if not facts:
        raise where.error("when", "needs jp_form or variant to assign")
    return Assignment(when=when, facts=tuple(facts))


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

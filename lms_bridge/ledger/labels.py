"""Rule labels as HR reads them, one source for the web page, the PDF, the XLSX and the terminal.

A record's label is its table row (code), the rule's name and the regulation's limits:
``C10 Komunitas belajar (CoP): paling banyak 2 JP per hari``. The names are messages of the
``lms_bridge`` catalog (``lms_bridge/locale``), keyed by the rule ids of mappings/jp_rules.toml
and its packs; a rule id not listed here is named by the ``title`` its rules file gives it,
and a rule no rules file knows any more by its id. The limits come from the rules file.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from lms_bridge import i18n
from lms_bridge.config.settings import Settings
from lms_bridge.jp.engine import SAME_EVENT, Merge
from lms_bridge.jp.rules import Rule, load_rules


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark only, translate later"
    """Mark ``message`` for the catalog (scripts/i18n_catalogs.py extracts it); translated when shown."""
    return message


RULE_NAMES = {
    "training-completed": N_("Completed training or course (program JP)"),
    "elearning": N_("E-learning (completed modules)"),
    "cop": N_("Community of practice (CoP)"),
    "webinar": N_("Webinar or online meeting"),
    "coaching": N_("Coaching or mentoring"),
    "study-assignment": N_("Study assignment or study permit"),
    "classical-training-international": N_("Classical training abroad (+20%)"),
    "classical-training": N_("Classical training, course or technical guidance (bimtek)"),
    "seminar-international": N_("Seminar or conference abroad"),
    "seminar": N_("Seminar, conference or sarasehan"),
    "workshop-international": N_("Workshop abroad"),
    "workshop": N_("Workshop"),
    "sosialisasi-international": N_("Sosialisasi abroad"),
    "sosialisasi": N_("Sosialisasi"),
    "coaching-mentoring-international": N_("Coaching or mentoring abroad"),
    "coaching-mentoring": N_("Coaching or mentoring"),
    "distance-training-international": N_("Distance training abroad (+20%)"),
    "distance-training": N_("Distance training"),
    "secondment-international": N_("Secondment abroad"),
    "secondment": N_("Secondment"),
    "benchmarking-international": N_("Benchmarking abroad"),
    "benchmarking": N_("Benchmarking"),
    "exchange-international": N_("Exchange with a company abroad"),
    "exchange": N_("Exchange with a private company, BUMN or BUMD"),
    "internship-international": N_("Internship abroad"),
    "internship": N_("Internship"),
    "self-study-international": N_("Self-study on a foreign platform"),
    "self-study": N_("Self-study"),
    "elearning-international": N_("E-learning of a foreign provider"),
    "cop-international": N_("International community of practice (CoP)"),
}


def deployment_rules(settings: Settings) -> dict[str, Rule]:
    """Rule id -> the rule of the deployment's rules file (the last entry of an id: the newest version)."""
    rules_file = settings.jp.rules_file
    loaded = load_rules(settings.resolve_path(rules_file)) if rules_file else load_rules()
    return {rule.id: rule for rule in loaded.rules}


def rule_name(rule_id: str, rule: Rule | None, language: str | None) -> str:
    """The rule's name in ``language``; its rules file's title, or its id, when it has no catalog name."""
    name = RULE_NAMES.get(rule_id)
    if name is not None:
        return i18n.translator(language)(name)
    return rule.title if rule is not None and rule.title else rule_id


def rule_label(rule_id: str, code: str, rule: Rule | None, language: str | None) -> str:
    """``C10 Komunitas belajar (CoP): paling banyak 2 JP per hari`` (code, name, the rule's limits)."""
    _ = i18n.translator(language)
    limits = []
    if rule is not None:
        caps: list[tuple[Decimal | None, str]] = [
            (rule.cap_per_day, _("at most {jp} JP per day")),
            (rule.cap_per_month, _("at most {jp} JP per month")),
            (rule.cap_per_year, _("at most {jp} JP per year")),
        ]
        limits = [text.format(jp=i18n.decimal(cap, language)) for cap, text in caps if cap is not None]
    name = rule_name(rule_id, rule, language) if rule_id not in ("", "-") else ""
    prefix = " ".join(part for part in (code if code not in ("", "-") else "", name) if part)
    return prefix + (": " + ", ".join(limits) if limits else "")


def record_rule_label(rule_id: str, code: str, rules: Mapping[str, Rule], language: str | None) -> str:
    """:func:`rule_label` of a record, its rule looked up in ``rules`` (see :func:`deployment_rules`)."""
    return rule_label(rule_id, code, rules.get(rule_id), language)


#: The facts ``[dedupe] link_facts`` usually names, as HR reads them; any other fact by its name.
FACT_NAMES = {
    "event_link": N_("meeting link"),
    "course_idnumber": N_("course ID number"),
}


def merge_reason(merge: Merge, language: str | None) -> str:
    """Why two records are one event (``report duplicates``), in ``language``.

    The JP engine gives a machine code (:data:`lms_bridge.jp.engine.SAME_EVENT` or
    :data:`~lms_bridge.jp.engine.SHARED_FACT`); the words are the catalog's.
    """
    _ = i18n.translator(language)
    if merge.reason == SAME_EVENT:
        return _("listed as one event in the rules file ([[same_event]])")
    fact = FACT_NAMES.get(merge.fact)
    return _("same {fact} within {minutes} minutes").format(
        fact=_(fact) if fact is not None else merge.fact, minutes=merge.window_minutes
    )

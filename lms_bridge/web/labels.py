"""Words HR reads instead of codes: rule names with their regulation row, evidence verbs, statuses.

The names live in the gettext catalogs (msgids in English, translated in
``translations/id``), keyed here by the rule ids of mappings/jp_rules.toml and its packs.
A rule id not listed here is shown with the title its rules file gives it.
"""

from __future__ import annotations

from decimal import Decimal

from flask_babel import gettext, lazy_gettext

from lms_bridge.jp.rules import Rule

RULE_NAMES = {
    "training-completed": lazy_gettext("Completed training or course (program JP)"),
    "elearning": lazy_gettext("E-learning (completed modules)"),
    "cop": lazy_gettext("Community of practice (CoP)"),
    "webinar": lazy_gettext("Webinar or online meeting"),
    "coaching": lazy_gettext("Coaching or mentoring"),
    "study-assignment": lazy_gettext("Study assignment or study permit"),
    "classical-training-international": lazy_gettext("Classical training abroad (+20%)"),
    "classical-training": lazy_gettext("Classical training, course or technical guidance (bimtek)"),
    "seminar-international": lazy_gettext("Seminar or conference abroad"),
    "seminar": lazy_gettext("Seminar, conference or sarasehan"),
    "workshop-international": lazy_gettext("Workshop abroad"),
    "workshop": lazy_gettext("Workshop"),
    "sosialisasi-international": lazy_gettext("Sosialisasi abroad"),
    "sosialisasi": lazy_gettext("Sosialisasi"),
    "coaching-mentoring-international": lazy_gettext("Coaching or mentoring abroad"),
    "coaching-mentoring": lazy_gettext("Coaching or mentoring"),
    "distance-training-international": lazy_gettext("Distance training abroad (+20%)"),
    "distance-training": lazy_gettext("Distance training"),
    "secondment-international": lazy_gettext("Secondment abroad"),
    "secondment": lazy_gettext("Secondment"),
    "benchmarking-international": lazy_gettext("Benchmarking abroad"),
    "benchmarking": lazy_gettext("Benchmarking"),
    "exchange-international": lazy_gettext("Exchange with a company abroad"),
    "exchange": lazy_gettext("Exchange with a private company, BUMN or BUMD"),
    "internship-international": lazy_gettext("Internship abroad"),
    "internship": lazy_gettext("Internship"),
    "self-study-international": lazy_gettext("Self-study on a foreign platform"),
    "self-study": lazy_gettext("Self-study"),
    "elearning-international": lazy_gettext("E-learning of a foreign provider"),
    "cop-international": lazy_gettext("International community of practice (CoP)"),
}

#: The last segment of an xAPI verb IRI -> what the person did.
VERBS = {
    "completed": lazy_gettext("completed"),
    "attended": lazy_gettext("attended"),
    "create": lazy_gettext("started a discussion in"),
    "created": lazy_gettext("started a discussion in"),
    "replied": lazy_gettext("replied in"),
    "posted": lazy_gettext("posted in"),
    "experienced": lazy_gettext("opened"),
    "earned": lazy_gettext("earned"),
}

#: Activity kinds of the local evidence table -> what the person did.
KINDS = {
    "course_completed": lazy_gettext("completed"),
    "module_completed": lazy_gettext("completed"),
    "discussion_created": lazy_gettext("started a discussion in"),
    "post_created": lazy_gettext("replied in"),
    "reply_created": lazy_gettext("replied in"),
    "message_posted": lazy_gettext("posted in"),
    "message_replied": lazy_gettext("replied in"),
    "meeting_attended": lazy_gettext("attended"),
    "coaching_attended": lazy_gettext("attended"),
}


def _number(value: Decimal) -> str:
    from flask_babel import format_decimal

    return format_decimal(value, format="#,##0.##")


def rule_label(rule_id: str, code: str, rule: Rule | None) -> str:
    """``C10 Komunitas belajar (CoP): paling banyak 2 JP per hari`` in the page's language."""
    name = RULE_NAMES.get(rule_id)
    text = str(name) if name is not None else (rule.title if rule is not None else rule_id)
    limits = []
    if rule is not None:
        if rule.cap_per_day is not None:
            limits.append(gettext("at most %(jp)s JP per day", jp=_number(rule.cap_per_day)))
        if rule.cap_per_month is not None:
            limits.append(gettext("at most %(jp)s JP per month", jp=_number(rule.cap_per_month)))
        if rule.cap_per_year is not None:
            limits.append(gettext("at most %(jp)s JP per year", jp=_number(rule.cap_per_year)))
    prefix = f"{code} " if code and code != "-" else ""
    return f"{prefix}{text}" + (": " + ", ".join(limits) if limits else "")


def verb_phrase(verb_iri: str) -> str:
    """What the person did, from an xAPI verb IRI (its last segment when unknown)."""
    word = verb_iri.rstrip("/").rsplit("/", 1)[-1]
    phrase = VERBS.get(word)
    return str(phrase) if phrase is not None else word


def kind_phrase(kind: str) -> str:
    """What the person did, from an activity kind of the evidence table."""
    phrase = KINDS.get(kind)
    return str(phrase) if phrase is not None else kind.replace("_", " ")

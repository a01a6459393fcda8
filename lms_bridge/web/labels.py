"""Words HR reads instead of codes: evidence verbs and activity kinds.

Rule labels ("C10 Komunitas belajar (CoP): paling banyak 2 JP per hari") come from
:mod:`lms_bridge.ledger.labels`, the one place the web page, the PDF and the XLSX share.
"""

from __future__ import annotations

from flask_babel import lazy_gettext

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


def verb_phrase(verb_iri: str) -> str:
    """What the person did, from an xAPI verb IRI (its last segment when unknown)."""
    word = verb_iri.rstrip("/").rsplit("/", 1)[-1]
    phrase = VERBS.get(word)
    return str(phrase) if phrase is not None else word


def kind_phrase(kind: str) -> str:
    """What the person did, from an activity kind of the evidence table."""
    phrase = KINDS.get(kind)
    return str(phrase) if phrase is not None else kind.replace("_", " ")

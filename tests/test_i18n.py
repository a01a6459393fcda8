"""The gettext catalogs of what HR reads: every marked message translated, every ``.mo`` current.

Messages are marked ``_("...")`` in the modules that write reports, exports and their errors
(scripts/i18n_catalogs.py lists them and refreshes the catalogs). A message added without an
Indonesian translation, or a ``.po`` edited without compiling its ``.mo``, fails here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from lms_bridge import i18n
from scripts.i18n_catalogs import LANGUAGES, po_path, template


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_holds_every_marked_message_and_its_mo_is_current(language):
    with po_path(language).open("rb") as handle:
        po = read_po(handle, locale=language)
    with po_path(language).with_suffix(".mo").open("rb") as handle:
        mo = read_mo(handle)
    marked = {message.id for message in template() if message.id}
    assert marked, "no marked message found: the extraction itself is broken"
    in_po = {message.id for message in po if message.id}
    assert marked - in_po == set(), f"run python -m scripts.i18n_catalogs: {sorted(marked - in_po)}"
    # write_mo leaves out untranslated messages (gettext then answers with the msgid).
    assert {m.id: m.string for m in po if m.id and m.string} == {m.id: m.string for m in mo if m.id}, "stale .mo"
    if language == "id":
        untranslated = sorted(m.id for m in po if m.id and not m.string)
        assert untranslated == [], f"messages without an Indonesian translation: {untranslated}"
        for message in po:
            if message.id and "{" in message.id:  # the same placeholders, or .format() breaks
                assert sorted(_fields(message.id)) == sorted(_fields(message.string)), message.id


def _fields(text: str) -> list[str]:
    import string

    return [name for _literal, name, _spec, _conv in string.Formatter().parse(text) if name]


def test_indonesian_is_the_default_and_formats_follow_the_locale():
    assert i18n.translator(None)("JP still needed") == "Kekurangan JP"
    assert i18n.translator("en")("JP still needed") == "JP still needed"
    assert i18n.decimal(Decimal("1234.5"), "id", places=2) == "1.234,50"
    assert i18n.decimal(Decimal("1234.5"), "en") == "1,234.5"
    assert i18n.long_date(date(2026, 12, 7), "id") == "7 Desember 2026"
    moment = datetime(2026, 8, 31, 21, 25, tzinfo=UTC)
    assert i18n.local_time(moment, "Asia/Jakarta", "id") == "1 September 2026 04.25 WIB"
    assert i18n.local_time(moment, "Asia/Makassar", "id").endswith("05.25 WITA")
    assert i18n.local_time(moment, "Asia/Jayapura", "en") == "September 1, 2026 06:25 WIT"


def test_rule_labels_have_one_source_and_new_rules_fall_back_to_their_title():
    from dataclasses import replace

    from lms_bridge.config.settings import Settings
    from lms_bridge.ledger import labels

    rules = labels.deployment_rules(Settings())
    cop = rules["cop"]
    assert labels.rule_label("cop", "C10", cop, "id") == "C10 Komunitas belajar (CoP): paling banyak 2 JP per hari"
    assert labels.rule_label("cop", "C10", cop, "en") == "C10 Community of practice (CoP): at most 2 JP per day"
    # A rule id the catalog does not know is named by its rules file; one no file knows, by its id.
    new = replace(cop, id="mentoring-daerah", title="Mentoring daerah", cap_per_day=Decimal("1.5"))
    assert labels.rule_label(new.id, "C9", new, "id") == "C9 Mentoring daerah: paling banyak 1,5 JP per hari"
    assert labels.record_rule_label("gone", "-", rules, "id") == "gone"
    # Every catalog name has its Indonesian translation (the web page, PDF, XLSX and terminal read them here).
    for name in labels.RULE_NAMES.values():
        assert i18n.translator("id")(name) != name or name in ("Sosialisasi",), name

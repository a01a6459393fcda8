"""Refresh the gettext catalogs of lms_bridge/locale from the code (a maintainer's tool, not packaged).

``python -m scripts.i18n_catalogs`` extracts the marked messages (``_("...")``) of the modules that
write what HR reads, merges them into ``lms_bridge/locale/<lang>/LC_MESSAGES/lms_bridge.po`` (Babel's
own extract/update, keeping existing translations) and compiles the ``.mo`` files next to them.
Translate new messages in the Indonesian ``.po`` then run it again; ``tests/test_i18n.py`` fails
while a message has no Indonesian translation or a ``.mo`` is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "lms_bridge" / "locale"
#: The modules whose messages HR reads (reports, exports, their errors).
SOURCES = (
    "lms_bridge/i18n.py",
    "lms_bridge/ledger/export.py",
    "lms_bridge/ledger/labels.py",
    "lms_bridge/ledger/reports.py",
    "lms_bridge/cli/reports.py",
    "lms_bridge/ledger/cop_view.py",
    "lms_bridge/ledger/cop_files.py",
    "lms_bridge/cli/cop.py",
)
LANGUAGES = ("id", "en")


def template() -> Catalog:
    """Every marked message of :data:`SOURCES`."""
    catalog = Catalog(project="lms-bridge", charset="utf-8")
    for source in SOURCES:
        for lineno, message, comments, _context in extract_from_file("python", ROOT / source):
            catalog.add(message, locations=[(source, lineno)], auto_comments=comments)
    return catalog


def po_path(language: str) -> Path:
    """The catalog of ``language``."""
    return LOCALE / language / "LC_MESSAGES" / "lms_bridge.po"


def main() -> int:
    fresh = template()
    for language in LANGUAGES:
        path = po_path(language)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=language)
        else:
            catalog = Catalog(locale=language, project="lms-bridge", charset="utf-8")
        created = catalog.creation_date
        catalog.update(fresh, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        # Stable headers: a run that changes no message changes no file.
        catalog.creation_date = catalog.revision_date = created
        catalog.fuzzy = False
        with path.open("wb") as handle:
            write_po(handle, catalog, width=100, omit_header=False, sort_output=True, include_lineno=False)
        with path.with_suffix(".mo").open("wb") as handle:
            write_mo(handle, catalog)
        missing = [m.id for m in catalog if m.id and not m.string]
        if language == "id" and missing:
            print(f"{len(missing)} messages lack an Indonesian translation in {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The web page's gettext catalogs: extract the strings, update the catalogs, compile them.

    .venv/bin/python -m scripts.translations update    # after changing a template or a gettext() call
    (translate the new entries of lms_bridge/web/translations/id/LC_MESSAGES/messages.po)
    .venv/bin/python -m scripts.translations compile   # writes the .mo files (committed)
    .venv/bin/python -m scripts.translations check     # exit 1 when an entry is untranslated or a .mo is stale

The English catalog's translations are its msgids (the source strings are English): ``update``
fills them in, so both catalogs are complete and ``check`` treats them alike. Babel's API
(the library Flask-Babel reads the catalogs with) does the work; ``pybabel`` would too.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "lms_bridge" / "web"
TRANSLATIONS = WEB / "translations"
LANGUAGES = ("id", "en")
SOURCE_LANGUAGE = "en"
KEYWORDS = {"_": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2)}
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]


def extract() -> Catalog:
    """Every translatable string of lms_bridge/web (Python and templates)."""
    template = Catalog(project="lms-bridge", fuzzy=False)
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}}
    for filename, lineno, message, comments, context in extract_from_dir(
        WEB, METHODS, keywords=KEYWORDS, options_map=options, strip_comment_tags=True
    ):
        template.add(message, None, [(f"lms_bridge/web/{filename}", lineno)], auto_comments=comments, context=context)
    return template


def po_path(language: str) -> Path:
    return TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"


def read(language: str) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, project="lms-bridge", fuzzy=False)
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


def _write(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=120, omit_header=False, sort_output=True, include_previous=False)
    path.write_bytes(buffer.getvalue())


def update() -> None:
    """Merge the extracted strings into each catalog (new ones untranslated, gone ones dropped)."""
    template = extract()
    for language in LANGUAGES:
        catalog = read(language)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        if language == SOURCE_LANGUAGE:
            for message in catalog:
                if message.id and not message.string:
                    message.string = message.id
        catalog.revision_date = catalog.creation_date  # no date churn in the committed files
        _write(catalog, po_path(language))


def compiled(language: str) -> bytes:
    """The .mo bytes of a catalog as compile writes them."""
    buffer = io.BytesIO()
    write_mo(buffer, read(language), use_fuzzy=False)
    return buffer.getvalue()


def compile_all() -> None:
    for language in LANGUAGES:
        po_path(language).with_suffix(".mo").write_bytes(compiled(language))


def problems() -> Iterator[str]:
    """What is wrong with the catalogs: missing or untranslated strings, fuzzy entries, stale .mo files."""
    wanted = {message.id for message in extract() if message.id}
    for language in LANGUAGES:
        catalog = read(language)
        path = po_path(language)
        have = {message.id: message for message in catalog if message.id}
        for msgid in sorted(wanted - set(have), key=str):
            yield f"{path}: {msgid!r} is missing (run: python -m scripts.translations update)"
        for msgid, message in sorted(have.items(), key=lambda item: str(item[0])):
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if not all(strings):
                yield f"{path}: {msgid!r} has no translation"
            if message.fuzzy:
                yield f"{path}: {msgid!r} is marked fuzzy"
        for error in (e for _message, errors in catalog.check() for e in errors):
            yield f"{path}: {error}"
        mo = path.with_suffix(".mo")
        if not mo.exists():
            yield f"{mo} is missing (run: python -m scripts.translations compile)"
            continue
        with mo.open("rb") as handle:
            stored = {m.id: m.string for m in read_mo(handle) if m.id}
        if stored != {m.id: m.string for m in catalog if m.id and not m.fuzzy}:
            yield f"{mo} does not match {path.name} (run: python -m scripts.translations compile)"


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "update":
        update()
    elif command == "compile":
        compile_all()
    elif command != "check":
        print("usage: python -m scripts.translations update|compile|check", file=sys.stderr)
        return 2
    found = list(problems())
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found and command != "update" else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

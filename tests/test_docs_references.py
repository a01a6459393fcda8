"""Every ``docs/<page>.md`` the repository cites exists, so a reader who follows a reference finds the page."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A cited docs page: ``docs/`` then a path ending in ``.md`` (``docs/xapi.md``, ``docs/sources/moodle.md``).
DOCS_PAGE = re.compile(r"\bdocs/([A-Za-z0-9_./-]+\.md)\b")
CITING_FILES = ("*.py", "*.md", "*.sh", "*.cfg", "*.toml")


def _tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *CITING_FILES], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [ROOT / name for name in listed.split("\0") if name]


def _citations() -> dict[str, list[str]]:
    """Cited page -> the ``file:line`` places citing it."""
    cited: dict[str, list[str]] = {}
    for path in _tracked_files():
        if not path.is_file():  # deleted in the working tree, not yet in git
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for match in DOCS_PAGE.finditer(line):
                cited.setdefault(match.group(1), []).append(f"{path.relative_to(ROOT)}:{number}")
    return cited


def test_the_scan_finds_the_citations() -> None:
    # Without this a broken scan (no files, a wrong pattern) would pass the test below vacuously.
    cited = _citations()
    assert {"xapi.md", "lrs.md", "domain.md", "design.md", "scaling.md", "sources/moodle.md"} <= set(cited)


def test_every_cited_docs_page_exists() -> None:
    missing = {page: places for page, places in _citations().items() if not (ROOT / "docs" / page).is_file()}
    assert not missing, f"cited docs pages that do not exist: {missing}"

"""``lms-bridge --help`` loads no heavy library, and the root help's summaries are the commands' own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent

HEAVY = ("sqlalchemy", "alembic", "pydantic", "requests")

PROBE = """
import sys
sys.argv = ["lms-bridge", "--help"]
from lms_bridge.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print("EXIT", code, file=sys.stderr)
print("LOADED", ",".join(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def test_help_imports_no_database_http_or_validation_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert "EXIT 0" in done.stderr, done.stderr
    assert "LOADED \n" in done.stderr, done.stderr
    assert "Commands:" in done.stdout
    assert "jp " in done.stdout and "Compute JP records" in done.stdout


def test_lazy_summaries_match_the_commands() -> None:
    from lms_bridge.cli.app import LAZY_COMMANDS, cli, load_all_commands

    load_all_commands()
    assert set(cli.commands) == set(LAZY_COMMANDS)
    for name, command in cli.commands.items():
        module, summary = LAZY_COMMANDS[name]
        assert command.callback is not None
        assert command.callback.__module__ == module, name
        assert command.get_short_help_str(1000) == click.Command(name, help=summary).get_short_help_str(1000), name

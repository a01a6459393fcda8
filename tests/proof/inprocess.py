"""The real ``lms-bridge`` entry point run in this process: fast enough to feed it hundreds of bad inputs.

:func:`cli` calls :func:`lms_bridge.cli.main` (the console script's own function: the same error
handling, exit codes and umask as the installed command) with its output captured, and records the
output in :data:`tests.proof.support.CAPTURED` so ``test_zz_secrets`` searches it too.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass

from lms_bridge.cli import main
from tests.proof.support import CAPTURED


@dataclass(frozen=True)
class Outcome:
    """What one command did."""

    code: int
    stdout: str
    stderr: str

    @property
    def one_sentence(self) -> bool:
        """Refused with exactly one ``error:`` line, no traceback and no ``unexpected``."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return (
            self.code != 0
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and "unexpected" not in self.stderr
            and "Traceback" not in self.stderr
        )


def cli(*args: str, env: dict[str, str] | None = None) -> Outcome:
    """Run ``lms-bridge ARGS`` in this process; the caller's umask and environment are restored after."""
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_env = sys.argv, dict(os.environ)
    mask = os.umask(0o022)  # what a careless shell gives: lms-bridge must narrow it itself
    sys.argv = ["lms-bridge", *args]
    os.environ.update(env or {})
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        os.umask(mask)
    CAPTURED.output(f"lms-bridge {' '.join(args)}", out.getvalue() + err.getvalue())
    return Outcome(code, out.getvalue(), err.getvalue())

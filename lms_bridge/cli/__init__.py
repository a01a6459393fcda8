"""The ``lms-bridge`` command line. Commands parse options, call one core function, print.

Data goes to stdout, logs and errors to stderr. An ``LmsBridgeError`` becomes one
sentence and exit code 1 (2 for configuration errors and empty answers); a traceback appears only
with ``--debug``. Nothing here touches SQL, HTTP or TOML directly.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

import click

# Each command module adds its commands to the root group when imported, which the root group
# does when a command runs (``app.LazyGroup``): ``lms-bridge --help`` stays fast.
from lms_bridge.cli.app import _state, cli, stderr
from lms_bridge.errors import ConfigError, EmptyAnswerError, LmsBridgeError
from lms_bridge.redaction import redact

__all__ = ["cli", "main"]


def main() -> None:
    """Console-script entry point: run the CLI and turn errors into one clear sentence."""
    # Everything lms-bridge writes (the state database, reports, exports, receipts) may hold personal
    # data: files are created owner-only (0600) and folders 0700, whatever the caller's umask.
    os.umask(0o077)
    try:
        cli.main(standalone_mode=False, prog_name="lms-bridge")
    except click.exceptions.Abort:
        stderr.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LmsBridgeError as exc:
        if _state["debug"]:
            stderr.print(redact(traceback.format_exc()), markup=False)
        stderr.print(f"error: {redact(str(exc))}", markup=False)
        sys.exit(2 if isinstance(exc, ConfigError | EmptyAnswerError) else 1)
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        _other_error(exc)
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(130)
    sys.exit(0)


def _other_error(exc: Exception) -> NoReturn:
    """Any other error as one sentence (the traceback only with --debug): exit 2 for a setting, else 1."""
    if _state["debug"]:
        stderr.print(redact(traceback.format_exc()), markup=False)
    # pydantic is imported only by the commands that need it (``--help`` stays fast), so look it up.
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        # A setting checked outside load_settings: say where and what, never the value (it may be a secret).
        error = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or exc.title
        stderr.print(f"error: {exc.title} {where}: {error['msg'].removeprefix('Value error, ')}", markup=False)
        sys.exit(2)
    stderr.print(
        f"error: unexpected {exc.__class__.__name__}: {redact(str(exc))} (run with --debug for the traceback)",
        markup=False,
    )
    sys.exit(1)

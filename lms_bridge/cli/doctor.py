"""``lms-bridge doctor``: checks with fixes."""

from __future__ import annotations

import click

from lms_bridge.cli.app import App, cli, stdout
from lms_bridge.errors import LmsBridgeError
from lms_bridge.operator import doctor as doctor_checks


@cli.command()
@click.option(
    "--write-probe",
    is_flag=True,
    help="Also write one sandbox statement into the LRS and read it back (the LRS may be production).",
)
@click.pass_obj
def doctor(app: App, write_probe: bool) -> None:
    """Check config, secrets, database and LRS, with fixes."""
    results = doctor_checks.run_checks(app.settings, base_dir=app._base_dir(), write_probe=write_probe)
    for check in results:
        mark = "ok  " if check.ok else "FAIL"
        stdout.print(f"{mark} {check.name}: {check.detail}" + ("" if check.ok or not check.fix else f" -> {check.fix}"))
    failed = [c for c in results if not c.ok]
    if failed:
        raise LmsBridgeError(f"{len(failed)} of {len(results)} checks failed")

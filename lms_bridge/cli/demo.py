"""``lms-bridge demo``: the main job on the bundled demo data, from any folder, ending on the HR page."""

from __future__ import annotations

from pathlib import Path

import click

from lms_bridge.cli.app import cli, stdout


@cli.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default="lms-bridge-demo",
    show_default=True,
    help="The demo's own folder (config, state database, LRS data); made, and removed at the end unless --keep.",
)
@click.option("--keep", is_flag=True, help="Keep the demo's folder afterwards (to run more commands against it).")
@click.option("--no-web", is_flag=True, help="Stop after the reports instead of serving the HR page.")
@click.option("--port", type=click.IntRange(1, 65535), help="The HR page's port on 127.0.0.1 (default: a free one).")
@click.option(
    "--install-lrs",
    is_flag=True,
    help="First make a venv with Ralph LRS 5.1.0 under ~/.local/share/lms-bridge (its pins clash with ours).",
)
def demo(folder: Path, keep: bool, no_web: bool, port: int | None, install_lrs: bool) -> None:
    """Run the demo: a fake Moodle and a local Ralph LRS, sync, imports, JP, flush, reports, then the HR page.

    Ralph comes from $LMS_BRIDGE_LRS_VENV, else a checkout's .venv-lrs, else the venv --install-lrs makes.
    """
    from lms_bridge.demo import ralph
    from lms_bridge.demo.run import run_demo

    if install_lrs:
        stdout.print("installing Ralph LRS 5.1.0 in its own venv (about a minute)...")
        stdout.print(f"Ralph LRS ready in {ralph.install_lrs()}")
    ralph.lrs_python()  # no Ralph: one sentence saying how, before anything starts
    run_demo(folder, keep=keep, web=not no_web, port=port)

"""``lms-bridge serve-web``: the HR web page."""

from __future__ import annotations

import click

from lms_bridge.cli.app import App, cli, log, stderr
from lms_bridge.errors import LmsBridgeError
from lms_bridge.web import users as users_core


@cli.command("serve-web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8300, show_default=True)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow an address other than loopback: only HTTPS through [web] trusted_proxies is then answered.",
)
@click.pass_obj
def serve_web(app: App, host: str, port: int, allow_remote: bool) -> None:
    """Serve the read-only HR web page (compliance, people, evidence, downloads) with waitress."""
    import ipaddress

    from lms_bridge.web import app as web_app

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise LmsBridgeError(
            f"refusing to listen on {host}: the page shows personal data over plain HTTP, so it "
            "stays on 127.0.0.1 unless you put an HTTPS reverse proxy in front and pass "
            "--allow-remote"
        )
    flask_app = web_app.create_app(app.settings, app.engine, remote=allow_remote)
    if allow_remote:
        log.info(
            "listening on %s: only HTTPS requests through %s are answered",
            host,
            ", ".join(app.settings.web.trusted_proxies),
        )
    if not users_core.list_users(app.engine):
        log.warning("no web users yet: add one with lms-bridge users add NAME")
    stderr.print(f"serving the HR web page on http://{host}:{port}/ (Ctrl-C stops)")
    web_app.serve(flask_app, host, port)

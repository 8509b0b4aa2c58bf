"""``eseal browser install|doctor``: the USB-Key in the browser, set up and diagnosed.

``install`` writes the native messaging host manifest (``cn.eseal.host``) where the chosen
browser looks for it, per user or system-wide, with a launcher for ``eseal-browser-host``,
and says where the unpacked extension is; ``doctor`` lists what is present and what is
missing (browser, snap/flatpak sandbox, manifest, allowed extension, host answering, keys).
"""

from __future__ import annotations

from pathlib import Path

import click

from eseal.cli.common import echo_json
from eseal.errors import ConfigError


@click.group("browser")
def command() -> None:
    """Log in and seal from a web page: the browser extension and its native host."""


@command.command("install")
@click.option("--browser", "browser", type=click.Choice(["chromium", "chrome", "firefox"]),
              default="chromium", show_default=True)
@click.option("--user", "scope", flag_value="user", default=True, help="for this user (default)")
@click.option("--system", "scope", flag_value="system", help="for every user (root)")
@click.option("--dir", "target", type=click.Path(file_okay=False, path_type=Path),
              help="write the manifest into this directory instead "
                   "(e.g. <user-data-dir>/NativeMessagingHosts)")
@click.option("--json", "as_json", is_flag=True)
def install(browser: str, scope: str, target: Path | None, as_json: bool) -> None:
    """Install the native messaging host for a browser."""
    from eseal.holder.browser_install import install as do_install

    done = do_install(browser, scope=scope, target=target)  # type: ignore[arg-type]
    if as_json:
        echo_json(done.to_dict())
        return
    click.echo(f"host manifest {done.manifest}\nhost program  {done.wrapper}\n"
               f"extension     {done.extension} (id {done.extension_id})")
    for note in done.notes:
        click.echo(f"note: {note}")


@command.command("doctor")
@click.option("--browser", "browser", type=click.Choice(["chromium", "chrome", "firefox"]),
              default="chromium", show_default=True)
@click.option("--dir", "target", type=click.Path(file_okay=False, path_type=Path),
              help="look for the manifest in this directory only")
@click.option("--json", "as_json", is_flag=True)
def doctor(browser: str, target: Path | None, as_json: bool) -> None:
    """Say what the browser needs and what is missing; exit 1 if anything is."""
    from eseal.holder.browser_install import diagnose

    checks = diagnose(browser, target=target)  # type: ignore[arg-type]
    if as_json:
        echo_json([{"ok": c.ok, "what": c.what, "what_zh": c.what_zh} for c in checks])
    else:
        for c in checks:
            click.echo(c.line())
    if not all(c.ok for c in checks):
        raise ConfigError("BROWSER_NOT_READY", "the browser bridge is not ready: see the lines "
                          "above", "浏览器组件未就绪：见上方各项")

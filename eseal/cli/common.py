"""Helpers shared by the CLI commands: the home, JSON output, secret input."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from eseal.settings import Settings, load_settings

if TYPE_CHECKING:
    from eseal.ca.authority import Authority

home_option = click.option(
    "--home", type=click.Path(file_okay=False), default=None, envvar="ESEAL_HOME",
    help="eseal home directory (default $ESEAL_HOME or ./var)",
)


def settings_for(home: str | None) -> Settings:
    return load_settings(home)


def cli_actor() -> str:
    """Who acts from the local console: the officer's login name, as the audit log shows it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"officer:{user}@cli"


@contextmanager
def authority(home: str | Settings | None, *, read_only: bool = False) -> Iterator[Authority]:
    """The local authority for one command (a home, or settings already worked out); closing
    it writes an audit checkpoint (except for read-only commands such as an auditor's
    verify)."""
    from eseal.ca.authority import Authority

    auth = Authority.open(home if isinstance(home, Settings) else settings_for(home))
    try:
        yield auth
    finally:
        auth.close(checkpoint=not read_only)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def read_secret(value: str | None, from_stdin: bool, prompt: str) -> str:
    """A PIN from the option, from one line of stdin, or a hidden prompt on a terminal."""
    if value is not None:
        return value
    from eseal.errors import InvalidInput

    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:  # end of input: refusing here spends no try on the token
            raise InvalidInput("PIN_REQUIRED", f"no {prompt} on standard input",
                               f"标准输入中没有 {prompt}", field="pin")
        return line
    if not sys.stdin.isatty():
        raise InvalidInput("PIN_REQUIRED", f"{prompt} required (use --pin or --pin-stdin)",
                           f"需要 {prompt}（使用 --pin 或 --pin-stdin）", field="pin")
    return str(click.prompt(prompt, hide_input=True))

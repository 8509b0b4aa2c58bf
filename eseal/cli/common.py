"""Helpers shared by the CLI commands: the home, JSON output, secret input."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from eseal.settings import Settings, load_settings

home_option = click.option(
    "--home", type=click.Path(file_okay=False), default=None, envvar="ESEAL_HOME",
    help="eseal home directory (default $ESEAL_HOME or ./var)",
)


def settings_for(home: str | None) -> Settings:
    return load_settings(home)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def read_secret(value: str | None, from_stdin: bool, prompt: str) -> str:
    """A PIN from the option, from one line of stdin, or a hidden prompt on a terminal."""
    if value is not None:
        return value
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        from eseal.errors import InvalidInput

        raise InvalidInput("PIN_REQUIRED", f"{prompt} required (use --pin or --pin-stdin)",
                           f"需要 {prompt}（使用 --pin 或 --pin-stdin）", field="pin")
    return str(click.prompt(prompt, hide_input=True))

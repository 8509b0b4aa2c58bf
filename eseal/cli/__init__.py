"""The ``eseal`` command: thin, calling the same services as the API.

Each top-level command lives in its own module ``cmd_<name>.py`` exposing ``command`` (a
click command or group). The group discovers them from file names and imports a module only
when its command runs, so ``eseal cert list`` never pays for importing pyHanko.

Errors: an ``EsealError`` prints one line (code, English, Chinese) to stderr and exits 1;
anything else is a bug and is shown as such with exit 70.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

import click

from eseal.errors import EsealError

_PREFIX = "cmd_"


class LazyGroup(click.Group):
    """A group whose subcommands are the ``cmd_*.py`` modules of this package."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = [m.name[len(_PREFIX):].replace("_", "-")
                 for m in pkgutil.iter_modules(__path__) if m.name.startswith(_PREFIX)]
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = f"{__name__}.{_PREFIX}{cmd_name.replace('-', '_')}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        return module.command  # type: ignore[no-any-return]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eseal")
def main() -> None:
    """eseal — enterprise CA, USB-Key login and PDF electronic seals (电子签章)."""


def run(argv: list[str] | None = None) -> Any:
    """Entry point with eseal's error contract (used by the console script)."""
    try:
        return main.main(args=argv, standalone_mode=False)
    except EsealError as exc:
        click.echo(exc.one_line(), err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        from eseal.store.db import is_unavailable, unavailable

        if not is_unavailable(exc):
            raise
        # the CA's database lost or unreachable: one coded line, as the API's 503
        click.echo(unavailable(exc).one_line(), err=True)
        sys.exit(1)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)


def _console_main() -> None:
    rv = run()
    if isinstance(rv, int):
        sys.exit(rv)

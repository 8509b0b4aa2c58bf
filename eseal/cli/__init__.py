"""The ``eseal`` command: thin, calling the same services as the API.

Each top-level command lives in its own module ``cmd_<name>.py`` exposing ``command`` (a
click command or group). The group discovers them from file names and imports a module only
when its command runs, so ``eseal cert list`` never pays for importing pyHanko.

Errors: an ``EsealError`` prints one line (code, English, Chinese) to stderr and exits 1; so
do click's own refusals (``USAGE_INVALID`` after the usage, exit 2 as click has it) and the
CA's database going away (``DATABASE_UNAVAILABLE``). Anything else is a bug and shows its
traceback. A verdict is not an error: ``eseal verify`` exits 1 or 2 for an invalid or
indeterminate document after printing its report.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any, NoReturn

import click

from eseal.errors import EsealError, InvalidInput, service_failure

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
    """Entry point with eseal's error contract (used by the console script): every failure
    leaves through :func:`fail` as one line ``error CODE: English / 中文``."""
    try:
        return main.main(args=argv, standalone_mode=False)
    except EsealError as exc:
        fail(exc)
    except click.exceptions.Abort:
        fail(EsealError("ABORTED", "aborted", "已中止"))
    except click.UsageError as exc:
        if exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        fail(EsealError("USAGE_INVALID", exc.format_message(),
                        f"命令行用法错误：{exc.format_message()}"), exc.exit_code)
    except click.FileError as exc:
        fail(InvalidInput("FILE_UNREADABLE", exc.format_message(),
                          f"无法读取文件 {exc.ui_filename}", field="file"), exc.exit_code)
    except click.ClickException as exc:
        fail(EsealError("USAGE_INVALID", exc.format_message(),
                        f"命令行用法错误：{exc.format_message()}"), exc.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        down = service_failure(exc)
        if down is None:
            raise  # a bug: the traceback is the report
        fail(down)


def fail(err: EsealError, exit_code: int = 1) -> NoReturn:
    """The one way a command fails: its line on stderr, a non-zero exit."""
    click.echo(err.one_line(), err=True)
    sys.exit(exit_code or 1)


def _console_main() -> None:
    rv = run()
    if isinstance(rv, int):
        sys.exit(rv)

"""``python -m eseal`` is the ``eseal`` command."""

from eseal.cli import _console_main

_console_main()

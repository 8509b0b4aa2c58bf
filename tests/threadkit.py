"""Run a piece of test work in several threads at once and collect what they raised.

Why: a thread's exception is only printed, never raised in the test, so every concurrency
test (issuing from four threads, signing on one USB-Key from eight, TSA serial blocks) needs
the same start / join / catch harness; this is it. The test asserts on the returned list.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def in_threads(work: Callable[[int], object], count: int) -> list[BaseException]:
    """Run ``work(0)`` ... ``work(count - 1)`` each in its own thread, all started before any
    is joined; return the exceptions they raised (empty when all finished)."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors

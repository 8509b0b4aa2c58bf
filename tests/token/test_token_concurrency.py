"""Processes that open the same SoftHSM token at the same instant all find it.

Measured: when processes initialise the module and log in to one token in the same instant
(two service workers, or the CLI beside the service), one may see no token or get
CKR_GENERAL_ERROR from C_Login (uncoordinated, 1 of 12 opens failed in the first try). The
token layer serialises those moments with an inter-process lock; ``_race(...,
coordinated=False)`` shows the failure without it.
"""

from __future__ import annotations

import multiprocessing as mp
import time

from eseal.settings import Settings
from eseal.token import TokenSession
from eseal.token.softhsm import init_token

PIN = "4913-7720"


def _open_at(conf: str, module: str, coordinated: bool, start_at: float,
             out: mp.Queue) -> None:
    from eseal.token import configure, library

    if not coordinated:  # what the token layer did before the inter-process lock
        library._ProcessLock._open = staticmethod(lambda: None)  # type: ignore[method-assign]
    configure(module, conf)
    while time.time() < start_at:
        pass  # spin: both processes must reach C_Initialize in the same instant
    try:
        TokenSession("busy", PIN).open().close()
        out.put("ok")
    except Exception as exc:  # reported to the test
        out.put(repr(exc))


def _race(settings: Settings, coordinated: bool, rounds: int) -> list[str]:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    results: list[str] = []
    for _ in range(rounds):
        start_at = time.time() + 1.5
        procs = [ctx.Process(target=_open_at, args=(str(settings.softhsm_conf_path),
                                                    settings.pkcs11_module, coordinated,
                                                    start_at, out)) for _ in range(3)]
        for p in procs:
            p.start()
        results += [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join()
    return results


def test_processes_opening_a_token_at_the_same_instant_all_find_it(
        settings: Settings) -> None:
    init_token(settings.softhsm_conf_path, "busy", PIN, "so-8812-4401")
    results = _race(settings, coordinated=True, rounds=4)
    assert results == ["ok"] * len(results)

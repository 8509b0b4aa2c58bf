"""Audit appends per second on SQLite and PostgreSQL, one writer and several processes at
once, for each way of serialising the chain's head (``python -m bench.audit_append``).

Each append is one write transaction holding one hash-chained audit event (no checkpoint:
the signer is left out, so the figure is the database's). Variants, measured in one run:

* ``sqlite``: the home's default, ``BEGIN IMMEDIATE`` (the write lock is the whole file);
  ``sqlite-bare`` is the same without the ``serialise`` call the PostgreSQL work added to
  ``append``, to show it costs SQLite nothing.
* ``pg-advisory`` (what eseal does): ``pg_advisory_xact_lock`` when a write transaction
  begins.
* ``pg-head-row``: the other design, a one-row table every append updates first (its row
  lock serialises appenders until commit).
* ``pg-for-update`` (what eseal did before): ``SELECT … ORDER BY id DESC LIMIT 1 FOR
  UPDATE`` on the newest event. Under READ COMMITTED the waiter re-reads the *old* head
  and its insert collides: the failures are counted, not hidden.

PostgreSQL is a throwaway server started for the run (tests/pgkit.py: initdb + pg_ctl as
the ``postgres`` user, fsync off), so absolute figures are an upper bound; the ratio between
variants is the point. Concurrency: ``PROCESSES`` processes append together for
``SECONDS``; every variant runs once per round, ``ROUNDS`` rounds interleaved, median kept.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROCESSES = 4
SECONDS = 1.5
ROUNDS = 3
AIM = "advisory lock: no failures, within 20 % of the head row"


def _worker(url: str, variant: str, seconds: float, out: Any) -> None:
    from sqlalchemy import text

    from eseal.audit import log as audit
    from eseal.store.db import Database

    db = Database(url)
    if variant == "sqlite-bare":
        audit.serialise = lambda conn, key: None  # type: ignore[assignment]
    elif variant == "pg-head-row":
        bump = text("UPDATE bench_audit_head SET n = n + 1 WHERE id = 1")
        audit.serialise = lambda conn, key: conn.execute(bump)  # type: ignore[assignment]
    elif variant == "pg-for-update":
        head = audit._HEAD.with_for_update()
        audit.serialise = lambda conn, key: conn.execute(head)  # type: ignore[assignment]
    log = audit.AuditLog(signer=None, public_key=None, checkpoint_every=10**9, journal=None)
    done = failed = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:
            if variant.startswith("pg-") and variant != "pg-advisory":
                # not a Database.write(): that would take the advisory lock at BEGIN
                with db._sessions() as s, s.begin():
                    log.append(s, actor="bench", action="bench.append", details={"n": done})
            else:
                with db.write() as s:
                    log.append(s, actor="bench", action="bench.append", details={"n": done})
            done += 1
        except Exception:  # the failures of the old design are the measurement
            failed += 1
    db.dispose()
    out.put((done, failed))


def _measure(url: str, variant: str, processes: int, seconds: float) -> tuple[float, int]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(url, variant, seconds, out))
               for _ in range(processes)]
    for w in workers:
        w.start()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join()
    done = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    return done / seconds, failed


def _verify(url: str) -> bool:
    from eseal.audit.log import AuditLog
    from eseal.store.db import Database

    db = Database(url)
    try:
        with db.read() as s:
            report = AuditLog(signer=None, public_key=None, checkpoint_every=10**9,
                              journal=None).verify(s)
        return not [f for f in report.findings if f.problem != "no_checkpoint"]
    finally:
        db.dispose()


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Every variant once per round, rounds interleaved (a noisy neighbour hurts all alike);
    the median round counts."""
    from eseal.store.db import Database, upgrade

    seconds = 1.0 if quick else SECONDS
    rounds = 1 if quick else ROUNDS
    work = Path(tempfile.mkdtemp(prefix="eseal-bench-audit-"))
    plan: list[tuple[str, int, str]] = []
    for variant in ("sqlite-bare", "sqlite"):
        for procs in (1, PROCESSES):
            url = f"sqlite:///{work / f'{variant}-{procs}.db'}"
            upgrade(Database(url))
            plan.append((variant, procs, url))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import pgkit

    server = None
    try:
        server = pgkit.server()
    except (RuntimeError, OSError) as exc:
        skipped = str(exc)[:80]
    try:
        if server is not None:
            for variant in ("pg-advisory", "pg-head-row", "pg-for-update"):
                for procs in (1, PROCESSES):
                    name = f"bench_{variant.replace('-', '_')}_{procs}"
                    url = server.create(name)
                    if variant == "pg-head-row":
                        server.run_in(name, "CREATE TABLE bench_audit_head (id int PRIMARY "
                                            "KEY, n bigint NOT NULL); INSERT INTO "
                                            "bench_audit_head VALUES (1, 0)")
                    plan.append((variant, procs, url))
        samples: dict[tuple[str, int], list[tuple[float, int]]] = {}
        for _ in range(rounds):
            for variant, procs, url in plan:
                samples.setdefault((variant, procs), []).append(
                    _measure(url, variant, procs, seconds))
        rows: list[dict[str, Any]] = []
        figures: dict[tuple[str, int], float] = {}
        for variant, procs, url in plan:
            got = samples[(variant, procs)]
            rate = statistics.median(r for r, _ in got)
            failed = sum(f for _, f in got)
            figures[(variant, procs)] = rate
            rows.append({"name": f"{variant}, {procs} process{'es' if procs > 1 else ''}",
                         "value": rate, "unit": "appends/s",
                         "peer_or_limit": f"{failed} failed; chain "
                                          f"{'intact' if _verify(url) else 'BROKEN'}"})
    finally:
        pgkit.shutdown()
    if server is None:
        rows.append({"name": "postgresql", "value": "skipped", "peer_or_limit": skipped})
    for row in rows:
        name = str(row["name"])
        if "," not in name:
            continue
        variant, procs = name.split(", ")[0], int(name.split(", ")[1].split()[0])
        if variant == "sqlite":
            row["ratio"] = row["value"] / figures[("sqlite-bare", procs)]
            row["peer_or_limit"] += " (ratio: against sqlite-bare)"
        if variant == "pg-advisory":
            row["ratio"] = row["value"] / figures[("pg-head-row", procs)]
            row["peer_or_limit"] += " (ratio: against pg-head-row)"
            row["aim"] = AIM
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for r in run(quick):
        print(r)

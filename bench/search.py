"""The officer console's certificate search over 100,000 certificates, on SQLite and on
PostgreSQL, over HTTP beside ``GET /healthz`` of the same server in the same run
(``python -m bench.search [--quick] [--n N] [--explain]``).

For each engine: a real home (``eseal init``: CA token, keys; PostgreSQL a throwaway server
from tests/pgkit.py, fsync off), an officer USB-Key, ``bench/seed.py`` writing the
certificates (timed), then ``eseal serve`` and a logged-in officer asking
``GET /officer/certificates/search`` for each filter the console offers — first page with
the bounded total, and the second page by its cursor — ``ROUNDS`` times each, interleaved
with ``/healthz``; medians count. The ratio is the query's latency over ``/healthz``'s on
the same connection. A search is an audited read: each answer includes appending an
``officer.read`` event (``/healthz`` appends nothing), so the figure is what an officer
waits for; the same query run in process, without HTTP or the audit append, is shown beside
it. In process it also times an exact ``count(*)`` beside the capped count, which
is why the total stops at "more than 10,000", and with ``--explain`` prints each query's
plan (``EXPLAIN QUERY PLAN`` / ``EXPLAIN ANALYZE``).
Aim: every first page under 250 ms at 100,000 certificates on both engines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

AIM_MS = 250.0
ROUNDS = 15
CASES: dict[str, dict[str, Any]] = {
    "no filter (newest first)": {},
    "credit code exact": {"uscc": "<uscc>"},
    "credit code prefix 9135": {"uscc": "9135"},
    "name contains 𠮷": {"name": "𠮷"},
    "name contains 科技": {"name": "科技"},
    "holder contains 王伟": {"holder": "王伟"},
    "holder with no match": {"holder": "不存在的人"},
    "serial prefix abc": {"serial": "abc"},
    "status hold": {"status": "hold"},
    "status revoked": {"status": "revoked"},
    "status good": {"status": "good"},
    "status expired": {"status": "expired"},
    "profile seal": {"profile": "seal"},
    "expiring within 30 days": {"expiring_within": 30},
    "seal, good, expiring within 90": {"profile": "seal", "status": "good",
                                       "expiring_within": 90},
    "offset 10,000": {"offset": 10_000},
}


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _home(tmp: Path, engine: str, port: int) -> tuple[Path, str, dict[str, str]]:
    """An initialised home with an officer USB-Key; (home, officer PIN, server env)."""
    from eseal.ca.authority import Authority, init_home
    from eseal.ra.staff import provision_staff_token
    from eseal.settings import load_settings

    home = tmp / engine
    env = {"ESEAL_HOME": str(home), "ESEAL_ENV": "test"}
    os.environ.pop("ESEAL_DATABASE_URL", None)
    if engine == "postgresql":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        import pgkit

        url = pgkit.server().create_empty("bench_search")
        os.environ["ESEAL_DATABASE_URL"] = env["ESEAL_DATABASE_URL"] = url
    os.environ.pop("SOFTHSM2_CONF", None)
    settings = load_settings(home, base_url=f"http://127.0.0.1:{port}")
    init_home(settings)
    with Authority.open(settings) as auth:
        staff = provision_staff_token(auth, label="bench-officer", name="基准主任",
                                      role="officer", actor="bench")
    return home, staff.pin, env


def _serve(home: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    full = dict(os.environ, **env)
    full.pop("SOFTHSM2_CONF", None)
    full.pop("ESEAL_NOW", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "eseal", "serve", "--home", str(home), "--port", str(port)],
        env=full, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("eseal serve exited early")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("eseal serve did not come up")


def _timed(client: httpx.Client, path: str, params: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = client.get(path, params=params)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"{path} {params}: {answer.status_code} {answer.text[:200]}")
    return elapsed, answer.json()


def _explain(settings_home: Path, params: dict[str, Any]) -> list[str]:
    from sqlalchemy import event

    from eseal import clock
    from eseal.ra import certificate_search as cs
    from eseal.settings import load_settings
    from eseal.store import open_database

    db = open_database(load_settings(settings_home).database)
    pg = db.engine.dialect.name == "postgresql"
    on: list[int] = []
    lines: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute", retval=True)
    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> tuple[str, Any]:
        if on:
            statement = ("EXPLAIN ANALYZE " if pg else "EXPLAIN QUERY PLAN ") + statement
        return statement, parameters

    q = cs.search_query(**params)
    with db.read() as s:
        narrowed = cs.narrow(s.connection(), q, db.engine.dialect.name)
        on.append(1)
        # no compiled cache: the EXPLAIN's rows must not be read with the query's row shape
        conn = s.connection().execution_options(compiled_cache=None)
        for st in (cs.page_statement(q, db.engine.dialect.name, clock.now(), narrowed),
                   cs.count_statement(q, db.engine.dialect.name, clock.now(), narrowed)):
            lines += [str(r[0] if pg else r[-1]) for r in conn.execute(st).all()]
            lines.append("--")
    event.remove(db.engine, "before_cursor_execute", explain)  # the engine is shared
    return lines


def _in_process(home: Path, cases: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each first page (with its total) by ``run_search`` in this process, no HTTP and no
    audited read (ms, median of five)."""
    from eseal.ra import certificate_search as cs
    from eseal.settings import load_settings
    from eseal.store import open_database

    db = open_database(load_settings(home).database)
    out = {}
    for name, params in cases.items():
        q = cs.search_query(**params)
        times = []
        for _ in range(6):
            started = time.perf_counter()
            with db.read() as s:
                cs.run_search(s, q)
            times.append(time.perf_counter() - started)
        out[name] = statistics.median(times[1:]) * 1000
    db.dispose()
    return out


def _exact_counts(home: Path) -> dict[str, float]:
    """An exact count(*) of every certificate and of the good ones, in process (ms)."""
    from eseal.settings import load_settings
    from eseal.store import open_database

    db = open_database(load_settings(home).database)
    out = {}
    for name, sql in (("all", "SELECT count(*) FROM certificates"),
                      ("good", "SELECT count(*) FROM certificates WHERE status = 'good'")):
        times = []
        for _ in range(5):
            with db.engine.connect() as conn:
                started = time.perf_counter()
                conn.exec_driver_sql(sql).scalar()
                times.append(time.perf_counter() - started)
        out[name] = statistics.median(times) * 1000
    db.dispose()
    return out


def measure(engine: str, n: int, rounds: int, explain: bool) -> list[dict[str, Any]]:
    from bench.seed import seed_certificates
    from eseal.holder.client import EsealClient
    from eseal.store import close_all

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="eseal-bench-search-") as tmp:
        port = _port()
        home, pin, env = _home(Path(tmp), engine, port)
        seeded = seed_certificates(home, n)
        close_all()
        rows.append({"name": f"{engine}: seed {n:,} certificates (bulk insert, "
                             f"{seeded['pool_signed']:,} signed by the issuing key)",
                     "value": seeded["seconds"], "unit": "s", "peer_or_limit": "limit 60 s",
                     "ratio": seeded["seconds"] / 60.0, "aim": "< 60 s"})
        exact = _exact_counts(home)
        sample_uscc = _a_uscc(home)
        proc = _serve(home, port, env)
        try:
            url = f"http://127.0.0.1:{port}"
            officer = EsealClient(url, origin=url)
            os.environ["SOFTHSM2_CONF"] = str(home / "softhsm2.conf")
            officer.login_with_token("bench-officer", pin)
            headers = {"Authorization": f"Bearer {officer.session}"}
            with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
                cases = {k: {p: (sample_uscc if v == "<uscc>" else v) for p, v in c.items()}
                         for k, c in CASES.items()}
                for params in cases.values():  # warm-up: caches, plans
                    _timed(client, "/officer/certificates/search", params)
                healthz: list[float] = []
                first: dict[str, list[float]] = {k: [] for k in cases}
                second: dict[str, list[float]] = {k: [] for k in cases}
                totals: dict[str, str] = {}
                for _ in range(rounds):
                    for name, params in cases.items():
                        healthz.append(_timed(client, "/healthz", {})[0])
                        took, page = _timed(client, "/officer/certificates/search", params)
                        first[name].append(took)
                        totals[name] = page["total_text"]
                        if page["next_cursor"]:
                            after = {k: v for k, v in params.items() if k != "offset"}
                            took, _ = _timed(client, "/officer/certificates/search",
                                             {**after, "cursor": page["next_cursor"]})
                            second[name].append(took)
            local = _in_process(home, cases)
            base = statistics.median(healthz) * 1000
            rows.append({"name": f"{engine}: GET /healthz", "value": base, "unit": "ms",
                         "peer_or_limit": "the peer of every row below", "ratio": 1.0})
            for name in cases:
                ms = statistics.median(first[name]) * 1000
                nxt = (f"; next page {statistics.median(second[name]) * 1000:.1f} ms"
                       if second[name] else "")
                rows.append({"name": f"{engine}: {name} (total {totals[name]})",
                             "value": ms, "unit": "ms",
                             "peer_or_limit": f"/healthz {base:.1f} ms{nxt}; in process "
                                              f"{local[name]:.1f} ms",
                             "ratio": ms / base, "aim": f"< {AIM_MS:.0f} ms"})
            rows.append({"name": f"{engine}: exact count(*) of all {n:,} (in process)",
                         "value": exact["all"], "unit": "ms",
                         "peer_or_limit": f"good only {exact['good']:.1f} ms; the search "
                                          "counts at most 10,001", "ratio": None})
            if explain:
                for name, params in cases.items():
                    print(f"\n[{engine}] {name}", file=sys.stderr)
                    try:
                        for line in _explain(home, params):
                            print("   ", line, file=sys.stderr)
                    except Exception as exc:  # a plan is information, not the measurement
                        print(f"    (no plan: {exc!r})", file=sys.stderr)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            close_all()
            if engine == "postgresql":
                import pgkit

                pgkit.shutdown()
            os.environ.pop("ESEAL_DATABASE_URL", None)
    return rows


def _a_uscc(home: Path) -> str:
    from eseal.settings import load_settings
    from eseal.store import open_database

    db = open_database(load_settings(home).database)
    with db.engine.connect() as conn:
        code = conn.exec_driver_sql(
            "SELECT e.uscc FROM enterprises e JOIN certificates c ON c.enterprise_id = e.id "
            "ORDER BY e.id LIMIT 1").scalar()
    db.dispose()
    return str(code)


def run(quick: bool = False, *, n: int | None = None,
        explain: bool = False) -> list[dict[str, Any]]:
    os.environ.setdefault("ESEAL_ENV", "test")
    count = n or (20_000 if quick else 100_000)
    rounds = 3 if quick else ROUNDS
    rows = measure("sqlite", count, rounds, explain)
    try:
        rows += measure("postgresql", count, rounds, explain)
    except (RuntimeError, OSError, ImportError) as exc:
        rows.append({"name": "postgresql", "value": "skipped", "peer_or_limit": str(exc)[:80]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    rows = run(args.quick, n=args.n, explain=args.explain)
    print("| figure | value | peer or limit (same run) | ratio | aim |")
    print("|---|---|---|---|---|")
    for r in rows:
        value = r["value"]
        shown = f"{value:,.1f} {r.get('unit', '')}" if isinstance(value, float) else str(value)
        ratio = f"{r['ratio']:.1f}" if isinstance(r.get("ratio"), int | float) else "—"
        print(f"| {r['name']} | {shown} | {r.get('peer_or_limit', '—')} | {ratio} | "
              f"{r.get('aim', '—')} |")


if __name__ == "__main__":
    main()

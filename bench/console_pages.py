"""The console's certificate search *page* over 100,000 certificates (SQLite), beside the JSON
search it is built on and ``GET /healthz`` of the same server in the same run
(``python -m bench.console_pages [--n N] [--rounds R]``).

The page is rendered on the server (Jinja2) from the query string, so what an officer waits
for before the first paint is one HTTP answer: the page for each filter is timed (whole
answer, HTML included), the JSON search with the same filter beside it, and ``/healthz``
interleaved with both; medians count. A home from ``bench/search.py`` (``eseal init``, an
officer USB-Key), ``bench/seed.py`` certificates, ``eseal serve``, the officer's session
as the page's cookie. Both the page and the JSON search append an audited ``officer.read``
event; ``/healthz`` appends nothing. Aim: every page under 250 ms, within 1.5× the JSON
search it renders.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

AIM_MS = 250.0
CASES: dict[str, dict[str, Any]] = {
    "no filter (newest first)": {},
    "credit code prefix 9135": {"uscc": "9135"},
    "name contains 𠮷": {"name": "𠮷"},
    "holder contains 王伟": {"holder": "王伟"},
    "status hold": {"status": "hold"},
    "expiring within 30 days": {"expiring_within": 30},
}


def _timed(client: httpx.Client, path: str, params: dict[str, Any]) -> float:
    started = time.perf_counter()
    answer = client.get(path, params=params)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"{path} {params}: {answer.status_code} {answer.text[:200]}")
    return elapsed


def measure(n: int, rounds: int) -> list[dict[str, Any]]:
    from bench.search import _home, _port, _serve
    from bench.seed import seed_certificates
    from eseal.holder.client import EsealClient
    from eseal.store import close_all

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="eseal-bench-console-") as tmp:
        port = _port()
        home, pin, env = _home(Path(tmp), "sqlite", port)
        seed_certificates(home, n)
        close_all()
        proc = _serve(home, port, env)
        try:
            url = f"http://127.0.0.1:{port}"
            officer = EsealClient(url, origin=url)
            os.environ["SOFTHSM2_CONF"] = str(home / "softhsm2.conf")
            officer.login_with_token("bench-officer", pin)
            cookies = {"eseal_session": str(officer.session)}
            with httpx.Client(base_url=url, cookies=cookies, timeout=120) as client:
                for params in CASES.values():  # warm-up
                    _timed(client, "/console/certificates", params)
                healthz: list[float] = []
                page: dict[str, list[float]] = {k: [] for k in CASES}
                json: dict[str, list[float]] = {k: [] for k in CASES}
                for _ in range(rounds):
                    for name, params in CASES.items():
                        healthz.append(_timed(client, "/healthz", {}))
                        page[name].append(_timed(client, "/console/certificates", params))
                        json[name].append(_timed(client, "/officer/certificates/search",
                                                 params))
            base = statistics.median(healthz) * 1000
            rows.append({"name": "GET /healthz", "value": base, "unit": "ms",
                         "peer_or_limit": "the peer of every row below", "ratio": 1.0})
            for name in CASES:
                ms = statistics.median(page[name]) * 1000
                api = statistics.median(json[name]) * 1000
                rows.append({"name": f"page /console/certificates: {name}", "value": ms,
                             "unit": "ms", "peer_or_limit": f"/healthz {base:.1f} ms; JSON "
                             f"search {api:.1f} ms ({ms / api:.2f}×)",
                             "ratio": ms / base, "aim": f"< {AIM_MS:.0f} ms"})
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            close_all()
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    """``make bench``: 100,000 certificates, 9 rounds (``--quick``: 20,000, 3)."""
    os.environ.setdefault("ESEAL_ENV", "test")
    return measure(20_000 if quick else 100_000, 3 if quick else 9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    os.environ.setdefault("ESEAL_ENV", "test")
    rows = measure(args.n, args.rounds)
    print(f"certificates: {args.n:,}; rounds: {args.rounds}")
    print("| figure | value | peer or limit (same run) | ratio over /healthz | aim |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['value']:,.1f} {r['unit']} | {r['peer_or_limit']} | "
              f"{r['ratio']:.1f} | {r.get('aim', '—')} |")


if __name__ == "__main__":
    main()

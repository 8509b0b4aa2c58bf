"""``make bench``: run every benchmark module and print one table."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import platform
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description="run eseal's benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("only", nargs="*", help="module names (default: all)")
    args = parser.parse_args()
    here = Path(__file__).parent
    names = [m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_")]
    rows: list[dict] = []
    for name in sorted(names):
        if args.only and name not in args.only:
            continue
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "run"):
            continue
        print(f"running bench.{name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        for row in module.run(args.quick):
            rows.append({"bench": name, **row})
        print(f"  done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(f"\neseal benchmarks — {time.strftime('%Y-%m-%d')} — {platform.machine()}, "
          f"{_cpus()} cores, Python {platform.python_version()}\n")
    print("| bench | figure | value | peer or limit (same run) | ratio | aim |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if isinstance(r.get("ratio"), int | float) else "—"
        print(f"| {r['bench']} | {r['name']} | {_fmt(r['value'])} {r.get('unit', '')} | "
              f"{r.get('peer_or_limit', '—')} | {ratio} | {r.get('aim', '—')} |")
    return 0


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:.3f}"
    return str(value)


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())

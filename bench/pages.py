"""Page images: one sealed A4 page rendered to PNG at 72, 100 and 150 dpi, beside
``POST /verify`` of the same sealed file, in one run (``python -m bench pages``).

The portal shows a filing as page images and the public verify page shows the sealed page
with the seal outlined, so rendering sits next to verification on the same request path. The
figure is the time of ``GET /filings/{id}/pages/1.png?which=sealed&dpi=N`` (a pdftoppm child
under prlimit, no ETag so it renders every time) as a ratio to ``POST /verify`` of that
file, both against one ``eseal serve`` with a SoftHSM CA; and ``POST /verify/pages`` (the
report plus page 1 as a data: URL) against ``POST /verify``. The page is a scan-like A4 page
(one ~300 kB incompressible RGB image) sealed B-LT through the CLI with a USB-Key.
Medians of several runs on a shared machine.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

AIM = "< 0.5 s per page at 100 dpi (the portal waits for it)"


def _median(call: Callable[[], Any], runs: int) -> float:
    call()  # warm: imports, geometry cache, connection
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(quick: bool = False) -> list[dict[str, Any]]:
    import httpx

    from bench.browser import PINS, _cli, _draft, _port, _serve, _site
    from bench.pdf import make_pdf
    from eseal.holder.client import EsealClient

    runs = 3 if quick else 7
    os.environ.setdefault("ESEAL_ENV", "test")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        port = _port()
        url = f"http://127.0.0.1:{port}"
        _site(home, port)
        server = _serve(home, port)
        try:
            filing = _draft(url, make_pdf(300_000, pages=1))
            _cli(home, "filing", "seal", str(filing), "--token", "zhang", "--pin-stdin",
                 "--server", url, "--json")
            wang = EsealClient(url)  # not closed before the end: closing logs out
            wang.login_with_token("wang", PINS["wang"])
            auth = {"Authorization": f"Bearer {wang.session}"}
            with httpx.Client(base_url=url, timeout=120, headers=auth) as http:
                answer = http.get(f"/filings/{filing}/sealed")
                answer.raise_for_status()
                sealed = answer.content

                def verify() -> None:
                    http.post("/verify", content=sealed).raise_for_status()

                def verify_pages() -> None:
                    http.post("/verify/pages", content=sealed).raise_for_status()

                def render(dpi: int) -> Callable[[], None]:
                    def call() -> None:
                        http.get(f"/filings/{filing}/pages/1.png",
                                 params={"which": "sealed", "dpi": dpi}).raise_for_status()
                    return call

                base = _median(verify, runs)
                peer = f"POST /verify {base * 1000:.0f} ms ({len(sealed) / 1e3:.0f} kB B-LT)"
                for dpi in (72, 100, 150):
                    t = _median(render(dpi), runs)
                    rows.append({"name": f"A4 page -> PNG at {dpi} dpi (HTTP)",
                                 "value": t * 1000, "unit": "ms", "peer_or_limit": peer,
                                 "ratio": t / base, "aim": AIM if dpi == 100 else "—"})
                t = _median(verify_pages, runs)
                rows.append({"name": "POST /verify/pages (report + page 1 at 100 dpi)",
                             "value": t * 1000, "unit": "ms", "peer_or_limit": peer,
                             "ratio": t / base, "aim": "—"})
        finally:
            server.terminate()
            server.wait(timeout=15)
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)

"""The cost of the paging seal (骑缝章): seal time and file size with it, against the same seal
without it, on a 5-page and a 50-page filing (``python -m bench.paging``).

The paging seal adds, per page, one stamp annotation and one tiny form XObject that draw the
seal's *own* image XObject (shared with the seal widget, not a copy), and rewrites every page
object in the seal's revision. So the aim is a constant-ish time cost and a few hundred bytes
per page, not a second copy of the seal image. Same setup as ``bench.pdf``: the seal key on
a SoftHSM token (one real signature per seal), a local software PKI, pyHanko's in-process
TSA, CRLs in memory (B-LT, what filings use); pages of ~20 KB (a scanned-text filing).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from bench.pdf import PIN, SO_PIN, _long_term_kwargs, _median, _pki, make_pdf

AIM_TIME = "< 1.5x the plain seal"
AIM_SIZE = "no second seal image: < 1 KB per page"
PAGE_BYTES = 20_000


def run(quick: bool = False) -> list[dict]:
    os.environ.setdefault("ESEAL_ENV", "test")
    import logging

    logging.getLogger("pyhanko").setLevel(logging.ERROR)

    from eseal.settings import load_settings
    from eseal.signing.seal_image import SealSpec, render_seal
    from eseal.signing.sign import SealOptions, seal_pdf
    from eseal.token import TokenSession, configure, generate_keypair, private_key_for
    from eseal.token.softhsm import init_token, write_conf

    home = Path(tempfile.mkdtemp(prefix="eseal-bench-paging-"))
    conf = write_conf(home / "softhsm2.conf", home / "tokens")
    configure(load_settings(home).pkcs11_module, conf)
    init_token(conf, "bench", PIN, SO_PIN)
    token = TokenSession("bench", PIN, rw=True).open()
    rows: list[dict] = []
    try:
        info = generate_keypair(token, "ec-p256", "seal")
        key = private_key_for(token, info)
        pki = _pki(info.public_key)
        png = render_seal(SealSpec("北京堃喆科技有限公司", uscc="91110108551385082Q",
                                   title="公章"))
        chain = [pki["issuing"], pki["root"]]
        runs = 3 if quick else 7
        for pages in (5, 50):
            pdf = make_pdf(pages * PAGE_BYTES, pages)

            def seal(paging: bool, pdf: bytes = pdf) -> bytes:
                extra: dict[str, Any] = _long_term_kwargs(pki)
                return seal_pdf(pdf, key=key, certificate=pki["seal"], chain=chain,
                                options=SealOptions(level="B-LT", paging=paging),
                                seal_png=png, **extra)

            plain_s = _median(lambda: seal(False), runs)
            paging_s = _median(lambda: seal(True), runs)
            plain, paged = seal(False), seal(True)
            added_plain, added_paging = len(plain) - len(pdf), len(paged) - len(pdf)
            rows.append({
                "name": f"seal {pages} pages B-LT with the paging seal",
                "value": paging_s * 1000, "unit": "ms",
                "peer_or_limit": f"same seal without it {plain_s * 1000:.1f} ms",
                "ratio": paging_s / plain_s, "aim": AIM_TIME})
            rows.append({
                "name": f"bytes a {pages}-page seal adds, with the paging seal",
                "value": added_paging, "unit": "B",
                "peer_or_limit": f"without it {added_plain} B "
                                 f"(+{(added_paging - added_plain) / pages:.0f} B/page; "
                                 f"file {len(paged) / len(plain):.3f}x)",
                "ratio": added_paging / added_plain, "aim": AIM_SIZE})
    finally:
        token.close()
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']}: {row['value']:.1f} {row['unit']} | {row['peer_or_limit']} | "
              f"ratio {row['ratio']:.2f} | aim {row['aim']}")

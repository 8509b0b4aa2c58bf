"""``docs/paging-seal.png``: a real render of a 3-page filing sealed with the paging seal
(``python -m bench.paging_picture [OUT.png]``, or ``make docs-pictures``).

The filing is sealed as ``eseal sign --paging-seal`` does it (the seal key on a SoftHSM
token, one signature; the bench's local PKI and in-process TSA, B-LT), rendered by poppler's
``pdftoppm`` and laid out with Pillow: the three pages side by side, and on the right the
three edge strips put together again — the seal they were cut from.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from bench.pdf import PIN, SO_PIN, _long_term_kwargs, _pki

DPI = 60
SIZE_PT = 120.0
OUT = Path(__file__).resolve().parent.parent / "docs" / "paging-seal.png"


def filing_pdf(pages: int = 3) -> bytes:
    """A plain A4 filing: a heading and grey lines of 'text' on every page."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

    writer = PdfFileWriter()
    name = generic.pdf_name
    font = writer.add_object(generic.DictionaryObject({
        name("/Type"): name("/Font"), name("/Subtype"): name("/Type1"),
        name("/BaseFont"): name("/Helvetica-Bold")}))
    for number in range(1, pages + 1):
        lines = [f"0.55 g 72 {y} {420 - (y * 7) % 90} 7 re f" for y in range(700, 200, -22)]
        content = (f"BT /F1 20 Tf 72 760 Td (Annual report 2025 - page {number} of {pages}) "
                   "Tj ET\n" + "\n".join(lines)).encode()
        writer.insert_page(PageObject(
            contents=writer.add_object(generic.StreamObject(stream_data=content)),
            media_box=(0, 0, 595, 842),
            resources=generic.DictionaryObject({name("/Font"): generic.DictionaryObject(
                {name("/F1"): font})})))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def sealed_filing(pdf: bytes) -> bytes:
    """``pdf`` sealed at B-LT with the paging seal by a seal key on a fresh SoftHSM token."""
    import logging

    from eseal.settings import load_settings
    from eseal.signing.seal_image import SealSpec, render_seal
    from eseal.signing.sign import SealOptions, seal_pdf
    from eseal.token import TokenSession, configure, generate_keypair, private_key_for
    from eseal.token.softhsm import init_token, write_conf

    logging.getLogger("pyhanko").setLevel(logging.ERROR)
    home = Path(tempfile.mkdtemp(prefix="eseal-paging-picture-"))
    conf = write_conf(home / "softhsm2.conf", home / "tokens")
    configure(load_settings(home).pkcs11_module, conf)
    init_token(conf, "picture", PIN, SO_PIN)
    token = TokenSession("picture", PIN, rw=True).open()
    try:
        info = generate_keypair(token, "ec-p256", "seal")
        pki = _pki(info.public_key)
        png = render_seal(SealSpec("北京堃喆科技有限公司", uscc="91110108551385082Q"))
        return seal_pdf(pdf, key=private_key_for(token, info), certificate=pki["seal"],
                        chain=[pki["issuing"], pki["root"]],
                        options=SealOptions(level="B-LT", paging=True, size_pt=SIZE_PT),
                        seal_png=png, **_long_term_kwargs(pki))
    finally:
        token.close()


def render(pdf: bytes, dpi: int = DPI) -> list[Image.Image]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sealed.pdf"
        path.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(path), f"{tmp}/p"],
                       check=True, capture_output=True, timeout=120)
        files = sorted(Path(tmp).glob("p-*.png"), key=lambda p: int(p.stem.split("-")[1]))
        return [Image.open(f).convert("RGB") for f in files]


def montage(pages: list[Image.Image], size_pt: float = SIZE_PT, dpi: int = DPI) -> Image.Image:
    """The pages side by side, then their right-edge strips joined (the seal again)."""
    gap, margin = 24, 24
    width, height = pages[0].size
    seal_px = round(size_pt * dpi / 72)
    strip = seal_px / len(pages)
    top = round(height / 2 - seal_px / 2)
    strips = [page.crop((width - round(strip), top, width, top + seal_px)) for page in pages]
    joined = Image.new("RGB", (sum(s.width for s in strips), seal_px), "white")
    x = 0
    for s in strips:
        joined.paste(s, (x, 0))
        x += s.width
    canvas = Image.new("RGB", (2 * margin + len(pages) * (width + gap) + 3 * gap + joined.width,
                               height + 2 * margin), (236, 236, 236))
    draw = ImageDraw.Draw(canvas)
    for i, page in enumerate(pages):
        left = margin + i * (width + gap)
        draw.rectangle((left + 3, margin + 3, left + width + 3, margin + height + 3),
                       fill=(190, 190, 190))
        canvas.paste(page, (left, margin))
    left = margin + len(pages) * (width + gap) + 2 * gap
    canvas.paste(joined, (left, margin + top))
    draw.line((left - gap, margin + top + seal_px // 2, left - 6, margin + top + seal_px // 2),
              fill=(120, 120, 120), width=2)
    return canvas


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    montage(render(sealed_filing(filing_pdf()))).save(out, optimize=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

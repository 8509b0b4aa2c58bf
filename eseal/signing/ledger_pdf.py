"""The credential ledger as PDF pages: a table drawn in a CJK font, ready to be sealed.

Drawn with Pillow one character at a time (so a rare character such as 𠮷 falls back to a
font that has it, as the demo's filing does) and passed through pyHanko's writer so strict
readers accept the file. The rows come in as plain strings from the RA's ledger; this module
knows nothing of the database.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from eseal.signing.fonts import font_for

PAGE = (1754, 1240)  # A4 landscape at 150 dpi
ROWS_PER_PAGE = 26
#: (column, heading, width in pixels, characters kept)
LAYOUT = (("seq", "#", 50, 5), ("at", "时间 time (UTC)", 250, 19),
          ("event_zh", "事项 event", 300, 18), ("usb_key", "USB-Key", 140, 12),
          ("holder", "持有人 holder", 200, 12), ("certificate", "证书 serial", 420, 40),
          ("reason", "原因 reason", 200, 20))


def _writer(draw, fonts: dict[tuple[str, int], object]):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    def text(xy: tuple[int, int], value: str, size: int) -> None:
        x, y = xy
        for ch in value:
            choice = font_for(ch) if not ch.isspace() else font_for("a")
            key = (str(choice.path), size)
            if key not in fonts:
                fonts[key] = ImageFont.truetype(str(choice.path), size, index=choice.index)
            f = fonts[key]
            draw.text((x, y), ch, fill="black", font=f)
            x += int(f.getlength(ch))  # type: ignore[attr-defined]
    return text


def ledger_pdf(*, name: str, uscc: str, generated_at: str,
               rows: Sequence[dict[str, object]]) -> bytes:
    """A PDF of the ledger (one header block, a table, as many pages as needed)."""
    from PIL import Image, ImageDraw
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    pages = []
    fonts: dict[tuple[str, int], object] = {}
    chunks = [rows[i:i + ROWS_PER_PAGE] for i in range(0, len(rows), ROWS_PER_PAGE)] or [[]]
    for number, chunk in enumerate(chunks, start=1):
        page = Image.new("RGB", PAGE, "white")
        draw = ImageDraw.Draw(page)
        text = _writer(draw, fonts)
        text((80, 60), "企业数字凭证管理台账 Credential ledger", 40)
        text((80, 120), f"{name}  {uscc}", 28)
        text((80, 160), f"generated {generated_at}   page {number}/{len(chunks)}   "
                        f"{len(rows)} events", 20)
        x = 80
        for _, heading, width, _ in LAYOUT:
            text((x, 220), heading, 20)
            x += width
        draw.line((80, 250, PAGE[0] - 80, 250), fill="black", width=2)
        y = 262
        for row in chunk:
            x = 80
            for key, _, width, keep in LAYOUT:
                value = str(row.get(key, ""))
                if key == "at":  # whole seconds, UTC (the heading says so)
                    value = value[:19].replace("T", " ")
                text((x, y), value if len(value) <= keep else value[:keep - 1] + "…", 18)
                x += width
            y += 36
        pages.append(page)
    raw = io.BytesIO()
    pages[0].save(raw, "PDF", resolution=150.0, save_all=True, append_images=pages[1:])
    writer = copy_into_new_writer(PdfFileReader(io.BytesIO(raw.getvalue()), strict=False))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()

"""The attacker's tools for painting over a sealed page: one-page PDFs with hand-written
content, a later seal with an opaque white appearance, and a pre-placed signature field
filled after sealing (pyHanko's incremental writer and signer, as any second signer has).

Built on tests/pdfkit.py (PdfBuilder) and tests/hankokit.py (seal_pdf, pyhanko_signer,
timestamper); the red-team scripts of issue 13 item 1 are the origin of these helpers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from io import BytesIO

from hankokit import pyhanko_signer, seal_pdf, timestamper
from pdfkit import PdfBuilder, stream_object
from pkikit import Issued, TestPki
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

Box = tuple[int, int, int, int]
HELVETICA = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def _fill(source: bytes | str, refs: Mapping[str, str]) -> bytes:
    raw = source.encode("latin-1") if isinstance(source, str) else source
    for name, ref in refs.items():
        raw = raw.replace(b"{" + name.encode() + b"}", ref.encode())
    return raw


def one_page_pdf(content: bytes | list[bytes], *, fonts: str = "", resources: str = "",
                 catalog: str = "",
                 objects: Mapping[str, bytes | str] | None = None) -> bytes:
    """A 612x792 page showing ``content`` with Helvetica as /F1 (plus ``fonts`` entries in
    /Font and ``resources`` entries in /Resources). ``{name}`` in any source (content and
    ``objects`` included) becomes a reference to ``objects[name]``; ``catalog`` is added to
    the catalog (e.g. /OCProperties). A list of ``content`` parts makes /Contents an array of
    streams, written as given (no separator added)."""
    objects = dict(objects or {})
    b = PdfBuilder()
    root, pages, page = b.reserve(), b.reserve(), b.reserve()
    ids = {name: b.reserve() for name in objects}
    refs = {"page": f"{page} 0 R", **{name: f"{num} 0 R" for name, num in ids.items()}}
    for name, body in objects.items():
        b.set(ids[name], _fill(body, refs))
    font = b.add(HELVETICA)
    parts = content if isinstance(content, list) else [content]
    bodies = " ".join(f"{b.add(stream_object(_fill(part, refs)))} 0 R" for part in parts)
    b.set(page, _fill(f"<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 612 792] "
                      f"/Resources << /Font << /F1 {font} 0 R {fonts} >> {resources} >> "
                      f"/Contents [{bodies}] >>", refs))
    b.set(pages, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    b.set(root, _fill(f"<< /Type /Catalog /Pages {pages} 0 R {catalog} >>", refs))
    return b.build(root)


def seal_lt(pki: TestPki, data: bytes) -> bytes:
    """The first seal, as eseal makes it: B-LT with the DSS in the signed revision."""
    return seal_pdf(data, pki.seal, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)


def white_style(width: float, height: float):  # -> TextStampStyle
    """A stamp style whose appearance is an opaque white box with a line of text."""
    from pyhanko.pdf_utils.content import RawContent
    from pyhanko.pdf_utils.layout import BoxConstraints
    from pyhanko.stamp import TextStampStyle

    paint = b"1 1 1 rg 0 0 %d %d re f" % (width, height)
    return TextStampStyle(background=RawContent(paint, box=BoxConstraints(width, height)),
                          background_opacity=1.0, stamp_text="PAID IN FULL")


def _sign(writer: IncrementalPdfFileWriter, pki: TestPki, signer: Issued, field: str,
          box: tuple[float, float, float, float]) -> bytes:
    from pyhanko.sign import fields, signers

    meta = signers.PdfSignatureMetadata(field_name=field, md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES)
    pdf_signer = signers.PdfSigner(meta, pyhanko_signer(signer, pki),
                                   timestamper=timestamper(pki),
                                   stamp_style=white_style(box[2] - box[0], box[3] - box[1]))
    out = BytesIO()
    asyncio.run(pdf_signer.async_sign_pdf(writer, output=out))
    return out.getvalue()


def later_seal(sealed: bytes, pki: TestPki, signer: Issued, box: Box,
               field: str = "Seal2") -> bytes:
    """A second seal in a new field whose widget at ``box`` paints opaque white."""
    from pyhanko.sign import fields

    writer = IncrementalPdfFileWriter(BytesIO(sealed))
    fields.append_signature_field(writer, fields.SigFieldSpec(field, on_page=0, box=box))
    return _sign(writer, pki, signer, field, box)


def fill_placeholder(sealed: bytes, pki: TestPki, signer: Issued, field: str,
                     entries: Mapping[str, str] | None = None) -> bytes:
    """A second seal into the empty signature field ``field`` placed before sealing, after
    setting its widget ``entries`` (PDF source, e.g. ``{"/F": "4"}``) in the same update."""
    writer = IncrementalPdfFileWriter(BytesIO(sealed))
    ref = next(f for f in writer.root["/AcroForm"]["/Fields"].iterate()
               if f.get_object()["/T"] == field)
    widget = ref.get_object()
    for key, source in (entries or {}).items():
        widget[generic.pdf_name(key)] = generic.read_object(
            BytesIO(source.encode("latin-1")), container_ref=generic.Reference(0, 0, writer))
    if entries:
        writer.mark_update(ref)
    x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
    box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    if box[2] <= box[0] or box[3] <= box[1]:
        box = (0.0, 0.0, 1.0, 1.0)
    return _sign(writer, pki, signer, field, box)

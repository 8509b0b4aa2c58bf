"""Test kit: hand-written PDFs whose object numbers are known, and incremental updates.

The raw writer (``PdfBuilder``, ``append_update``, ``stream_object``) is deliberately
independent of pyHanko: attack files must be built by something other than the parser that
judges them, so an attack can replace exactly one object.

    doc = make_pdf(pages=2)                                   # SamplePdf: bytes + numbers
    tampered = append_update(sealed, {doc.content_ids[0]: stream_object(b"...")})
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------
# a raw PDF writer (independent of pyHanko on purpose)


def stream_object(data: bytes, extra: str = "", *, compress: bool = False) -> bytes:
    """The body of a stream object (``<< /Length n ... >> stream ... endstream``)."""
    if compress:
        data = zlib.compress(data)
        extra = f"{extra} /Filter /FlateDecode"
    return (f"<< /Length {len(data)}{' ' if extra else ''}{extra.strip()} >>\nstream\n".encode()
            + data + b"\nendstream")


class PdfBuilder:
    """Collect numbered object bodies and write a classic-xref PDF 1.7 file."""

    def __init__(self) -> None:
        self.objects: dict[int, bytes] = {}

    def reserve(self) -> int:
        num = len(self.objects) + 1
        self.objects[num] = b"null"
        return num

    def add(self, body: bytes | str) -> int:
        num = self.reserve()
        self.set(num, body)
        return num

    def set(self, num: int, body: bytes | str) -> None:
        self.objects[num] = body.encode("latin-1") if isinstance(body, str) else body

    def build(self, root: int, info: int | None = None) -> bytes:
        out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        offsets: dict[int, int] = {}
        for num in sorted(self.objects):
            offsets[num] = len(out)
            out += f"{num} 0 obj\n".encode() + self.objects[num] + b"\nendobj\n"
        size = max(self.objects) + 1
        xref_at = len(out)
        out += f"xref\n0 {size}\n".encode() + b"0000000000 65535 f\r\n"
        for num in range(1, size):
            if num in offsets:
                out += f"{offsets[num]:010d} 00000 n\r\n".encode()
            else:
                out += b"0000000000 00000 f\r\n"
        trailer = f"<< /Size {size} /Root {root} 0 R"
        if info is not None:
            trailer += f" /Info {info} 0 R"
        trailer += " /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] >>"
        out += f"trailer\n{trailer}\nstartxref\n{xref_at}\n%%EOF\n".encode()
        return bytes(out)


def linearized_layout(data: bytes) -> bytes:
    """Re-lay a single-revision classic-xref PDF (from :class:`PdfBuilder`) the way a
    linearizer does: a linearization dictionary and a first-page xref section at the top
    whose trailer says ``startxref 0`` and points forward (/Prev) to the main xref section at
    the end, which the final ``startxref`` does *not* name. Hint tables are left out: this is
    about the cross-reference layout verifiers must cope with, not about fast web view."""
    offsets = xref_entries(data)
    bodies: dict[int, bytes] = {}
    for num, off in offsets.items():
        start = data.index(b"obj", off) + 3
        bodies[num] = data[start:data.index(b"\nendobj", start)].strip()
    trailer = _trailer_entries(data)
    root_body = bodies[int(trailer["Root"].split()[0])]
    pages_ref = re.search(rb"/Pages\s+(\d+)", root_body)
    count = re.search(rb"/Count\s+(\d+)", bodies[int(pages_ref.group(1))]) if pages_ref else None
    pages = int(count.group(1)) if count else 1
    lin = max(bodies) + 1
    split = (lin + 1) // 2  # objects split..lin in the first-page section, 1..split-1 in main
    first_ids = [n for n in sorted(bodies) if n >= split]
    main_ids = [n for n in sorted(bodies) if n < split]

    def render(main_xref: int, first_xref: int, total_len: int) -> tuple[bytes, int, int]:
        out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        pos: dict[int, int] = {lin: len(out)}
        # /T: the white-space before the main section's first entry (ISO 32000-1 F.2.2)
        main_entries = main_xref + len(f"xref\n0 {split}") if main_xref else 0
        out += (f"{lin} 0 obj\n<< /Linearized 1 /L {total_len:010d} /N {pages} "
                f"/T {main_entries:010d} >>\nendobj\n").encode()
        first_at = len(out)
        rows = [(lin, None)] + [(n, None) for n in first_ids]
        out += b"xref\n" + f"{split} {lin - split + 1}\n".encode()
        out += b"".join(b"%010d 00000 n\r\n" % 0 for _ in rows)  # patched below
        info = f" /Info {trailer['Info']}" if "Info" in trailer else ""
        out += (f"trailer\n<< /Size {lin + 1} /Root {trailer['Root']}{info} "
                f"/Prev {main_xref:010d} >>\nstartxref\n0\n%%EOF\n").encode()
        for n in first_ids + main_ids:
            pos[n] = len(out)
            out += f"{n} 0 obj\n".encode() + bodies[n] + b"\nendobj\n"
        main_at = len(out)
        out += f"xref\n0 {split}\n".encode() + b"0000000000 65535 f\r\n"
        for n in range(1, split):
            out += (f"{pos[n]:010d} 00000 n\r\n" if n in pos
                    else "0000000000 00000 f\r\n").encode()
        out += f"trailer\n<< /Size {split} >>\nstartxref\n{first_at}\n%%EOF\n".encode()
        # patch the first-page section's entries now that offsets are known
        table = first_at + len(b"xref\n" + f"{split} {lin - split + 1}\n".encode())
        for i, n in enumerate(range(split, lin + 1)):
            entry = (f"{pos[n]:010d} 00000 n\r\n" if n in pos
                     else "0000000000 00000 f\r\n").encode()
            out[table + 20 * i:table + 20 * (i + 1)] = entry
        return bytes(out), main_at, first_at

    first_pass, main_at, first_at = render(0, 0, 0)
    final, main_at2, _ = render(main_at, first_at, len(first_pass))
    assert main_at2 == main_at and len(final) == len(first_pass)
    return final


@dataclass(frozen=True)
class SamplePdf:
    """A generated PDF and the object numbers an attack may want to touch.

    The file is shaped like a "shadow document" (Mainka et al.): besides the visible pages it
    carries objects that are present at signing time but unused or invisible, so that a
    later update could reveal or activate them:

    * ``hidden_overlay_id``: a form XObject painting "PAY 1,000,000 CNY" over the page, drawn
      by page 1 inside optional content whose group is OFF (``ocg_config_id`` is the indirect
      default configuration dictionary that says so);
    * ``unused_content_id`` / ``unused_font_id``: objects reachable from nothing;
    * ``alt_catalog_id``: a complete second catalog + page tree (showing ``ALT_TEXT``) that
      no trailer points to;
    * ``payload_offset``: where, inside an unused stream, the bytes of a complete indirect
      object ``<content_ids[0]> 0 obj`` with other page content sit (an xref entry pointing
      there would swap the page content without adding a byte);
    * ``form_field_id``: a filled text field ("amount: 1,000"), when ``with_form``.

    ``image_id`` is a binary (Flate) image; content streams are Flate-compressed binary too.
    """

    data: bytes
    catalog_id: int
    pages_id: int
    page_ids: list[int]
    content_ids: list[int]
    font_id: int
    image_id: int
    hidden_overlay_id: int
    ocg_id: int
    ocg_config_id: int
    unused_content_id: int
    unused_font_id: int
    alt_catalog_id: int
    payload_offset: int
    info_id: int
    form_field_id: int | None


ALT_TEXT = "Annual report 2025: revenue 9,999,999 CNY"


def _page_text(i: int, text: str) -> bytes:
    body = (f"BT /F1 18 Tf 72 720 Td ({text} - page {i + 1}) Tj ET\n"
            "q 100 0 0 100 72 500 cm /Im1 Do Q\n").encode("latin-1")
    if i == 0:  # the hidden layer: invisible while its optional content group is OFF
        body += b"/OC /oc1 BDC /Ov1 Do EMC\n"
    return body


def make_pdf(pages: int = 1, *, text: str = "Annual report 2025: revenue 1,000 CNY",
             compress: bool = True, kids_per_node: int = 500,
             with_form: bool = False) -> SamplePdf:
    """A small, valid PDF with ``pages`` pages (a balanced page tree beyond ``kids_per_node``).

    Every page shares one font and one 16×16 binary image; each page has its own content
    stream (Flate-compressed when ``compress``), except that above 1,000 pages all pages but
    the first share one content stream so that a 50,000-page file stays under 10 MB.
    """
    b = PdfBuilder()
    catalog = b.reserve()
    pages_root = b.reserve()
    info = b.add("<< /Producer (eseal tests/pdfkit) /Title (Sample filing) >>")
    font = b.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    pixels = bytes((x * 16 + y) % 256 for x in range(16) for y in range(16)) * 3
    image = b.add(stream_object(
        pixels, "/Type /XObject /Subtype /Image /Width 16 /Height 16 /ColorSpace /DeviceRGB "
        "/BitsPerComponent 8", compress=True))
    overlay = b.add(stream_object(
        b"q 1 1 1 rg 0 0 612 792 re f Q BT /F1 36 Tf 72 600 Td (PAY 1,000,000 CNY) Tj ET",
        "/Type /XObject /Subtype /Form /BBox [0 0 612 792] "
        f"/Resources << /Font << /F1 {font} 0 R >> >>"))
    ocg = b.add("<< /Type /OCG /Name (hidden layer) >>")
    ocg_config = b.add(f"<< /Order [{ocg} 0 R] /OFF [{ocg} 0 R] >>")
    unused_content = b.add(stream_object(f"BT /F1 18 Tf 72 720 Td ({ALT_TEXT}) Tj ET".encode(),
                                         compress=compress))
    unused_font = b.add("<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>")
    # a complete alternative document nobody points to (yet)
    alt_catalog = b.reserve()
    alt_pages = b.reserve()
    alt_page = b.reserve()
    b.set(alt_page, f"<< /Type /Page /Parent {alt_pages} 0 R /MediaBox [0 0 612 792] "
                    f"/Resources << /Font << /F1 {font} 0 R >> >> "
                    f"/Contents {unused_content} 0 R >>")
    b.set(alt_pages, f"<< /Type /Pages /Kids [{alt_page} 0 R] /Count 1 >>")
    b.set(alt_catalog, f"<< /Type /Catalog /Pages {alt_pages} 0 R >>")
    form_field = None
    if with_form:
        form_field = b.add("<< /FT /Tx /T (amount) /V (1,000 CNY) /DA (/Helv 12 Tf 0 g) "
                           "/Type /Annot /Subtype /Widget /Rect [72 400 300 420] /F 4 >>")
    shared = pages > 1000
    shared_content = b.add(stream_object(_page_text(1, text), compress=compress)) if shared \
        else None
    page_ids: list[int] = []
    content_ids: list[int] = []
    for i in range(pages):
        page = b.reserve()
        if shared_content is None or i == 0:
            content = b.add(stream_object(_page_text(i, text), compress=compress))
        else:
            content = shared_content
        page_ids.append(page)
        content_ids.append(content)
    # the hidden replacement for page 1's content, as raw object bytes inside a stream
    evil = f"BT /F1 18 Tf 72 720 Td ({ALT_TEXT} - page 1) Tj ET".encode()
    payload = (f"{content_ids[0]} 0 obj\n<< /Length {len(evil)} >>\nstream\n".encode() + evil
               + b"\nendstream\nendobj\n")
    b.add(stream_object(b"% notes\n" + payload))
    # balanced tree: every node holds up to kids_per_node kids
    level: list[tuple[int, int]] = [(p, 1) for p in page_ids]  # (object, page count)
    parent_of: dict[int, int] = {}
    nodes: dict[int, tuple[list[int], int]] = {}
    while len(level) > kids_per_node:
        next_level: list[tuple[int, int]] = []
        for start in range(0, len(level), kids_per_node):
            chunk = level[start:start + kids_per_node]
            node = b.reserve()
            for kid, _ in chunk:
                parent_of[kid] = node
            count = sum(c for _, c in chunk)
            nodes[node] = ([k for k, _ in chunk], count)
            next_level.append((node, count))
        level = next_level
    for kid, _ in level:
        parent_of[kid] = pages_root
    for node, (kids_of, count) in nodes.items():
        kids = " ".join(f"{k} 0 R" for k in kids_of)
        b.set(node, f"<< /Type /Pages /Kids [{kids}] /Count {count} "
                    f"/Parent {parent_of[node]} 0 R >>")
    kids = " ".join(f"{k} 0 R" for k, _ in level)
    b.set(pages_root, f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>")
    for i, page in enumerate(page_ids):
        if i == 0:
            extra = (f" /XObject << /Im1 {image} 0 R /Ov1 {overlay} 0 R >>"
                     f" /Properties << /oc1 {ocg} 0 R >>")
            annots = f" /Annots [{form_field} 0 R]" if form_field else ""
        else:
            extra, annots = f" /XObject << /Im1 {image} 0 R >>", ""
        b.set(page, (f"<< /Type /Page /Parent {parent_of[page]} 0 R /MediaBox [0 0 612 792] "
                     f"/Resources << /Font << /F1 {font} 0 R >>{extra} >> "
                     f"/Contents {content_ids[i]} 0 R{annots} >>"))
        if i == 0 and form_field:
            b.set(form_field, b.objects[form_field].replace(b" >>", f" /P {page} 0 R >>".encode()))
    acroform = (f" /AcroForm << /Fields [{form_field} 0 R] /DR << /Font << /Helv {font} 0 R >> >>"
                f" /DA (/Helv 12 Tf 0 g) >>") if form_field else ""
    b.set(catalog, f"<< /Type /Catalog /Pages {pages_root} 0 R "
                   f"/OCProperties << /OCGs [{ocg} 0 R] /D {ocg_config} 0 R >>{acroform} >>")
    data = b.build(catalog, info)
    payload_offset = data.index(payload)
    return SamplePdf(data=data, catalog_id=catalog, pages_id=pages_root, page_ids=page_ids,
                     content_ids=content_ids, font_id=font, image_id=image,
                     hidden_overlay_id=overlay, ocg_id=ocg, ocg_config_id=ocg_config,
                     unused_content_id=unused_content, unused_font_id=unused_font,
                     alt_catalog_id=alt_catalog, payload_offset=payload_offset, info_id=info,
                     form_field_id=form_field)


def _fill(body: bytes | str, refs: Mapping[str, str]) -> bytes:
    raw = body.encode("latin-1") if isinstance(body, str) else body
    for name, ref in refs.items():
        raw = raw.replace(b"{" + name.encode() + b"}", ref.encode())
    return raw


def make_form_pdf(fields: Sequence[str], *, objects: Mapping[str, bytes | str] | None = None,
                  form_extra: str = "") -> bytes:
    """A one-page PDF whose AcroForm has the top-level ``fields`` (dictionary sources; each
    is also a widget on the page, as are the ``objects`` named ``kid...``; an entry
    ``@name`` lists object ``name`` as a field without making it a widget). In every source,
    ``{page}``, ``{font}`` (Helvetica, WinAnsi; /Helv in the form's /DR) and ``{<name>}`` for
    each of ``objects`` (written as indirect objects) become references. ``form_extra`` is
    added to the /AcroForm dictionary (e.g. ``/NeedAppearances true``)."""
    objects = dict(objects or {})
    b = PdfBuilder()
    catalog, pages, page = b.reserve(), b.reserve(), b.reserve()
    font = b.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                 "/Encoding /WinAnsiEncoding >>")
    ids = {name: b.reserve() for name in objects}
    field_ids = [ids[f[1:]] if f.startswith("@") else b.reserve() for f in fields]
    refs = {"page": f"{page} 0 R", "font": f"{font} 0 R",
            **{name: f"{num} 0 R" for name, num in ids.items()}}
    for name, body in objects.items():
        b.set(ids[name], _fill(body, refs))
    for num, body in zip(field_ids, fields, strict=True):
        if not body.startswith("@"):
            b.set(num, _fill(body, refs))
    widgets = [num for num, body in zip(field_ids, fields, strict=True)
               if not body.startswith("@")]
    widgets += [num for name, num in ids.items() if name.startswith("kid")]
    content = b.add(stream_object(b"BT /F1 18 Tf 72 720 Td (Annual report 2025) Tj ET"))
    b.set(page, f"<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R "
                f"/Annots [{' '.join(f'{n} 0 R' for n in widgets)}] >>")
    b.set(pages, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    fields_src = " ".join(f"{n} 0 R" for n in field_ids)
    b.set(catalog, f"<< /Type /Catalog /Pages {pages} 0 R /AcroForm << /Fields [{fields_src}] "
                   f"/DR << /Font << /Helv {font} 0 R >> >> /DA (/Helv 12 Tf 0 g) "
                   f"{form_extra} >> >>")
    return b.build(catalog)


_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_TRAILER = re.compile(rb"trailer\s*<<(.*?)>>\s*startxref", re.S)


def last_startxref(data: bytes) -> int:
    m = _STARTXREF.search(data[-1024:])
    if not m:
        raise ValueError("no startxref/%%EOF at the end of the data")
    return int(m.group(1))


def break_startxref(data: bytes) -> bytes:
    """``data`` with its last startxref pointing at offset 12, where no xref is."""
    at = data.rindex(b"startxref")
    return data[:at] + b"startxref\n12\n%%EOF\n"


def _trailer_entries(data: bytes) -> dict[str, str]:
    """/Root, /Info, /Size of the last revision (classic trailer or xref stream dict)."""
    xref_at = last_startxref(data)
    tail = data[xref_at:]
    if tail.startswith(b"xref"):
        m = _TRAILER.search(tail)
        if not m:
            raise ValueError("no trailer after the last xref table")
        body = m.group(1)
    else:  # an xref stream object: take its dictionary
        body = tail[:tail.index(b"stream")]
    out: dict[str, str] = {}
    for key in ("Root", "Info"):
        km = re.search(rb"/" + key.encode() + rb"\s+(\d+\s+\d+\s+R)", body)
        if km:
            out[key] = km.group(1).decode()
    sm = re.search(rb"/Size\s+(\d+)", body)
    if not sm:
        raise ValueError("trailer without /Size")
    out["Size"] = sm.group(1).decode()
    return out


def append_update(data: bytes, objects: Mapping[int, bytes | str], *,
                  root: str | None = None, pointers: Mapping[int, int] | None = None,
                  raw_objects: Mapping[int, bytes] | None = None, prev: int | None = None,
                  trailer_from: bytes | None = None, eol: bytes = b"\n") -> bytes:
    """Append a classic incremental update (objects + xref table + trailer with /Prev).

    ``objects`` maps object numbers to new bodies written as ``n 0 obj ... endobj``;
    ``raw_objects`` maps object numbers to bytes written verbatim (whatever header they
    carry) that the xref then points at; ``pointers`` maps object numbers to *existing* byte
    offsets (an xref-only redirection: no new bytes at all). ``root`` overrides the trailer's
    /Root ("12 0 R"); ``prev`` overrides /Prev (default: the last startxref of ``data``) and
    ``trailer_from`` the file whose last trailer supplies /Root, /Info and /Size.
    """
    entries = _trailer_entries(trailer_from if trailer_from is not None else data)
    prev = last_startxref(data) if prev is None else prev
    out = bytearray(data)
    if not out.endswith((b"\n", b"\r")):
        out += eol
    offsets: dict[int, int] = dict(pointers or {})
    for num, raw in sorted((raw_objects or {}).items()):
        offsets[num] = len(out)
        out += raw
    for num, body in sorted(objects.items()):
        offsets[num] = len(out)
        encoded = body.encode("latin-1") if isinstance(body, str) else body
        out += f"{num} 0 obj\n".encode() + encoded + b"\nendobj\n"
    size = max(int(entries["Size"]), max(offsets, default=0) + 1)
    xref_at = len(out)
    out += b"xref\n"
    for num in sorted(offsets):
        out += f"{num} 1\n{offsets[num]:010d} 00000 n\r\n".encode()
    trailer = f"<< /Size {size} /Root {root or entries['Root']}"
    if "Info" in entries:
        trailer += f" /Info {entries['Info']}"
    trailer += f" /Prev {prev} >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref_at}\n%%EOF".encode() + eol
    return bytes(out)


_XREF_SUBSECTION = re.compile(rb"(\d+) (\d+)[ \t]*\r?\n")


def xref_entries(data: bytes) -> dict[int, int]:
    """Object number → offset as the classic xref tables of ``data`` say (newest revision
    wins), following /Prev. Files with xref streams give an empty map."""
    found: dict[int, int] = {}
    at: int | None = last_startxref(data)
    seen: set[int] = set()
    while at is not None and at not in seen and data.startswith(b"xref", at):
        seen.add(at)
        pos = at + 4
        while True:
            while data[pos:pos + 1] in (b" ", b"\r", b"\n"):
                pos += 1
            m = _XREF_SUBSECTION.match(data, pos)
            if m is None:
                break
            first, count = int(m.group(1)), int(m.group(2))
            pos = m.end()
            for i in range(count):
                entry = data[pos:pos + 20]
                pos += 20
                if entry[17:18] == b"n":
                    found.setdefault(first + i, int(entry[:10]))
        trailer = _TRAILER.search(data, at)
        pm = re.search(rb"/Prev\s+(\d+)", trailer.group(1)) if trailer else None
        at = int(pm.group(1)) if pm else None
    return found


def object_offset(data: bytes, num: int) -> int:
    """Offset of object ``num`` as the current xref says (tests use it to aim edits); for
    files with xref streams, the last ``num 0 obj`` header in the bytes."""
    offsets = xref_entries(data)
    if num in offsets:
        return offsets[num]
    hits = [m.start() for m in re.finditer(rb"(?<![0-9])" + str(num).encode() + rb" 0 obj", data)]
    if not hits:
        raise ValueError(f"object {num} not found")
    return hits[-1]

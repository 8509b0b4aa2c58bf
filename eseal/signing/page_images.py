"""A PDF page as a PNG, rendered by poppler's ``pdftoppm`` in a bounded child process.

The portal shows drafts and sealed files as page images (the legal representative drops the
seal on one; the public verify page outlines each seal). Rendering a hostile PDF is the
riskiest thing the service does with one, so it never happens in the service's process:

* ``pdftoppm`` runs as a child with no shell, a minimal environment, stdin closed, in a
  private temporary directory holding the input file, under ``prlimit`` (address space
  :data:`MEMORY_LIMIT`, CPU seconds, largest file it may write :data:`MAX_RASTER_BYTES`) and
  a wall-clock :data:`RENDER_TIMEOUT` after which it is killed;
* only one page per child (``-f N -l N``), at most :data:`MAX_CONCURRENT` children at once
  (a request waits at most :data:`QUEUE_WAIT` for a slot, then 503 ``RENDERER_BUSY``);
* the page is checked *before* rendering: the document must parse (:func:`read_pdf`: not a
  PDF, truncated, encrypted … are the usual coded 422s), have at most
  :data:`~eseal.signing.page_geometry.MAX_PAGES` pages, the page must exist, the dpi must lie
  in [:data:`MIN_DPI`, :data:`MAX_DPI`] and the image must stay within
  :data:`MAX_SIDE_PX` per side and :data:`MAX_PIXELS` in all;
* after rendering, the image's size must be the one the geometry predicts, or the answer is
  ``PAGE_GEOMETRY_MISMATCH``: a page image whose pixels cannot be mapped to points would put
  a seal in the wrong place, so it is never served.

The child writes a raw PPM raster, and this process encodes the PNG with Pillow from those
raw bytes (after checking the PPM header's size against the geometry and the byte count
against the size): pdftoppm's own PNG writer took 3.1 s for a scanned A4 page at 150 dpi
where rendering took 0.07 s and Pillow encodes it in 0.2 s (``bench/pages.py``). No image
decoder of ours ever reads what the child wrote, only a fixed three-line header.

It renders the visible box (``-cropbox``) with the page's /Rotate applied, as viewers show it;
:class:`~eseal.signing.page_geometry.PageBox` maps its pixels to user space.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eseal.errors import InvalidInput, ServiceUnavailable
from eseal.signing.draft_check import read_pdf
from eseal.signing.page_geometry import PageBox, page_boxes

__all__ = ["DEFAULT_DPI", "MAX_DPI", "MIN_DPI", "PageImage", "document_pages", "render_page",
           "render_pages"]

logger = logging.getLogger(__name__)

MIN_DPI = 36
MAX_DPI = 150
DEFAULT_DPI = 100
#: no side of an image longer than this (A4 at 150 dpi is 1,240 x 1,754)
MAX_SIDE_PX = 4000
#: no image larger than this many pixels (a 3-byte RGB raster of 24 MB)
MAX_PIXELS = 8_000_000
#: the largest raster the child may write (its RLIMIT_FSIZE) and the service will read
MAX_RASTER_BYTES = 3 * MAX_PIXELS + 64
#: zlib level of the PNG (6: a text page is half the size of level 1's, for ~2x the time)
PNG_COMPRESS_LEVEL = 6
#: wall-clock seconds one page may take before the child is killed
RENDER_TIMEOUT = 15.0
#: address space of the child (poppler, its fonts and one raster fit easily)
MEMORY_LIMIT = 1024 * 1024 * 1024
#: children rendering at once; the machine has few cores and other work to do
MAX_CONCURRENT = 2
#: how long a request waits for a free renderer before answering 503
QUEUE_WAIT = 20.0

_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT)
#: what pdftoppm writes before the pixels: "P6", width, height, 255, one byte each between
_PPM_HEADER = re.compile(rb"P6\n([1-9][0-9]{0,5}) ([1-9][0-9]{0,5})\n255\n")


@dataclass(frozen=True)
class PageImage:
    """One rendered page: the PNG, its pixel size, the dpi and the page's geometry."""

    png: bytes
    page: PageBox
    dpi: int
    width_px: int
    height_px: int

    def data_url(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _unavailable(what: str) -> ServiceUnavailable:
    return ServiceUnavailable("RENDERER_UNAVAILABLE", f"the page renderer cannot run: {what}",
                      "页面渲染程序无法运行")


def _tools() -> tuple[str, str]:
    pdftoppm, prlimit = shutil.which("pdftoppm"), shutil.which("prlimit")
    if pdftoppm is None or prlimit is None:
        raise _unavailable("pdftoppm (poppler-utils) or prlimit (util-linux) is not installed")
    return pdftoppm, prlimit


def document_pages(data: bytes, *, field: str = "file") -> list[PageBox]:
    """Every page's geometry; the coded 422 of :func:`read_pdf` / :func:`page_boxes` for a
    file that is not a readable, unencrypted PDF with 1 to ``MAX_PAGES`` pages."""
    reader = read_pdf(data, field)
    try:
        root = reader.root
    except Exception as exc:
        raise InvalidInput("PDF_MALFORMED", "the PDF has no readable catalog",
                           "PDF 目录无法读取", field=field) from exc
    return page_boxes(root, field=field)


def check_dpi(dpi: int) -> int:
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not MIN_DPI <= dpi <= MAX_DPI:
        raise InvalidInput("DPI_OUT_OF_RANGE",
                           f"dpi must be a whole number from {MIN_DPI} to {MAX_DPI}",
                           f"分辨率（dpi）应为 {MIN_DPI} 到 {MAX_DPI} 之间的整数", field="dpi")
    return dpi


def _check_page(boxes: Sequence[PageBox], page: int, dpi: int) -> PageBox:
    if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= len(boxes):
        raise InvalidInput("PAGE_OUT_OF_RANGE",
                           f"page {page} does not exist; the document has {len(boxes)} pages "
                           "(numbered from 1)",
                           f"第 {page} 页不存在；文档共 {len(boxes)} 页（从 1 开始编号）",
                           field="page")
    box = boxes[page - 1]
    w, h = box.pixel_size(dpi)
    if max(w, h) > MAX_SIDE_PX or w * h > MAX_PIXELS:
        raise InvalidInput("PAGE_TOO_LARGE",
                           f"page {page} would be {w} x {h} pixels at {dpi} dpi (at most "
                           f"{MAX_SIDE_PX} per side and {MAX_PIXELS:,} in all); ask a lower dpi",
                           f"第 {page} 页在 {dpi} dpi 下为 {w} x {h} 像素，超出上限，请降低分辨率",
                           field="dpi")
    return box


def _to_png(raster: bytes, box: PageBox, dpi: int) -> tuple[bytes, int, int]:
    """The PNG of pdftoppm's PPM ``raster`` of ``box``, after checking its size."""
    header = _PPM_HEADER.match(raster)
    expected = box.pixel_size(dpi)
    got = (int(header.group(1)), int(header.group(2))) if header else None
    if got is None or abs(got[0] - expected[0]) > 1 or abs(got[1] - expected[1]) > 1:
        raise InvalidInput(
            "PAGE_GEOMETRY_MISMATCH",
            f"page {box.index} rendered as {got} pixels, not the {expected} its page boxes "
            "describe; its pixels cannot be mapped to the page",
            f"第 {box.index} 页的渲染尺寸与页面框不符，无法对应页面坐标", field="page")
    assert header is not None
    width, height = got
    pixels = raster[header.end():]
    if len(pixels) != width * height * 3:
        raise _failed(box.index, "the renderer wrote an incomplete image")
    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(
        out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue(), width, height


def _failed(page: int, why: str) -> InvalidInput:
    return InvalidInput("PAGE_RENDER_FAILED", f"page {page} cannot be rendered: {why}",
                        f"第 {page} 页无法渲染", field="page")


def _run(workdir: Path, page: int, dpi: int, timeout: float) -> bytes:
    pdftoppm, prlimit = _tools()
    out_root = workdir / "page"
    argv = [prlimit, f"--as={MEMORY_LIMIT}", f"--cpu={int(RENDER_TIMEOUT) + 1}",
            f"--fsize={MAX_RASTER_BYTES}", "--core=0",
            pdftoppm, "-q", "-cropbox", "-r", str(dpi), "-f", str(page), "-l", str(page),
            "-singlefile", str(workdir / "in.pdf"), str(out_root)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "HOME": str(workdir)}
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, cwd=workdir,
                              env=env, timeout=timeout, check=False, close_fds=True)
    except subprocess.TimeoutExpired:
        raise InvalidInput("PAGE_RENDER_TIMEOUT",
                           f"page {page} took longer than {timeout:g} s to render",
                           f"第 {page} 页渲染超时（超过 {timeout:g} 秒）", field="page") from None
    except OSError as exc:
        raise _unavailable(type(exc).__name__) from exc
    if done.returncode != 0:
        logger.info("pdftoppm failed on page %d: exit %d: %s", page, done.returncode,
                    done.stderr[-300:].decode("utf-8", "replace"))
        why = (f"the renderer was stopped by signal {-done.returncode}" if done.returncode < 0
               else f"the renderer exited with status {done.returncode}")
        raise _failed(page, why)
    path = out_root.with_suffix(".ppm")
    try:
        size = path.stat().st_size
    except OSError:
        raise _failed(page, "the renderer wrote no image") from None
    if size > MAX_RASTER_BYTES:
        raise _failed(page, f"the image is larger than {MAX_RASTER_BYTES} bytes")
    return path.read_bytes()


def render_pages(data: bytes, pages: Sequence[int], dpi: int = DEFAULT_DPI, *,
                 field: str = "file", boxes: Sequence[PageBox] | None = None,
                 deadline: float | None = None) -> list[PageImage]:
    """Render each of ``pages`` (1-based) at ``dpi``; every check of the module docstring
    applies. ``boxes`` saves reading the geometry again; ``deadline`` (a
    :func:`time.monotonic` value) bounds all pages together."""
    check_dpi(dpi)
    boxes = list(boxes) if boxes is not None else document_pages(data, field=field)
    wanted = [_check_page(boxes, page, dpi) for page in pages]
    images: list[PageImage] = []
    if not wanted:
        return images
    if not _SLOTS.acquire(timeout=QUEUE_WAIT):
        raise ServiceUnavailable("RENDERER_BUSY", "every page renderer is busy; try again shortly",
                         "页面渲染繁忙，请稍后再试")
    try:
        with tempfile.TemporaryDirectory(prefix="eseal-render-") as tmp:
            workdir = Path(tmp)
            (workdir / "in.pdf").write_bytes(data)
            for box in wanted:
                timeout = RENDER_TIMEOUT
                if deadline is not None:
                    timeout = min(timeout, deadline - time.monotonic())
                    if timeout <= 0:
                        raise InvalidInput(
                            "PAGE_RENDER_TIMEOUT", "the pages took too long to render",
                            "页面渲染超时", field="page")
                raster = _run(workdir, box.index, dpi, timeout)
                png, width, height = _to_png(raster, box, dpi)
                images.append(PageImage(png=png, page=box, dpi=dpi, width_px=width,
                                        height_px=height))
    finally:
        _SLOTS.release()
    return images


def render_page(data: bytes, page: int, dpi: int = DEFAULT_DPI, *, field: str = "file",
                boxes: Sequence[PageBox] | None = None) -> PageImage:
    """Page ``page`` (1-based) of ``data`` as a PNG at ``dpi``."""
    return render_pages(data, [page], dpi, field=field, boxes=boxes)[0]

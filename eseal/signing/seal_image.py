"""The round red company seal (公章) drawn as a transparent PNG for the visible signature.

A Chinese company seal is a red ring with the registered name along the upper arc (each
character upright relative to the arc, bottoms toward the centre, evenly spaced, narrowed when
the name is long), a five-pointed star in the middle, the seal's title (公章, 合同专用章 ...)
below it and, on newer seals, the unified social credit code in small characters along the
lower arc, read left to right. The PNG is only the visible mark: the signature is what binds
the document, so the image has to be faithful (every character of the registered name drawn
with a real glyph, see ``fonts``) rather than unique.

Everything is drawn as one coverage mask at several times the final size and reduced, so the
edges are smooth, then the mask becomes the alpha channel of a solid seal-red image.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from eseal.errors import InvalidInput
from eseal.signing.fonts import FontChoice, font_for, is_variation_selector, require_glyphs

SEAL_RED = (224, 0, 15)

MIN_SIZE_PX = 64
MAX_SIZE_PX = 4096
MAX_NAME_CHARS = 60
MAX_TITLE_CHARS = 12
_USCC_SHAPE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")

# Geometry, as fractions of the outer radius R (after GB-style proportions of a 40 mm seal:
# ring ~1.2 mm, name characters ~6-7 mm, star ~14 mm across, title ~4.5 mm).
_MARGIN = 0.015          # keeps the anti-aliased outer edge inside the image
_RING_WIDTH = 0.068
_NAME_SIZE = 0.29        # em size of the name's characters
_NAME_GAP = 0.045        # between the ring and the top of the name
_NAME_SPACING = 1.06     # slot per character at natural width, in em
_NAME_MIN_SPAN = 165.0   # degrees: a short name still spreads over the top half
_NAME_MAX_SPAN = 250.0   # degrees, without a code on the lower arc
_NAME_MAX_SPAN_CODE = 236.0
_STAR_RADIUS = 0.30
_STAR_CENTER_Y = -0.02   # slightly above the centre, leaving room for the title
_TITLE_SIZE = 0.175
_TITLE_CENTER_Y = 0.50
_TITLE_MAX_WIDTH = 1.00
_CODE_SIZE = 0.105
_CODE_GAP = 0.035
_CODE_SLOT = 0.58        # digits are narrow: slot per character in em
_CODE_WIDTH = 0.85       # digits drawn slightly condensed, as engraved
_STROKE = 0.018          # extra stroke (in em) that gives the thin Song face a seal's weight
_NARROW_SLOT = 0.5       # brackets in a name take half a place, drawn centred in it
_NARROW_PUNCTUATION = frozenset("（）()【】〔〕［］《》〈〉「」『』·・")


@dataclass(frozen=True)
class SealSpec:
    """What goes on a seal. ``name`` is the exact registered name (rare characters included)."""

    name: str
    uscc: str | None = None
    title: str | None = None
    size_px: int = 600


def validate_spec(spec: SealSpec) -> None:
    """Refuse a spec that cannot make a faithful seal, naming the offending field."""
    name = spec.name.strip() if isinstance(spec.name, str) else ""
    if not name:
        raise InvalidInput("SEAL_NAME_EMPTY", "the seal needs the enterprise name",
                           "印章必须包含企业名称", field="name")
    if len(_clusters(name)) > MAX_NAME_CHARS:
        raise InvalidInput("SEAL_NAME_TOO_LONG",
                           f"the name is longer than {MAX_NAME_CHARS} characters",
                           f"企业名称超过 {MAX_NAME_CHARS} 个字符", field="name")
    if any(c.isspace() for c in name):
        raise InvalidInput("SEAL_NAME_WHITESPACE", "the name on a seal cannot contain spaces",
                           "印章上的企业名称不能包含空白字符", field="name")
    require_glyphs(name, field="name")
    if spec.uscc is not None and not _USCC_SHAPE.fullmatch(spec.uscc):
        raise InvalidInput("USCC_FORMAT",
                           "the unified social credit code must be 18 characters of "
                           "0-9 and A-Y without I, O, S, V, Z",
                           "统一社会信用代码应为 18 位数字或大写字母（不含 I、O、S、V、Z）",
                           field="uscc")
    if spec.title is not None:
        title = spec.title.strip()
        if len(_clusters(title)) > MAX_TITLE_CHARS or any(c.isspace() for c in title):
            raise InvalidInput("SEAL_TITLE_INVALID",
                               f"the seal title must be at most {MAX_TITLE_CHARS} characters "
                               "without spaces",
                               f"印章名称不能超过 {MAX_TITLE_CHARS} 个字符且不能含空白",
                               field="title")
        require_glyphs(title, field="title")
    if not isinstance(spec.size_px, int) or not MIN_SIZE_PX <= spec.size_px <= MAX_SIZE_PX:
        raise InvalidInput("SEAL_SIZE_INVALID",
                           f"size_px must be between {MIN_SIZE_PX} and {MAX_SIZE_PX}",
                           f"印章像素尺寸应在 {MIN_SIZE_PX} 到 {MAX_SIZE_PX} 之间",
                           field="size_px")


def render_seal(spec: SealSpec) -> bytes:
    """The seal as PNG bytes: RGBA, transparent outside the red marks, ``size_px`` square.

    Drawing takes 0.1-0.5 s, and an enterprise seals many documents with the same seal, so
    recent results are kept (specs are frozen and the bytes immutable)."""
    return _render(spec)


@functools.lru_cache(maxsize=64)
def _render(spec: SealSpec) -> bytes:
    validate_spec(spec)
    mask = seal_mask(spec)
    image = Image.new("RGBA", mask.size, (*SEAL_RED, 0))
    image.putalpha(mask)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def seal_mask(spec: SealSpec) -> Image.Image:
    """The seal's coverage (mode ``L``, 255 = seal red) at ``size_px``, anti-aliased."""
    factor = max(2, min(4, 4096 // spec.size_px))
    side = spec.size_px * factor
    mask = Image.new("L", (side, side), 0)
    center = side / 2
    radius = center * (1 - _MARGIN)
    _draw_ring(mask, center, radius)
    _draw_star(mask, center, center + _STAR_CENTER_Y * radius, _STAR_RADIUS * radius)
    name = _clusters(spec.name.strip())
    max_span = _NAME_MAX_SPAN_CODE if spec.uscc else _NAME_MAX_SPAN
    _draw_upper_arc(mask, name, center, radius, max_span)
    if spec.title and spec.title.strip():
        _draw_title(mask, _clusters(spec.title.strip()), center, radius)
    if spec.uscc:
        _draw_lower_arc(mask, _clusters(spec.uscc), center, radius)
    return mask.reduce(factor)


# -- text units -------------------------------------------------------------------------------
def _clusters(text: str) -> list[str]:
    """Characters with any variation selector kept on the character it modifies."""
    out: list[str] = []
    for char in text:
        if out and is_variation_selector(char):
            out[-1] += char
        else:
            out.append(char)
    return out


@functools.lru_cache(maxsize=64)
def _font(choice: FontChoice, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(choice.path, size, index=choice.index)


def _glyph_tile(cluster: str, em: float, width_scale: float = 1.0, *,
                ink_centred: bool = False) -> Image.Image:
    """One character centred in a square tile (ideographic em box centre at the tile centre,
    or its ink's horizontal centre for brackets), narrowed horizontally by ``width_scale``."""
    choice = font_for(cluster[0])
    size = max(4, round(em))
    font = _font(choice, size)
    tile_side = int(size * 2)
    tile = Image.new("L", (tile_side, tile_side), 0)
    draw = ImageDraw.Draw(tile)
    stroke = max(0, round(size * _STROKE))
    baseline = tile_side / 2 + choice.em_center * size
    draw.text((tile_side / 2, baseline), cluster, fill=255, font=font, anchor="ms",
              stroke_width=stroke, stroke_fill=255)
    if ink_centred:
        box = tile.getbbox()
        if box is not None:
            shift = round(tile_side / 2 - (box[0] + box[2]) / 2)
            tile = tile.transform(tile.size, Image.Transform.AFFINE, (1, 0, -shift, 0, 1, 0))
    if width_scale < 0.999:
        narrow = max(1, round(tile_side * width_scale))
        squeezed = tile.resize((narrow, tile_side), Image.Resampling.LANCZOS)
        tile = Image.new("L", (tile_side, tile_side), 0)
        tile.paste(squeezed, ((tile_side - narrow) // 2, 0))
    return tile


def _stamp(mask: Image.Image, tile: Image.Image, x: float, y: float,
           clockwise_deg: float = 0.0) -> None:
    """Add ``tile`` to the mask centred on (x, y), turned clockwise by ``clockwise_deg``."""
    if abs(clockwise_deg) > 1e-6:
        tile = tile.rotate(-clockwise_deg, resample=Image.Resampling.BICUBIC)
    left = round(x - tile.width / 2)
    top = round(y - tile.height / 2)
    mask.paste(255, (left, top, left + tile.width, top + tile.height), tile)


def _polar(center: float, r: float, clockwise_from_top_deg: float) -> tuple[float, float]:
    a = math.radians(clockwise_from_top_deg)
    return center + r * math.sin(a), center - r * math.cos(a)


# -- the parts of a seal ----------------------------------------------------------------------
def _draw_ring(mask: Image.Image, center: float, radius: float) -> None:
    draw = ImageDraw.Draw(mask)
    width = radius * _RING_WIDTH
    draw.ellipse((center - radius, center - radius, center + radius, center + radius), fill=255)
    inner = radius - width
    draw.ellipse((center - inner, center - inner, center + inner, center + inner), fill=0)


def _draw_star(mask: Image.Image, cx: float, cy: float, outer: float) -> None:
    inner = outer * math.sin(math.radians(18)) / math.sin(math.radians(54))
    points = []
    for i in range(10):
        r = outer if i % 2 == 0 else inner
        a = math.radians(i * 36)
        points.append((cx + r * math.sin(a), cy - r * math.cos(a)))
    ImageDraw.Draw(mask).polygon(points, fill=255)


def _arc_layout(slots: float, em: float, r: float, min_span: float,
                max_span: float) -> tuple[float, float]:
    """(span in degrees, width scale) so ``slots`` em-wide slots fit the arc, narrowed if needed."""
    natural = math.degrees(slots * em / r)
    span = min(max(natural, min_span * min(1.0, slots / 6)), max_span)
    scale = min(1.0, span / natural) if natural else 1.0
    return span, scale


def _slot(cluster: str) -> float:
    """Width of a character's place on the arc, in em: brackets take half a place."""
    return _NAME_SPACING * (_NARROW_SLOT if cluster[0] in _NARROW_PUNCTUATION else 1.0)


def _draw_upper_arc(mask: Image.Image, name: list[str], center: float, radius: float,
                    max_span: float) -> None:
    em = _NAME_SIZE * radius
    slots = [_slot(c) for c in name]
    r = radius * (1 - _RING_WIDTH - _NAME_GAP) - em / 2
    span, scale = _arc_layout(sum(slots), em, r, _NAME_MIN_SPAN, max_span)
    if scale < 0.55:
        # Very long names: give up some height too, so characters do not become slivers.
        em *= max(0.78, scale / 0.55)
        r = radius * (1 - _RING_WIDTH - _NAME_GAP) - em / 2
        span, scale = _arc_layout(sum(slots), em, r, _NAME_MIN_SPAN, max_span)
    per_slot = span / sum(slots)
    angle = -span / 2
    for cluster, slot in zip(name, slots, strict=True):
        middle = angle + slot * per_slot / 2
        x, y = _polar(center, r, middle)
        _stamp(mask, _glyph_tile(cluster, em, scale, ink_centred=slot < _NAME_SPACING),
               x, y, middle)
        angle += slot * per_slot


def _draw_lower_arc(mask: Image.Image, code: list[str], center: float, radius: float) -> None:
    em = _CODE_SIZE * radius
    r = radius * (1 - _RING_WIDTH - _CODE_GAP) - em / 2
    natural = math.degrees(len(code) * em * _CODE_SLOT / r)
    step = natural / len(code)
    # Read left to right with the tops toward the centre: start at the lower left.
    for i, angle in enumerate(_angles(len(code), 180 + natural / 2, -step)):
        x, y = _polar(center, r, angle)
        _stamp(mask, _glyph_tile(code[i], em, _CODE_WIDTH), x, y, angle - 180)


def _draw_title(mask: Image.Image, title: list[str], center: float, radius: float) -> None:
    em = _TITLE_SIZE * radius
    width = len(title) * em
    scale = min(1.0, _TITLE_MAX_WIDTH * radius / width)
    step = em * scale
    y = center + _TITLE_CENTER_Y * radius
    x0 = center - step * (len(title) - 1) / 2
    for i, cluster in enumerate(title):
        _stamp(mask, _glyph_tile(cluster, em, scale), x0 + i * step, y)


def _angles(count: int, start: float, step: float) -> Iterator[float]:
    for i in range(count):
        yield start + (i + 0.5) * step

"""Which font draws each character of a seal, decided per character from the fonts' cmaps.

A registered enterprise name may hold rare characters (𠮷 U+20BB7, 𤭢 U+24B62 ...) that a
common CJK font lacks; drawn with that font they come out as a blank box (.notdef), and a seal
showing the wrong name is worse than no seal. So every character is looked up in an ordered
list of faces: Noto Serif CJK SC (the Song style seals use), then HanaMin A and HanaMin B
(fonts-hanazono; B holds the supplementary ideograph planes). The first face whose cmap maps
the character draws it; if none does, the seal is refused with ``GLYPH_MISSING`` naming the
character, before anything is drawn.

Faces are opened lazily with fontTools and their cmaps cached for the life of the process
(reading one costs ~0.1 s).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from fontTools.ttLib import TTCollection, TTFont

from eseal.errors import ConfigError, InvalidInput

NOTO_SERIF_CJK_DIR = "/usr/share/fonts/opentype/noto"
HANAZONO_DIR = "/usr/share/fonts/truetype/hanazono"

# (file, wanted face name or None for a single-face file), in order of preference. All are
# regular weights, so a name mixing them has one stroke weight; the seal thickens them alike.
FACE_CANDIDATES: tuple[tuple[str, str | None], ...] = (
    (f"{NOTO_SERIF_CJK_DIR}/NotoSerifCJK-Regular.ttc", "Noto Serif CJK SC"),
    (f"{HANAZONO_DIR}/HanaMinA.ttf", None),
    (f"{HANAZONO_DIR}/HanaMinB.ttf", None),
)

# Variation selectors (VS1-16, VS17-256) modify the character before them; they are drawn
# with it and need no glyph of their own in the cmap.
_VARIATION_SELECTORS = (range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0))


@dataclass(frozen=True)
class FontChoice:
    """One face of one font file: what Pillow needs to draw with it."""

    path: str
    index: int
    name: str
    em_center: float  # height of the ideographic em box's centre above the baseline, in em

    def __str__(self) -> str:
        return f"{self.name} ({os.path.basename(self.path)}#{self.index})"


def is_variation_selector(char: str) -> bool:
    cp = ord(char)
    return any(cp in r for r in _VARIATION_SELECTORS)


def codepoint(char: str) -> str:
    """``U+20BB7`` style name of a character, as error messages show it."""
    return f"U+{ord(char):04X}"


def _face_index(path: str, wanted: str | None) -> int | None:
    if wanted is None:
        return 0
    collection = TTCollection(path, lazy=True)
    try:
        for index, face in enumerate(collection.fonts):
            if face["name"].getDebugName(4) == wanted:
                return index
    finally:
        collection.close()
    return None


@functools.lru_cache(maxsize=1)
def _faces() -> tuple[tuple[FontChoice, frozenset[int]], ...]:
    """Every installed candidate face with the set of code points its cmap maps."""
    faces: list[tuple[FontChoice, frozenset[int]]] = []
    for path, wanted in FACE_CANDIDATES:
        if not os.path.isfile(path):
            continue
        index = _face_index(path, wanted)
        if index is None:
            continue
        font = TTFont(path, fontNumber=index, lazy=True)
        try:
            cmap = frozenset(font.getBestCmap() or {})
            name = font["name"].getDebugName(4) or os.path.basename(path)
            upm = font["head"].unitsPerEm
            os2 = font["OS/2"]
            # CJK fonts set the typo ascender/descender to the ideographic em box.
            center = (os2.sTypoAscender + os2.sTypoDescender) / 2 / upm
        finally:
            font.close()
        faces.append((FontChoice(path, index, name, center), cmap))
    if not faces:
        raise ConfigError(
            "FONTS_MISSING",
            "no CJK font for seals is installed: install fonts-noto-cjk and fonts-hanazono",
            "未安装印章所需的中文字体：请安装 fonts-noto-cjk 和 fonts-hanazono",
        )
    return tuple(faces)


def installed_faces() -> tuple[FontChoice, ...]:
    """The faces in use, in order of preference."""
    return tuple(choice for choice, _ in _faces())


def _lookup(char: str) -> FontChoice | None:
    cp = ord(char)
    for choice, cmap in _faces():
        if cp in cmap:
            return choice
    return None


def font_for(char: str) -> FontChoice:
    """The first face that has a glyph for ``char``; ``GLYPH_MISSING`` if none has."""
    if len(char) != 1:
        raise InvalidInput("GLYPH_MISSING", f"expected one character, got {char!r}",
                           f"应为单个字符：{char!r}", field="char")
    choice = _lookup(char)
    if choice is None:
        raise InvalidInput(
            "GLYPH_MISSING",
            f"no installed font has a glyph for {char!r} ({codepoint(char)})",
            f"已安装的字体中没有字符“{char}”（{codepoint(char)}）的字形",
            field="char",
            details={"characters": [codepoint(char)]},
        )
    return choice


def missing_glyphs(text: str) -> list[str]:
    """The distinct characters of ``text`` no installed face can draw, in order of appearance."""
    missing: list[str] = []
    for char in text:
        if is_variation_selector(char) or char in missing:
            continue
        if _lookup(char) is None:
            missing.append(char)
    return missing


def require_glyphs(text: str, *, field: str) -> None:
    """Refuse ``text`` (naming ``field`` and each character) if any glyph is missing."""
    missing = missing_glyphs(text)
    if missing:
        names = ", ".join(f"{c!r} ({codepoint(c)})" for c in missing)
        names_zh = "、".join(f"“{c}”（{codepoint(c)}）" for c in missing)
        raise InvalidInput(
            "GLYPH_MISSING",
            f"{field} has characters no installed font can draw: {names}",
            f"{field} 中有字体无法显示的字符：{names_zh}",
            field=field,
            details={"characters": [codepoint(c) for c in missing]},
        )

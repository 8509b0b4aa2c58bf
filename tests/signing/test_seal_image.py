"""The seal image: every character of a registered name drawn with a real glyph, a red ring on
a transparent background, the code on the lower arc only when given."""

from __future__ import annotations

import io

import pytest
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw

from eseal.errors import InvalidInput
from eseal.signing.fonts import font_for, installed_faces, missing_glyphs
from eseal.signing.seal_image import SEAL_RED, SealSpec, render_seal

RARE_NAMES = [
    "𠮷野家（北京）餐饮管理有限公司",
    "𡈼䶮堃喆𤭢𪚥贸易有限公司",
]
USCC = "91110108551385082Q"


def _alpha(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.mode == "RGBA"
    return image.getchannel("A")


@pytest.mark.parametrize("name", RARE_NAMES)
def test_every_character_of_a_rare_name_maps_to_a_real_glyph_in_the_chosen_font(
        name: str) -> None:
    assert missing_glyphs(name) == []
    cmaps: dict[tuple[str, int], dict[int, str]] = {}
    for char in name:
        choice = font_for(char)
        key = (choice.path, choice.index)
        if key not in cmaps:  # read independently of eseal's cache
            font = TTFont(choice.path, fontNumber=choice.index, lazy=True)
            cmaps[key] = font.getBestCmap()
            font.close()
        glyph = cmaps[key].get(ord(char))
        assert glyph is not None and glyph != ".notdef", (char, hex(ord(char)), choice)


def test_characters_the_song_face_lacks_fall_back_to_hanamin() -> None:
    primary = installed_faces()[0]
    assert "Noto Serif CJK SC" in primary.name
    assert font_for("公") == primary
    assert font_for("𠮷") == primary  # U+20BB7 is in Noto Serif CJK
    assert font_for("𪚥").name.startswith("HanaMinA")  # U+2A6A5
    assert font_for("𤭢").name.startswith("HanaMinB")  # U+24B62: only in the B plane font


def test_a_character_no_font_can_draw_is_refused_by_code_point() -> None:
    with pytest.raises(InvalidInput) as exc:
        font_for("\U00031350")
    assert exc.value.code == "GLYPH_MISSING"
    assert "U+31350" in exc.value.message
    with pytest.raises(InvalidInput) as exc:
        render_seal(SealSpec("北京\U00031350科技有限公司"))
    assert exc.value.code == "GLYPH_MISSING"
    assert exc.value.field == "name"
    assert exc.value.details["characters"] == ["U+31350"]


def test_seal_png_is_rgba_with_transparent_corners_and_an_opaque_red_ring() -> None:
    png = render_seal(SealSpec(RARE_NAMES[0], uscc=USCC, title="公章", size_px=600))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (600, 600)
    for corner in [(0, 0), (599, 0), (0, 599), (599, 599), (40, 40), (560, 560)]:
        assert image.getpixel(corner)[3] == 0, corner
    # the ring runs from radius ~295 to ~275: sample its middle at the four compass points
    for point in [(300, 15), (15, 300), (585, 300), (300, 585)]:
        r, g, b, a = image.getpixel(point)
        assert a == 255 and (r, g, b) == SEAL_RED, point
    assert image.getpixel((300, 300))[3] == 255  # the star's centre
    assert image.getpixel((300, 31))[3] == 0  # the gap between the ring and the name


def test_nothing_is_drawn_outside_the_ring_even_for_a_very_long_name() -> None:
    name = "中华人民共和国北京市海淀区中关村大街某某某某某某某某某信息技术股份有限公司"
    alpha = _alpha(render_seal(SealSpec(name, uscc=USCC, title="合同专用章", size_px=400)))
    outside = alpha.copy()
    ImageDraw.Draw(outside).ellipse((1, 1, 398, 398), fill=0)
    assert outside.getbbox() is None


def test_code_is_drawn_on_the_lower_arc_only_when_given() -> None:
    def lower_band_ink(spec: SealSpec) -> int:
        alpha = _alpha(render_seal(spec))
        band = alpha.crop((240, 500, 360, 555))  # the lower arc, between the ring and the title
        return sum(band.point(lambda v: 1 if v > 128 else 0).histogram()[1:])

    assert lower_band_ink(SealSpec("北京堃喆科技有限公司", title="公章")) == 0
    assert lower_band_ink(SealSpec("北京堃喆科技有限公司", uscc=USCC, title="公章")) > 200


@pytest.mark.parametrize(("spec", "code", "field"), [
    (SealSpec(""), "SEAL_NAME_EMPTY", "name"),
    (SealSpec("北京 科技有限公司"), "SEAL_NAME_WHITESPACE", "name"),
    (SealSpec("北京科技有限公司", uscc="91110108551385082"), "USCC_FORMAT", "uscc"),
    (SealSpec("北京科技有限公司", uscc="9111010855138508IO"), "USCC_FORMAT", "uscc"),
    (SealSpec("北京科技有限公司", title="一二三四五六七八九十一二三"), "SEAL_TITLE_INVALID",
     "title"),
    (SealSpec("北京科技有限公司", size_px=10), "SEAL_SIZE_INVALID", "size_px"),
])
def test_bad_seal_specs_are_refused_naming_the_field(spec: SealSpec, code: str,
                                                      field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        render_seal(spec)
    assert (exc.value.code, exc.value.field) == (code, field)

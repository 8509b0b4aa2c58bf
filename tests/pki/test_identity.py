"""Enterprise identity rules: USCC check characters and names stored exactly as registered."""

from __future__ import annotations

import random

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from eseal.errors import InvalidInput
from eseal.pki.identity import (
    USCC_ALPHABET,
    USCC_WEIGHTS,
    describe_name_mismatch,
    name_mismatch,
    organization_identifier,
    uscc_of_name,
    uscc_of_organization_identifier,
    validate_chinese_enterprise_name,
    validate_person_name,
    validate_registered_name,
    validate_uscc,
)
from eseal.pki.oids import ORGANIZATION_IDENTIFIER

# Published codes. The first two come from the project brief; the others are the codes of
# well-known companies as printed in their public filings (Tencent's Shenzhen entity, Huawei
# Technologies, Xiaomi Technology, Alibaba (China)). Each one's check character agrees with
# GB 32100, which a mistyped or invented code does only 1 time in 31.
PUBLISHED = [
    "91350100M000100Y43",
    "91110000802100433B",
    "91440300708461136T",
    "914403001922038216",
    "91110108551385082Q",
    "91330100716105852F",
]

# The weights exactly as GB 32100-2015 tabulates them, written out rather than computed, so
# the implementation's 3**i mod 31 is checked against the standard's table.
GB32100_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def reference_check_character(first17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, GB32100_WEIGHTS, strict=True))
    check = 31 - total % 31
    return USCC_ALPHABET[0 if check == 31 else check]


def computed_codes(n: int = 6) -> list[str]:
    rng = random.Random(32100)
    codes = []
    for _ in range(n):
        first = "9" + rng.choice("123") + "".join(rng.choice("0123456789") for _ in range(6))
        first += "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
        codes.append(first + reference_check_character(first))
    return codes


KNOWN_GOOD = PUBLISHED + computed_codes()


def refusal(code: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as exc:
        validate_uscc(code)
    assert exc.value.field == "uscc"
    return exc.value


def test_weights_are_the_gb32100_table() -> None:
    assert USCC_WEIGHTS == GB32100_WEIGHTS


@pytest.mark.parametrize("code", KNOWN_GOOD)
def test_valid_codes_are_accepted_unchanged(code: str) -> None:
    assert validate_uscc(code) is code
    assert organization_identifier(code) == f"NTRCN-{code}"


@pytest.mark.parametrize("code", KNOWN_GOOD)
def test_the_organization_identifier_parses_back_to_the_code_it_was_built_from(code: str) -> None:
    built = organization_identifier(code)
    assert uscc_of_organization_identifier(built) == code
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "某公司"),
                      x509.NameAttribute(ORGANIZATION_IDENTIFIER, built)])
    assert uscc_of_name(name) == code


@pytest.mark.parametrize("value", [
    "VATDE-123456789",  # another register's identifier
    "ntrcn-91350100M000100Y43",  # the prefix is case-sensitive (ETSI EN 319 412-1)
    "NTRC-91350100M000100Y43",
    "91350100M000100Y43",  # a bare code is not an organizationIdentifier
    "",
])
def test_an_identifier_of_another_form_names_no_code(value: str) -> None:
    assert uscc_of_organization_identifier(value) is None


def test_a_name_without_an_organization_identifier_names_no_code() -> None:
    assert uscc_of_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "张三")])) is None


def test_check_value_31_maps_to_character_zero() -> None:
    # Search a prefix whose weighted sum is 0 mod 31: its check character must be "0".
    rng = random.Random(7)
    while True:
        first = "91" + "".join(rng.choice(USCC_ALPHABET) for _ in range(15))
        total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first, GB32100_WEIGHTS, strict=True))
        if total % 31 == 0:
            break
    assert validate_uscc(first + "0")
    assert refusal(first + "1").code == "USCC_CHECKSUM"


@pytest.mark.parametrize("code", KNOWN_GOOD)
def test_every_single_character_substitution_is_rejected(code: str) -> None:
    for pos in range(18):
        for ch in USCC_ALPHABET:
            if ch == code[pos]:
                continue
            corrupted = code[:pos] + ch + code[pos + 1:]
            err = refusal(corrupted)
            assert err.code == "USCC_CHECKSUM", (corrupted, err.code)
            assert err.details == {"position": 18, "expected": reference_check_character(
                corrupted[:17]), "given": corrupted[17]}


def test_checksum_error_names_position_18_and_both_characters() -> None:
    err = refusal("91350100M000100Y44")
    assert "position 18" in err.message
    assert "'3'" in err.message and "'4'" in err.message
    assert "第 18 位" in err.message_zh


@pytest.mark.parametrize("bad", ["I", "O", "S", "V", "Z", "-", "９", "吉", "\x00"])
@pytest.mark.parametrize("pos", [1, 2, 9, 17, 18])
def test_characters_outside_the_alphabet_are_named_by_position(bad: str, pos: int) -> None:
    code = PUBLISHED[0]
    err = refusal(code[:pos - 1] + bad + code[pos:])
    assert err.code == "USCC_CHARACTER"
    assert err.details == {"position": pos, "character": bad}
    assert f"character {pos}" in err.message and f"第 {pos} 位" in err.message_zh


def test_lowercase_is_refused_and_the_message_asks_for_uppercase() -> None:
    err = refusal("91350100m000100Y43")
    assert err.code == "USCC_CHARACTER"
    assert err.details["position"] == 9
    assert "uppercase" in err.message and "大写" in err.message_zh
    assert refusal(PUBLISHED[1].lower()).code == "USCC_CHARACTER"


def test_whitespace_is_refused_not_trimmed() -> None:
    code = PUBLISHED[0]
    for padded in (" " + code, code + " ", code + "\n"):
        err = refusal(padded)
        assert err.code == "USCC_LENGTH"
        assert "whitespace" in err.message
    err = refusal(code[:9] + " " + code[10:])
    assert err.code == "USCC_CHARACTER" and err.details["position"] == 10


@pytest.mark.parametrize("code", ["", "9135010", PUBLISHED[0][:17], PUBLISHED[0] + "3",
                                  "913501001M000100Y43"])
def test_wrong_length_is_refused(code: str) -> None:
    err = refusal(code)
    assert err.code == "USCC_LENGTH"
    assert err.details == {"length": len(code)}


# --- names -------------------------------------------------------------------------------

YOSHINOYA = "𠮷野家（北京）餐饮管理有限公司"


def name_refusal(name: str, field: str = "registered_name") -> InvalidInput:
    with pytest.raises(InvalidInput) as exc:
        validate_registered_name(name, field)
    assert exc.value.field == field
    return exc.value


@pytest.mark.parametrize("name", [
    YOSHINOYA,
    "北京小米科技有限责任公司",
    "Tencent Technology (Shenzhen) Company Limited",  # inner spaces are part of some names
    "\u9fff\U00031350测试有限公司",  # U+31350 (Ext. H) is unassigned in Python 3.11
    "x" * 200,
])
def test_registered_names_are_returned_exactly_as_given(name: str) -> None:
    assert validate_registered_name(name) is name


def test_supplementary_plane_character_is_one_character_not_two() -> None:
    assert len(YOSHINOYA) == 15 and ord(YOSHINOYA[0]) == 0x20BB7
    assert validate_registered_name(YOSHINOYA).encode("utf-8")[:4] == b"\xf0\xa0\xae\xb7"


@pytest.mark.parametrize("name", ["\uf900", "\uf900山餐饮有限公司", "北京\uf92c有限公司"])
def test_compatibility_ideographs_are_refused_rather_than_normalised(name: str) -> None:
    err = name_refusal(name)
    assert err.code == "NAME_NOT_NFC"
    assert "compatibility ideograph" in err.message and "NFC" in err.message
    assert "兼容汉字" in err.message_zh


def test_unified_ideographs_inside_the_compatibility_block_are_accepted() -> None:
    # U+FA0E 﨎 has no decomposition (one of the twelve unified ideographs in that block).
    assert validate_registered_name("北京\ufa0e有限公司") == "北京\ufa0e有限公司"


def test_decomposed_text_is_refused_with_the_position() -> None:
    err = name_refusal("Cafe\u0301 Co")
    assert err.code == "NAME_NOT_NFC"
    assert err.details == {"position": 4}


@pytest.mark.parametrize("name", [" 𠮷野家", "𠮷野家 ", "\u3000𠮷野家", "𠮷野家\u3000", "\t𠮷野家",
                                  "𠮷野家\u00a0"])
def test_leading_or_trailing_whitespace_is_refused(name: str) -> None:
    assert name_refusal(name).code == "NAME_WHITESPACE"


@pytest.mark.parametrize("ch", ["\x00", "\n", "\r", "\x7f", "\x85", "\u200b", "\u202e",
                                "\ufeff", "\u2028"])
def test_control_and_invisible_characters_are_refused(ch: str) -> None:
    err = name_refusal("𠮷野" + ch + "家")
    assert err.code == "NAME_CONTROL_CHARACTER"
    assert err.details == {"position": 3, "codepoint": f"U+{ord(ch):04X}"}


@pytest.mark.parametrize("name", ["\ud842", "野\udfb7家", "\ud842\udfb7野家"])
def test_surrogate_code_points_are_refused(name: str) -> None:
    assert name_refusal(name).code == "NAME_SURROGATE"


def test_empty_and_overlong_names_are_refused() -> None:
    assert name_refusal("").code == "NAME_EMPTY"
    err = name_refusal("公" * 201)
    assert err.code == "NAME_TOO_LONG" and err.details == {"length": 201, "limit": 200}


def test_person_names_follow_the_same_rules_and_keep_interpuncts() -> None:
    assert validate_person_name("阿沛·阿旺晋美", "legal_rep") == "阿沛·阿旺晋美"
    assert validate_person_name("𠮷田太郎", "holder") == "𠮷田太郎"
    for bad, code in ((" 张三", "NAME_WHITESPACE"), ("张\u200b三", "NAME_CONTROL_CHARACTER"),
                      ("\uf900三", "NAME_NOT_NFC"), ("", "NAME_EMPTY")):
        with pytest.raises(InvalidInput) as exc:
            validate_person_name(bad, "legal_rep")
        assert (exc.value.code, exc.value.field) == (code, "legal_rep")


# --- explaining mismatches ---------------------------------------------------------------

def test_identical_names_have_no_mismatch() -> None:
    assert name_mismatch(YOSHINOYA, YOSHINOYA) is None
    assert describe_name_mismatch(YOSHINOYA, YOSHINOYA) is None


def test_look_alike_character_is_named_with_code_points() -> None:
    how = describe_name_mismatch(YOSHINOYA, "吉野家（北京）餐饮管理有限公司")
    assert how is not None and how.position == 1
    assert "different character" in how.en
    assert "U+20BB7" in how.en and "U+5409" in how.en
    assert "第 1 个字符" in how.zh and "字符不同" in how.zh


def test_pinyin_instead_of_characters_is_recognised() -> None:
    how = name_mismatch("北京小米科技有限责任公司", "北京xiaomi科技有限责任公司")
    assert how is not None
    assert how.startswith("at character 3") and "pinyin" in how


def test_half_width_brackets_are_recognised() -> None:
    how = describe_name_mismatch(YOSHINOYA, "𠮷野家(北京)餐饮管理有限公司")
    assert how is not None and how.position == 4
    assert "full-width/half-width" in how.en and "全角/半角" in how.zh


def test_unnormalised_twin_is_recognised() -> None:
    how = name_mismatch("豈山有限公司", "\uf900山有限公司")
    assert how is not None and "not NFC" in how


def test_extra_missing_and_whitespace_differences() -> None:
    assert "extra characters" in (name_mismatch("小米科技", "小米科技公司") or "")
    assert "missing characters" in (name_mismatch("小米科技公司", "小米科技") or "")
    assert "whitespace" in (name_mismatch("Acme Co", "Acme  Co") or "")


# --- a Chinese enterprise's registered name is written in Chinese characters -------------------
@pytest.mark.parametrize("name", ["Zhangsan Keji", "Zhangsan Keji Youxian Gongsi",
                                  "Xi'an Huawei", "zhang-san"])
def test_a_registered_name_typed_in_pinyin_is_refused_naming_the_field(name: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_chinese_enterprise_name(name)
    err = exc.value
    assert (err.code, err.field, err.details["pinyin"]) == ("NAME_NOT_CHINESE", "name", True)
    assert "pinyin" in err.message and "拼音" in err.message_zh


@pytest.mark.parametrize("name", ["12345", "ACME (Beijing) Co., Ltd."])
def test_a_registered_name_without_any_han_character_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_chinese_enterprise_name(name, "registered_name")
    assert (exc.value.code, exc.value.field) == ("NAME_NOT_CHINESE", "registered_name")


@pytest.mark.parametrize("name", [YOSHINOYA, "TCL科技集团股份有限公司", "\U00031350有限公司",
                                  "北京\ufa0e有限公司"])
def test_chinese_names_with_latin_letters_or_rare_characters_pass_unchanged(name: str) -> None:
    assert validate_chinese_enterprise_name(name) is name


def test_the_general_name_rules_come_before_the_chinese_rule() -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_chinese_enterprise_name(" Zhangsan")
    assert exc.value.code == "NAME_WHITESPACE"

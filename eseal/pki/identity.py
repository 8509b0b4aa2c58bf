"""Enterprise identity rules: the unified social credit code and registered names.

An enterprise is identified by its 18-character unified social credit code (统一社会信用代码,
USCC, GB 32100-2015) together with its exact registered name. Both end up byte for byte in
certificates (``organizationIdentifier`` ``NTRCN-<USCC>`` and ``O``/``CN``), so this module
refuses anything that would have to be "cleaned up" first instead of cleaning it: a name is
stored exactly as given, with no trimming, width folding or Unicode normalisation, because a
silent rewrite is how a rare character such as 𠮷 turns into 吉 on its way to a seal.

It also explains mismatches: the classic "信息不一致" failure is a name typed in pinyin, with a
half-width bracket, or with a look-alike character, and the error must say where.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from eseal.errors import InvalidInput
from eseal.pki.oids import ORGANIZATION_IDENTIFIER

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_LENGTH = 18
# Weight of position i (0-based) is 3**i mod 31 (GB 32100-2015, 5.2).
USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(USCC_LENGTH - 1))
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_ALPHABET)}

NAME_MAX_LENGTH = 200


def _codepoint(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def uscc_check_character(first17: str) -> str:
    """The check character (position 18) for the first 17 characters of a USCC.

    The caller must have checked that all 17 are in :data:`USCC_ALPHABET`.
    """
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def validate_uscc(code: str) -> str:
    """Return ``code`` unchanged if it is a well-formed USCC, else raise ``InvalidInput``.

    Only the alphabet and the check character are verified. GB 32100 assigns position 1 (the
    registering authority: 1 机构编制, 5 民政, 9 工商, Y 其他, ...) and position 2 (entity type)
    from lists that authorities have extended since 2015 (e.g. ``A`` for the military), so a
    stricter check would reject real codes issued under a later list; we do not make one.
    Lowercase and surrounding whitespace are refused, not repaired: the licence prints the
    code in uppercase and a repaired code would not be what the applicant typed.
    """
    if not isinstance(code, str):
        raise InvalidInput("USCC_LENGTH", "the unified social credit code must be text",
                           "统一社会信用代码必须为文本", field="uscc")
    if len(code) != USCC_LENGTH:
        hint_en = hint_zh = ""
        if code != code.strip():
            hint_en = " (it has leading or trailing whitespace, which is not removed for you)"
            hint_zh = "（含首尾空白字符，系统不会自动去除）"
        raise InvalidInput(
            "USCC_LENGTH",
            f"the unified social credit code must be exactly 18 characters, got {len(code)}"
            + hint_en,
            f"统一社会信用代码必须为 18 位，实际为 {len(code)} 位" + hint_zh,
            field="uscc", details={"length": len(code)},
        )
    for pos, ch in enumerate(code, start=1):
        if ch in _USCC_VALUE:
            continue
        if ch.upper() in _USCC_VALUE and ch != ch.upper():
            why_en = (" (lowercase is not accepted: enter the code in uppercase exactly as "
                      "printed on the business licence)")
            why_zh = "（不接受小写字母：请按营业执照上的大写形式填写）"
        elif ch.isspace():
            why_en, why_zh = " (whitespace is not allowed)", "（不允许空白字符）"
        else:
            why_en = f" (allowed: {USCC_ALPHABET}; the letters I, O, S, V and Z are never used)"
            why_zh = f"（允许的字符：{USCC_ALPHABET}，不使用 I、O、S、V、Z）"
        raise InvalidInput(
            "USCC_CHARACTER",
            f"character {pos} of the unified social credit code, {ch!r} ({_codepoint(ch)}), "
            f"is not allowed{why_en}",
            f"统一社会信用代码第 {pos} 位字符 {ch!r}（{_codepoint(ch)}）不合法{why_zh}",
            field="uscc", details={"position": pos, "character": ch},
        )
    expected = uscc_check_character(code[:17])
    if code[17] != expected:
        raise InvalidInput(
            "USCC_CHECKSUM",
            f"the check character (position 18) of the unified social credit code is "
            f"{code[17]!r} but the first 17 characters require {expected!r}: "
            f"a character was probably mistyped",
            f"统一社会信用代码第 18 位校验码应为 {expected!r}，实际为 {code[17]!r}，"
            f"可能有字符录入错误",
            field="uscc", details={"position": 18, "expected": expected, "given": code[17]},
        )
    return code


ORGANIZATION_IDENTIFIER_PREFIX = "NTRCN-"  # ETSI EN 319 412-1: national trade register, CN


def organization_identifier(uscc: str) -> str:
    """The ETSI EN 319 412-1 ``organizationIdentifier`` value for a Chinese legal person."""
    return f"{ORGANIZATION_IDENTIFIER_PREFIX}{validate_uscc(uscc)}"


def uscc_of_organization_identifier(value: str) -> str | None:
    """The code an ``NTRCN-`` organizationIdentifier names, or None for any other value.

    Not validated: a relying party reads foreign certificates and must report what they say;
    whoever acts on the code (issuance) validates it. Built and parsed only here, so the
    prefix cannot be spelled differently in two places.
    """
    if not value.startswith(ORGANIZATION_IDENTIFIER_PREFIX):
        return None
    return value[len(ORGANIZATION_IDENTIFIER_PREFIX):]


def uscc_of_name(name: x509.Name) -> str | None:
    """The code of a subject's first organizationIdentifier (None without an ``NTRCN-`` one)."""
    values = name.get_attributes_for_oid(ORGANIZATION_IDENTIFIER)
    return uscc_of_organization_identifier(str(values[0].value)) if values else None


def _validate_name(name: str, field: str, what_en: str, what_zh: str) -> str:
    if not isinstance(name, str):
        raise InvalidInput("NAME_EMPTY", f"{what_en} must be text", f"{what_zh}必须为文本",
                           field=field)
    if not name:
        raise InvalidInput("NAME_EMPTY", f"{what_en} is empty", f"{what_zh}为空", field=field)
    if name[0].isspace() or name[-1].isspace():
        end = "leading" if name[0].isspace() else "trailing"
        end_zh = "开头" if end == "leading" else "末尾"
        raise InvalidInput(
            "NAME_WHITESPACE",
            f"{what_en} has {end} whitespace; names are stored exactly as given, "
            f"so remove it yourself if it is not part of the registered form",
            f"{what_zh}{end_zh}含有空白字符；名称按原样保存，如非登记名称的一部分请自行删除",
            field=field,
        )
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(
            "NAME_TOO_LONG",
            f"{what_en} has {len(name)} characters, more than the limit of {NAME_MAX_LENGTH}",
            f"{what_zh}共 {len(name)} 个字符，超过上限 {NAME_MAX_LENGTH}",
            field=field, details={"length": len(name), "limit": NAME_MAX_LENGTH},
        )
    for pos, ch in enumerate(name, start=1):
        category = unicodedata.category(ch)
        if category == "Cs":
            raise InvalidInput(
                "NAME_SURROGATE",
                f"{what_en} contains a lone UTF-16 surrogate {_codepoint(ch)} at position {pos}; "
                f"send the character itself (for example U+20BB7 𠮷), not half of its UTF-16 form",
                f"{what_zh}第 {pos} 个字符是单独的 UTF-16 代理项 {_codepoint(ch)}，"
                f"请直接提交完整字符（如 U+20BB7 𠮷）",
                field=field, details={"position": pos, "codepoint": _codepoint(ch)},
            )
        if category in ("Cc", "Cf", "Zl", "Zp"):
            raise InvalidInput(
                "NAME_CONTROL_CHARACTER",
                f"{what_en} contains the invisible control or format character {_codepoint(ch)} "
                f"at position {pos}; it would make two names that look the same differ",
                f"{what_zh}第 {pos} 个字符是不可见的控制或格式字符 {_codepoint(ch)}",
                field=field, details={"position": pos, "codepoint": _codepoint(ch)},
            )
    if not unicodedata.is_normalized("NFC", name):
        normalized = unicodedata.normalize("NFC", name)
        pos = next((i for i, (a, b) in enumerate(zip(name, normalized, strict=False), start=1)
                    if a != b), min(len(name), len(normalized)) + 1)
        ch = name[pos - 1] if pos <= len(name) else ""
        raise InvalidInput(
            "NAME_NOT_NFC",
            f"{what_en} is not in Unicode NFC form (first at position {pos}, "
            f"{_codepoint(ch) if ch else 'end'}). We do not normalise for you: NFC would silently "
            f"replace characters, e.g. a CJK compatibility ideograph (U+F900-U+FAFF) by its "
            f"unified form, so the certificate would not carry the name as you gave it. "
            f"Give the registered name already in NFC form",
            f"{what_zh}不是 Unicode NFC 规范形式（第 {pos} 个字符起）。系统不会代为规范化："
            f"规范化会悄然替换字符（如 U+F900-U+FAFF 的 CJK 兼容汉字），"
            f"证书中的名称将与提交的不同。"
            f"请提交已是 NFC 形式的登记名称",
            field=field, details={"position": pos},
        )
    return name


def validate_registered_name(name: str, field: str = "name") -> str:
    """Return an enterprise's registered name unchanged, or raise ``InvalidInput``.

    Refused: empty, leading/trailing whitespace, control, invisible format and line/paragraph
    separator characters,
    lone surrogates, more than 200 characters, and anything not already in NFC. Characters
    outside the Basic Multilingual Plane (𠮷 U+20BB7) and unassigned code points (newer CJK
    extensions than this Python knows) are accepted.
    """
    return _validate_name(name, field, "the registered name", "登记名称")


#: The Han ideograph blocks (unified, extensions A-I, compatibility): a Chinese registered
#: name holds at least one. Planes 2 and 3 are wholly CJK, including code points newer than
#: this Python's Unicode tables (so a just-encoded rare character is not refused).
HAN_RANGES = ((0x3007, 0x3007), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
              (0x20000, 0x3FFFF))


def is_han(ch: str) -> bool:
    """Whether ``ch`` is a Han ideograph (汉字), by code point."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in HAN_RANGES)


def validate_chinese_enterprise_name(name: str, field: str = "name") -> str:
    """An enterprise registered in China: its registered name is written in Chinese
    characters (企业名称应当使用规范汉字), so it must hold at least one Han ideograph. A name
    typed in pinyin ("Zhangsan Keji") is the classic 信息不一致 that only surfaces when the
    certificate or the seal does not match the licence: it is refused at registration, naming
    the field, instead. Latin letters and digits *inside* a Chinese name (TCL科技集团) are
    fine; the other rules of :func:`validate_registered_name` apply first."""
    validate_registered_name(name, field)
    if any(is_han(ch) for ch in name):
        return name
    pinyin = all(ch.isascii() and (ch.isalpha() or ch in " '-·") for ch in name)
    hint_en = (" — it looks like pinyin: type the registered Chinese characters instead"
               if pinyin else "")
    hint_zh = "（看起来是拼音，请填写登记的汉字）" if pinyin else ""
    raise InvalidInput(
        "NAME_NOT_CHINESE",
        f"the registered name {name!r} has no Chinese characters{hint_en}; enter the name "
        f"exactly as printed on the business licence",
        f"登记名称 {name!r} 不含汉字{hint_zh}；请按营业执照上的登记名称原样填写",
        field=field, details={"pinyin": pinyin})


def validate_person_name(name: str, field: str = "name") -> str:
    """The same rules as :func:`validate_registered_name` for a person's name (legal
    representative, key holder, officer). Interpuncts (阿沛·阿旺晋美) are ordinary characters."""
    return _validate_name(name, field, "the person's name", "姓名")


@dataclass(frozen=True)
class NameMismatch:
    """How a given name differs from the registered one, in both languages."""

    position: int  # 1-based, in characters (code points) of the registered name
    en: str
    zh: str


def _describe(s: str, empty: str = "nothing") -> str:
    if not s:
        return empty
    shown = " ".join(_codepoint(c) for c in s[:4]) + (" ..." if len(s) > 4 else "")
    return f"{s!r} ({shown})"


def _is_latin(s: str) -> bool:
    return bool(s) and all(c.isascii() and (c.isalpha() or c in " '-") for c in s)


def _is_cjk(s: str) -> bool:
    return bool(s) and all(unicodedata.name(c, "").startswith("CJK ") for c in s)


def describe_name_mismatch(registered: str, given: str) -> NameMismatch | None:
    """Explain where ``given`` departs from ``registered``; ``None`` when they are identical."""
    if registered == given:
        return None
    p = 0
    while p < min(len(registered), len(given)) and registered[p] == given[p]:
        p += 1
    s = 0
    while (s < min(len(registered), len(given)) - p
           and registered[-1 - s] == given[-1 - s]):
        s += 1
    reg_part = registered[p:len(registered) - s]
    giv_part = given[p:len(given) - s]
    pos = p + 1
    where_en = f"at character {pos}"
    where_zh = f"第 {pos} 个字符处"
    if unicodedata.normalize("NFC", registered) == unicodedata.normalize("NFC", given):
        kind_en = "the same text in a different Unicode form (not NFC)"
        kind_zh = "Unicode 编码形式不同（非 NFC）"
    elif unicodedata.normalize("NFKC", registered) == unicodedata.normalize("NFKC", given):
        kind_en = "a full-width/half-width or compatibility variant (e.g. '（' U+FF08 vs '(')"
        kind_zh = "全角/半角或兼容字符不同（如“（”U+FF08 与“(”）"
    elif _is_cjk(reg_part) and _is_latin(giv_part):
        kind_en = "Latin letters (pinyin?) instead of the registered Chinese characters"
        kind_zh = "使用了拉丁字母（拼音？）而非登记的汉字"
    elif not (reg_part + giv_part).strip() or reg_part.strip() == giv_part.strip():
        kind_en = "different whitespace"
        kind_zh = "空白字符不同"
    elif not reg_part:
        kind_en = "extra characters"
        kind_zh = "多出字符"
    elif not giv_part:
        kind_en = "missing characters"
        kind_zh = "缺少字符"
    else:
        kind_en = "a different character"
        kind_zh = "字符不同"
    en = (f"{where_en}: {kind_en}; registered has {_describe(reg_part)}, "
          f"given has {_describe(giv_part)}")
    zh = (f"{where_zh}{kind_zh}：登记名称为 {_describe(reg_part, '空')}，"
          f"提交的为 {_describe(giv_part, '空')}")
    return NameMismatch(position=pos, en=en, zh=zh)


def name_mismatch(registered: str, given: str) -> str | None:
    """One English sentence saying how ``given`` differs from ``registered`` (``None`` if equal).

    For the "信息不一致" errors; :func:`describe_name_mismatch` also gives the Chinese text.
    """
    found = describe_name_mismatch(registered, given)
    return found.en if found else None


def check_holder(role: str, holder: str, legal_rep: str) -> None:
    """A legal representative's USB-Key is for the registered legal representative only:
    the 信息不一致 refusal names the field and both spellings."""
    if role == "legal_rep" and holder != legal_rep:
        how = name_mismatch(legal_rep, holder) or "differs"
        raise InvalidInput(
            "HOLDER_MISMATCH",
            f"holder {holder!r} is not the registered legal representative "
            f"{legal_rep!r} ({how})",
            f"信息不一致：持有人 {holder!r} 与登记的法定代表人 {legal_rep!r} 不符",
            field="holder", details={"registered": legal_rep, "given": holder})


def check_subject_matches(subject: x509.Name, *, uscc: str, name: str) -> None:
    """A requested subject is advisory, but one that contradicts the registered enterprise is
    refused, naming the field that differs (``O`` or ``organizationIdentifier``)."""
    for attr in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME):
        if attr.value != name:
            how = name_mismatch(name, str(attr.value)) or "differs"
            raise InvalidInput(
                "NAME_MISMATCH",
                f"CSR organisation name {attr.value!r} does not match the registered name "
                f"{name!r} ({how})",
                f"信息不一致：证书请求中的企业名称 {attr.value!r} 与登记名称 {name!r} 不符",
                field="O", details={"registered": name, "given": attr.value})
    expected = organization_identifier(uscc)
    for attr in subject.get_attributes_for_oid(ORGANIZATION_IDENTIFIER):
        if attr.value != expected:
            raise InvalidInput(
                "USCC_MISMATCH",
                f"CSR organizationIdentifier {attr.value!r} is not {expected}",
                f"信息不一致：证书请求中的机构标识 {attr.value!r} 应为 {expected}",
                field="organizationIdentifier")

"""RFC 7512 PKCS#11 URIs: how eseal names a token and a key on it.

``pkcs11:token=eseal-ca;object=issuing-ca;type=private`` names the issuing CA's private key
on the CA token, the way p11-kit, OpenSSL's pkcs11 provider and step-ca's KMS do. Query
attributes such as ``pin-source`` and ``module-path`` are kept as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote_to_bytes

from eseal.errors import InvalidInput

_PATH_ATTRS = frozenset(
    {
        "token",
        "manufacturer",
        "serial",
        "model",
        "library-manufacturer",
        "library-description",
        "library-version",
        "object",
        "type",
        "id",
        "slot-id",
        "slot-description",
        "slot-manufacturer",
    }
)
_SAFE = "-._~:[]@!$'()*+,=&"  # RFC 7512 pchar without ';' '/' '?' '%'


def _bad(message: str, zh: str) -> InvalidInput:
    return InvalidInput("BAD_PKCS11_URI", message, zh, field="uri")


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed PKCS#11 URI. ``id`` is raw bytes; text attributes are decoded UTF-8."""

    token: str | None = None
    object: str | None = None
    id: bytes | None = None
    type: str | None = None
    serial: str | None = None
    slot_id: int | None = None
    query: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        if not text.startswith("pkcs11:"):
            raise _bad(f"not a PKCS#11 URI: {text!r}", f"不是 PKCS#11 URI：{text!r}")
        body = text[len("pkcs11:") :]
        path, _, query = body.partition("?")
        attrs: dict[str, bytes] = {}
        for part in filter(None, path.split(";")):
            name, eq, value = part.partition("=")
            if not eq or name not in _PATH_ATTRS:
                raise _bad(
                    f"unknown or malformed PKCS#11 URI attribute {part!r}",
                    f"PKCS#11 URI 属性无效：{part!r}",
                )
            if name in attrs:
                raise _bad(f"PKCS#11 URI repeats {name!r}", f"PKCS#11 URI 重复属性 {name!r}")
            attrs[name] = unquote_to_bytes(value)
        queries: dict[str, str] = {}
        for part in filter(None, query.split("&")):
            name, _, value = part.partition("=")
            queries[name] = unquote_to_bytes(value).decode("utf-8")

        def text_attr(name: str) -> str | None:
            raw = attrs.get(name)
            if raw is None:
                return None
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _bad(f"{name} is not UTF-8", f"{name} 不是 UTF-8 编码") from exc

        kind = text_attr("type")
        if kind is not None and kind not in {"private", "public", "cert", "secret-key", "data"}:
            raise _bad(f"unknown object type {kind!r}", f"未知对象类型 {kind!r}")
        slot = text_attr("slot-id")
        return cls(
            token=text_attr("token"),
            object=text_attr("object"),
            id=attrs.get("id"),
            type=kind,
            serial=text_attr("serial"),
            slot_id=int(slot) if slot is not None and slot.isdigit() else None,
            query=queries,
        )

    def __str__(self) -> str:
        parts: list[str] = []
        for name, value in (("token", self.token), ("serial", self.serial),
                            ("object", self.object), ("type", self.type)):
            if value is not None:
                parts.append(f"{name}={quote(value, safe=_SAFE)}")
        if self.slot_id is not None:
            parts.append(f"slot-id={self.slot_id}")
        if self.id is not None:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        uri = "pkcs11:" + ";".join(parts)
        if self.query:
            uri += "?" + "&".join(f"{k}={quote(v, safe='/:')}" for k, v in self.query.items())
        return uri


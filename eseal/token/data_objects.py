"""Small data objects (``CKO_DATA``) on a token: state only the token's PIN holder can change.

The CA keeps a few bytes of state where someone who copies or edits the database and the
home directory cannot reach them: the audit log's last signed checkpoint
(``eseal.audit.head``). A PRIVATE data object is readable and writable only in a session
logged in as the user, so it has the same owner as the CA's keys. Every call holds the
process-wide PKCS#11 lock (SoftHSM is not safe across threads).
"""

from __future__ import annotations

import pkcs11
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import PKCS11Error

from eseal.errors import TokenError
from eseal.token import library as lib
from eseal.token.session import TokenSession, blame


def _generation(obj: pkcs11.Object) -> int:
    try:
        return int.from_bytes(bytes(obj[Attribute.OBJECT_ID]), "big")
    except PKCS11Error:
        return 0


def _versions(session: pkcs11.Session, label: str) -> list[tuple[int, pkcs11.Object]]:
    """Every object holding ``label``, newest generation last."""
    found = session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label})
    return sorted(((_generation(o), o) for o in found), key=lambda pair: pair[0])


def read_data(ts: TokenSession, label: str) -> bytes | None:
    """The newest value of the private data object ``label``; ``None`` if the token has none."""
    with lib.lock():
        def read(session: pkcs11.Session) -> bytes | None:
            versions = _versions(session, label)
            return bytes(versions[-1][1][Attribute.VALUE]) if versions else None

        try:
            return ts.run(read)
        except PKCS11Error as exc:
            en, zh = lib.plain_reason(exc)
            raise blame(ts, TokenError("DATA_OBJECT_READ_FAILED",
                                       f"cannot read {label!r} on token {ts.label!r}: {en}",
                                       f"无法读取 USB-Key {ts.label!r} 上的 {label!r}：{zh}",
                                       field="token")) from exc


def write_data(ts: TokenSession, label: str, value: bytes) -> None:
    """Replace the private data object ``label`` with one holding ``value``.

    SoftHSM 2.6 refuses ``C_SetAttributeValue`` on a data object's CKA_VALUE (read-only
    after creation), so a new version (TOKEN, PRIVATE; its generation in CKA_OBJECT_ID) is
    created first and older ones are destroyed after: a crash in between leaves two, and
    readers take the newest. Callers must serialise writers (the audit log writes under
    the database's write lock); ``ts`` must be read-write and logged in as the user.
    """
    with lib.lock():
        def write(session: pkcs11.Session) -> None:
            versions = _versions(session, label)
            generation = (versions[-1][0] if versions else 0) + 1
            session.create_object({
                Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label,
                Attribute.APPLICATION: "eseal", Attribute.VALUE: value,
                Attribute.OBJECT_ID: generation.to_bytes(8, "big"),
                Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.MODIFIABLE: True})
            for _, old in versions:
                old.destroy()

        try:
            ts.run(write)
        except PKCS11Error as exc:
            en, zh = lib.plain_reason(exc)
            raise blame(ts, TokenError("DATA_OBJECT_WRITE_FAILED",
                                       f"cannot write {label!r} on token {ts.label!r}: {en}",
                                       f"无法写入 USB-Key {ts.label!r} 上的 {label!r}：{zh}",
                                       field="token")) from exc

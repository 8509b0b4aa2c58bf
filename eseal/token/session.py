"""A logged-in session to one token that survives module re-initialisation.

Long-lived processes (the CA service) keep one ``TokenSession`` per token and sign through it
thousands of times a second; one-shot processes (a CLI command) open one, use it and close
it. PKCS#11 login state is per process and token, so one logged-in session per token is all a
process needs; every call on it happens under the process-wide lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os

import pkcs11
from pkcs11.exceptions import PKCS11Error

from eseal.errors import EsealError, ServiceUnavailable, TokenError
from eseal.token import library as lib
from eseal.token.library import (
    CKR_OK,
    CKR_PIN_INCORRECT,
    CKR_PIN_LEN_RANGE,
    CKR_PIN_LOCKED,
    CKR_USER_ALREADY_LOGGED_IN,
    CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
    CKU_SO,
    CKU_USER,
)

# PKCS#11 login state is per process and token: a second C_Login answers "already logged in"
# whatever PIN it carries. We remember a keyed digest of the PIN that did log in, so a later
# session with another PIN is refused instead of silently riding on the first login.
_PROCESS_KEY = os.urandom(32)
_LOGIN_DIGESTS: dict[tuple[str, int], bytes] = {}


def remember_login(label: str, pin: str, *, so: bool = False) -> None:
    """Record that ``pin`` is now the PIN logged in to ``label`` (after a PIN change)."""
    key = (label, CKU_SO if so else CKU_USER)
    _LOGIN_DIGESTS[key] = hmac.new(_PROCESS_KEY, pin.encode(), hashlib.sha256).digest()


def login_error(rv: int, *, so: bool = False) -> TokenError:
    """Translate a failed ``C_Login`` into eseal's error codes."""
    who, who_zh = ("SO PIN", "管理员 PIN") if so else ("PIN", "PIN 码")
    if rv in (CKR_PIN_INCORRECT, CKR_PIN_LEN_RANGE):
        code = "SO_PIN_INCORRECT" if so else "PIN_INCORRECT"
        return TokenError(code, f"wrong {who}", f"{who_zh}错误", field="so_pin" if so else "pin")
    if rv == CKR_PIN_LOCKED:
        code = "SO_PIN_LOCKED" if so else "PIN_LOCKED"
        return TokenError(code, f"the {who} is locked", f"{who_zh}已锁定",
                          field="so_pin" if so else "pin")
    if rv == CKR_USER_ANOTHER_ALREADY_LOGGED_IN:
        return TokenError("TOKEN_BUSY",
                          "another user is logged in to this token in this process; "
                          "close that session first",
                          "本进程中已有其他身份登录该 USB-Key，请先关闭该会话")
    return TokenError("TOKEN_LOGIN_FAILED", f"token login failed (CKR 0x{rv:x})",
                      f"USB-Key 登录失败（CKR 0x{rv:x}）")


#: a failure to open or log in to a token, a key missing from it
_UNOPENABLE = frozenset({"TOKEN_NOT_FOUND", "PIN_INCORRECT", "PIN_LOCKED", "SO_PIN_INCORRECT",
                         "SO_PIN_LOCKED", "TOKEN_LOGIN_FAILED", "TOKEN_BUSY"})
_KEY_MISSING = frozenset({"KEY_NOT_FOUND", "KEY_AMBIGUOUS"})


def blame(ts: TokenSession, err: EsealError) -> EsealError:
    """``err`` as it is for a holder's token; for the service's own token (the CA's, opened
    with ``service=True``) the service's failure instead: a 503 naming the cause, because a
    wrong CA PIN file or a missing CA key is not the caller's fault."""
    if not ts.service or isinstance(err, ServiceUnavailable):
        return err
    details = {"token": ts.label, "cause": err.code}
    if err.code in _UNOPENABLE:
        return ServiceUnavailable(
            "CA_TOKEN_UNAVAILABLE", f"the CA's token {ts.label!r} cannot be used: {err.message}",
            f"CA 的 USB-Key {ts.label!r} 无法使用：{err.message_zh}", details=details)
    if err.code in _KEY_MISSING:
        return ServiceUnavailable(
            "CA_KEY_MISSING", f"a CA key is missing from the CA's token: {err.message}",
            f"CA 的 USB-Key 上缺少 CA 密钥：{err.message_zh}", details=details)
    return ServiceUnavailable(
        "CA_TOKEN_FAILED", f"the CA's token failed: {err.message}",
        f"CA 的 USB-Key 操作失败：{err.message_zh}", details=details)


class TokenSession:
    """One token, opened (and optionally logged in) lazily, reopened after a re-initialise.

    ``pin=None`` gives a public session: enough to read public objects such as certificates.
    ``service=True`` marks the service's own token (the CA's): its failures are answered as
    the service's (:func:`blame`), never as the caller's.
    """

    def __init__(self, label: str, pin: str | None = None, *, rw: bool = False,
                 so: bool = False, service: bool = False) -> None:
        self.label = label
        self.service = service
        self._pin = pin
        self._rw = rw or so
        self._user_type = CKU_SO if so else CKU_USER
        self._session: pkcs11.Session | None = None
        self._generation = -1
        self._cache: dict[object, object] = {}

    # -- lifecycle ---------------------------------------------------------------------
    def session(self) -> pkcs11.Session:
        """The live session. Call with ``lib.lock()`` held."""
        if self._session is not None and self._generation == lib.generation():
            return self._session
        self._session = None
        self._cache.clear()
        with lib.across_processes():
            try:
                return self._open_and_login()
            except EsealError as err:
                down = blame(self, err)
                if down is err:
                    raise
                raise down from err

    def _open_and_login(self) -> pkcs11.Session:
        token = lib.find_token(self.label)
        opened = token.open(rw=self._rw)
        if self._pin is not None:
            rv = lib.raw_login(opened, self._pin, self._user_type)
            key = (self.label, self._user_type)
            digest = hmac.new(_PROCESS_KEY, self._pin.encode(), hashlib.sha256).digest()
            if rv == CKR_USER_ALREADY_LOGGED_IN and not hmac.compare_digest(
                    _LOGIN_DIGESTS.get(key, b""), digest):
                # The process is already logged in, so the token cannot check this PIN;
                # one that differs from the PIN that logged in is wrong.
                rv = CKR_PIN_INCORRECT
            if rv not in (CKR_OK, CKR_USER_ALREADY_LOGGED_IN):
                try:
                    opened.close()
                finally:
                    err = login_error(rv, so=self._user_type == CKU_SO)
                raise err
            _LOGIN_DIGESTS[key] = digest
        self._session = opened
        self._generation = lib.generation()
        return opened

    def open(self) -> TokenSession:
        with lib.lock():
            self.session()
        return self

    def close(self) -> None:
        with lib.lock():
            if self._session is not None and self._generation == lib.generation():
                with contextlib.suppress(PKCS11Error):
                    self._session.close()
            self._session = None
            self._cache.clear()

    def __enter__(self) -> TokenSession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- small cache of object handles, valid for this session only ---------------------
    def cached(self, key: object, make):  # type: ignore[no-untyped-def]
        """Memoise ``make()`` for the life of the current session (handles die with it)."""
        with lib.lock():
            self.session()
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    @property
    def token(self) -> pkcs11.Token:
        with lib.lock():
            return self.session().token

"""A logged-in session to one token that survives module re-initialisation.

Long-lived processes (the CA service) keep one ``TokenSession`` per token and sign through it
thousands of times a second; one-shot processes (a CLI command) open one, use it and close
it. PKCS#11 login state is per process and token, so one logged-in session per token is all a
process needs; every call on it happens under the process-wide lock.

A *service* session (``service=True``: the CA's own token in ``eseal serve`` and the CLI) may
reach its token through ``p11-kit-client.so`` and a ``p11-kit server`` that forks one
``p11-kit-remote`` per connection, each loading its own SoftHSM. Measured (DESIGN.md): a
process starting while another logs in may see a blank token (NoSuchToken, GeneralError,
UserPinNotInitialized); a killed ``p11-kit-remote`` answers DeviceError to every later call;
a stopped server shows zero slots. So a service session logs in once per process (per
module initialisation), retries its start with a fresh ``C_Initialize`` and a short backoff,
and on a device failure re-initialises and retries the call once; what still fails is the
service's own token being unavailable: ``TOKEN_UNAVAILABLE``, HTTP 503, and the next call
tries again, so the service recovers without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from typing import TypeVar

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

T = TypeVar("T")

#: PKCS#11 failures that say nothing about the request, only that the token, or the
#: connection to the server holding it, is gone or not ready.
DEVICE_FAILURES = frozenset({
    "DeviceError", "DeviceRemoved", "TokenNotPresent", "TokenNotRecognised",
    "SessionHandleInvalid", "SessionClosed", "GeneralError", "UserNotLoggedIn",
    "UserPinNotInitialized", "NoSuchToken", "SlotIDInvalid", "FunctionFailed",
})
#: eseal codes a starting service session retries (a blank token seen mid-login elsewhere).
_START_CODES = frozenset({"TOKEN_NOT_FOUND", "TOKEN_LOGIN_FAILED"})
#: Start attempts of a service session and the first pause (doubling): 20+40+80+160 ms.
START_ATTEMPTS = 5
START_BACKOFF_SECONDS = 0.02


class TokenUnavailable(ServiceUnavailable, TokenError):
    """The service's own token cannot be reached now (HTTP 503); retrying later may work."""

    status = 503


def is_device_failure(exc: BaseException) -> bool:
    return isinstance(exc, PKCS11Error) and type(exc).__name__ in DEVICE_FAILURES


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
                if not self.service:
                    return self._open_and_login()
                return self._open_with_retries()
            except EsealError as err:
                down = blame(self, err)
                if down is err:
                    raise
                raise down from err

    def _open_with_retries(self) -> pkcs11.Session:
        """Open and log in, starting the module afresh after a blank-token moment."""
        last: BaseException | None = None
        for attempt in range(START_ATTEMPTS):
            if attempt:
                self._restart_module()
                time.sleep(START_BACKOFF_SECONDS * 2 ** (attempt - 1))
            try:
                return self._open_and_login()
            except TokenError as err:
                if err.code not in _START_CODES:
                    raise
                last = err
            except PKCS11Error as exc:
                if not is_device_failure(exc):
                    raise
                last = exc
        raise self.unavailable(last)

    @staticmethod
    def _restart_module() -> None:
        with contextlib.suppress(PKCS11Error):
            lib.refresh()

    def unavailable(self, cause: BaseException | None) -> TokenUnavailable:
        if isinstance(cause, TokenError):
            en, zh = cause.message, cause.message_zh
        elif cause is not None:
            en, zh = lib.plain_reason(cause)
        else:
            en, zh = "no answer", "无应答"
        return TokenUnavailable(
            "TOKEN_UNAVAILABLE",
            f"the service's token {self.label!r} cannot be reached now ({en}); try again "
            "shortly",
            f"服务的密码令牌 {self.label!r} 暂时无法访问（{zh}），请稍后重试",
            details={"token": self.label,
                     "cause": cause.code if isinstance(cause, TokenError)
                     else type(cause).__name__ if cause is not None else None})

    def run(self, call: Callable[[pkcs11.Session], T]) -> T:
        """``call(session)`` under the lock; a service session that meets a device failure
        (a dropped connection to the token's server) starts the module afresh, logs in
        again and retries once, then answers ``TOKEN_UNAVAILABLE``."""
        with lib.lock():
            try:
                return call(self.session())
            except PKCS11Error as exc:
                if not (self.service and is_device_failure(exc)):
                    raise
            self._restart_module()
            try:
                return call(self.session())
            except PKCS11Error as exc:
                if not is_device_failure(exc):
                    raise
                raise self.unavailable(exc) from exc

    def _open_and_login(self) -> pkcs11.Session:
        token = lib.find_token(self.label)
        opened: pkcs11.Session | None = None
        if self._pin is not None and lib.is_remote():
            opened, rv = lib.open_logged_in(token, self._pin, self._user_type, rw=self._rw)
        else:
            opened = token.open(rw=self._rw)
        if self._pin is not None:
            if opened is not None and not lib.is_remote():
                rv = lib.raw_login(opened, self._pin, self._user_type)
            key = (self.label, self._user_type)
            digest = hmac.new(_PROCESS_KEY, self._pin.encode(), hashlib.sha256).digest()
            if rv == CKR_USER_ALREADY_LOGGED_IN and not hmac.compare_digest(
                    _LOGIN_DIGESTS.get(key, b""), digest):
                # The process is already logged in, so the token cannot check this PIN;
                # one that differs from the PIN that logged in is wrong.
                rv = CKR_PIN_INCORRECT
            if rv not in (CKR_OK, CKR_USER_ALREADY_LOGGED_IN) or opened is None:
                try:
                    if opened is not None:
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

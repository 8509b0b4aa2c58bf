"""The PKCS#11 module of this process, and the one lock every PKCS#11 call goes through.

Why a single lock: python-pkcs11 calls ``C_Initialize`` without locking callbacks and releases
the GIL, so SoftHSM2 crashes (segfault, double free) when two threads call it at once, even
on different sessions (measured; see DESIGN.md). Every function in ``eseal.token`` takes
``PKCS11_LOCK`` around its calls; callers never touch python-pkcs11 directly.

Why a generation counter: SoftHSM only sees tokens created by ``softhsm2-util`` after a new
``C_Initialize``, and re-initialising closes every session of the process. Cached sessions
remember the generation they were opened in and reopen themselves when it moved on.

Why the flocks vanish for a remote module: when the module is ``p11-kit-client.so`` the
token lives in a ``p11-kit server`` process, perhaps on another host, and a flock beside a
local file coordinates nothing there. There is no SoftHSM configuration (``conf_path`` is
None), so :func:`across_processes` holds nothing; what a remote token needs instead —
logging in once per process, retrying start-up, recovering from a dropped connection — is
in :mod:`eseal.token.session` (``service=True``).

Why ctypes for ``C_Login``: python-pkcs11's ``Token.open(user_pin=...)`` leaks the session when
the login fails (a later SO login then fails with ``SessionReadOnlyExists``), and its
``Session.close()`` calls ``C_Logout``, which logs out *every* session of the process. We open
sessions without a PIN and log in ourselves, so a failed login closes its own session and a
close never logs others out.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import pkcs11
from pkcs11.exceptions import PKCS11Error

from eseal.errors import ConfigError, TokenError

PKCS11_LOCK = threading.RLock()

CKU_SO = 0
CKU_USER = 1
CKR_OK = 0x0
CKR_PIN_INCORRECT = 0xA0
CKR_PIN_LOCKED = 0xA4
CKR_PIN_LEN_RANGE = 0xA2
CKR_USER_ALREADY_LOGGED_IN = 0x100
CKR_USER_ANOTHER_ALREADY_LOGGED_IN = 0x104  # e.g. an SO login while a user is logged in
CKR_SESSION_READ_ONLY_EXISTS = 0xB7
CKR_USER_PIN_NOT_INITIALIZED = 0x102


@dataclass
class _State:
    module_path: str | None = None
    conf_path: str | None = None
    server_address: str | None = None
    lib: pkcs11.lib | None = None
    raw: Any = None  # the module's C_Login, through its CK_FUNCTION_LIST
    generation: int = 0
    pid: int = 0


_state = _State()


def _after_fork_in_child() -> None:
    """A forked child inherits a locked lock and a library initialised by its parent."""
    global PKCS11_LOCK, _process_lock
    PKCS11_LOCK = threading.RLock()
    _process_lock = _ProcessLock()  # the parent's flock and depth are not ours
    _state.pid = -1  # forces a fresh C_Initialize on first use in the child
    _state.generation += 1  # sessions inherited from the parent are dead here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _ProcessLock:
    """An advisory ``flock`` shared by every process using this SoftHSM configuration.

    Measured: when two processes initialise the module or log in to the same token in the
    same instant, one of them may see no token, or get CKR_GENERAL_ERROR from C_Login —
    SoftHSM rewrites a token's files on login while the other process reads them. Holding
    this lock around C_Initialize and around opening/logging in serialises exactly those
    moments; signing afterwards runs in parallel. Re-entrant within the process (every caller
    already holds ``PKCS11_LOCK``, so a depth counter is enough).
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        self._depth = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._depth == 0:
            self._fd = self._open()
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None

    @staticmethod
    def _open() -> int | None:
        if not _state.conf_path:
            return None
        try:
            return os.open(os.path.join(os.path.dirname(os.path.abspath(_state.conf_path)),
                                        ".eseal-pkcs11.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # a read-only configuration directory: nothing to coordinate with
            return None


_process_lock = _ProcessLock()


def across_processes() -> AbstractContextManager[None]:
    """Hold the inter-process lock (call with ``lock()`` held)."""
    return _process_lock.held()


def is_remote() -> bool:
    """The module reaches a token served by another process (``p11-kit-client.so``)."""
    return bool(_state.server_address) or (
        _state.module_path is not None and "softhsm" not in os.path.basename(_state.module_path))


def softhsm_conf() -> str | None:
    """The SoftHSM configuration this process uses; None for a remote module."""
    if is_remote():
        return None
    return _state.conf_path or os.environ.get("SOFTHSM2_CONF")


def lock() -> threading.RLock:
    """The current process-wide lock (replaced after fork, so always ask for it)."""
    return PKCS11_LOCK


def configure(module_path: str, conf_path: str | os.PathLike[str] | None,
              server_address: str | None = None) -> None:
    """Point this process at a PKCS#11 module and (for SoftHSM) a configuration file, or
    (for ``p11-kit-client.so``) the address of the ``p11-kit server`` that holds the token.

    Changing the configuration re-initialises the module, which closes all sessions; cached
    sessions notice through the generation counter.
    """
    conf = os.fspath(conf_path) if conf_path else None
    with lock():
        if server_address and server_address != _state.server_address:
            # p11-kit-client reads the address when it is initialised
            os.environ["P11_KIT_SERVER_ADDRESS"] = server_address
            _state.server_address = server_address
            if _state.lib is not None and _state.module_path == module_path:
                _reinitialize()
        if _state.lib is not None and _state.module_path != module_path:
            raise ConfigError(
                "PKCS11_MODULE_CHANGED",
                f"this process already uses PKCS#11 module {_state.module_path}",
                f"本进程已加载 PKCS#11 模块 {_state.module_path}",
                field="pkcs11_module",
            )
        if _state.module_path == module_path and _state.conf_path == conf:
            return
        _state.module_path = module_path
        _state.conf_path = conf
        if conf:
            os.environ["SOFTHSM2_CONF"] = conf
        if _state.lib is not None:
            _reinitialize()


def _load() -> pkcs11.lib:
    if _state.module_path is None:
        raise ConfigError(
            "PKCS11_NOT_CONFIGURED",
            "no PKCS#11 module configured",
            "未配置 PKCS#11 模块",
            field="pkcs11_module",
        )
    if not os.path.exists(_state.module_path):
        raise ConfigError(
            "PKCS11_MODULE_MISSING",
            f"PKCS#11 module not found: {_state.module_path} (is softhsm2 installed?)",
            f"找不到 PKCS#11 模块：{_state.module_path}（是否已安装 softhsm2？）",
            field="pkcs11_module",
        )
    if _state.lib is None:
        with across_processes():
            _state.lib = pkcs11.lib(_state.module_path)
        _state.raw = None if is_remote() else _c_login(_state.module_path)
        _state.pid = os.getpid()
        _state.generation += 1
    elif _state.pid != os.getpid():
        _reinitialize()
    return _state.lib


_C_LOGIN = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p,
                            ctypes.c_ulong)
_C_LOGIN_INDEX = 18  # C_Initialize .. C_SetOperationState come first in CK_FUNCTION_LIST


class _FunctionList(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte),
                ("functions", ctypes.c_void_p * 68)]


def _c_login(module_path: str) -> Any:
    """``C_Login`` taken from the module's function list: ``p11-kit-client.so`` exports only
    ``C_GetFunctionList``, so the symbol cannot be looked up by name as in SoftHSM."""
    dll = ctypes.CDLL(module_path)
    table = ctypes.POINTER(_FunctionList)()
    rv = dll.C_GetFunctionList(ctypes.byref(table))
    if rv != CKR_OK or not table:
        raise ConfigError("PKCS11_MODULE_BROKEN",
                          f"{module_path} gave no function list (CKR 0x{rv:x})",
                          f"{module_path} 未提供函数表（CKR 0x{rv:x}）", field="pkcs11_module")
    return _C_LOGIN(table.contents.functions[_C_LOGIN_INDEX])


def _reinitialize() -> None:
    assert _state.lib is not None
    try:
        _state.lib.finalize()
    except PKCS11Error:
        pass  # after fork the child's view of initialisation is unreliable; start over
    with across_processes():
        _state.lib.initialize()
    _state.pid = os.getpid()
    _state.generation += 1


def library() -> pkcs11.lib:
    """The initialised module (call with the lock held)."""
    with lock():
        return _load()


def generation() -> int:
    if _state.lib is not None and _state.pid != os.getpid():
        with lock():
            _load()  # a forked child re-initialises before anyone trusts a cached session
    return _state.generation


def refresh() -> None:
    """Re-initialise so that tokens created by another process become visible."""
    with lock():
        if _state.lib is None:
            _load()
        else:
            _reinitialize()


def token_labels() -> list[str]:
    with lock():
        # SoftHSM always offers one uninitialised slot with an empty label: not a token.
        return sorted(t.label for t in library().get_tokens() if t.label)


def find_token(label: str) -> pkcs11.Token:
    """The token with this label; the error lists the labels that do exist."""
    with lock():
        lib = library()
        matches = _tokens_labelled(lib, label)
        if not matches:  # perhaps created by another process since our C_Initialize
            refresh()
            matches = _tokens_labelled(lib, label)
        if not matches:
            present = token_labels()
            listing = ", ".join(present) if present else "none"
            raise TokenError(
                "TOKEN_NOT_FOUND",
                f"no token labelled {label!r}; tokens present: {listing}",
                f"找不到标签为 {label!r} 的 USB-Key；现有：{listing}",
                field="label",
                details={"tokens": present},
            )
        return matches[0]


def _tokens_labelled(lib: pkcs11.lib, label: str) -> list[pkcs11.Token]:
    try:
        return list(lib.get_tokens(token_label=label))
    except PKCS11Error:  # a token whose files are busy answers C_GetTokenInfo with an error
        return []


_PLAIN_REASONS: dict[str, tuple[str, str]] = {
    "PinLenRangeError": ("the PIN length is outside what the token accepts",
                         "PIN 长度不符合 USB-Key 的要求"),
    "PinInvalid": ("the PIN contains characters the token does not accept",
                   "PIN 含有 USB-Key 不接受的字符"),
    "TokenNotPresent": ("the USB-Key is not inserted", "USB-Key 未插入"),
    "DeviceRemoved": ("the USB-Key was removed", "USB-Key 已被拔出"),
    "SessionHandleInvalid": ("the token session ended; try again", "USB-Key 会话已结束，请重试"),
    "SessionClosed": ("the token session ended; try again", "USB-Key 会话已结束，请重试"),
    "UserNotLoggedIn": ("the token is not logged in", "USB-Key 未登录"),
    "DeviceMemory": ("the token is full", "USB-Key 存储空间已满"),
    "TokenWriteProtected": ("the token is write-protected", "USB-Key 处于写保护状态"),
}


def plain_reason(exc: BaseException) -> tuple[str, str]:
    """What a PKCS#11 failure means, in words a holder or officer understands (en, zh).
    The exception's class name belongs in an error's ``details``, not its message."""
    return _PLAIN_REASONS.get(type(exc).__name__, (
        "the token reported an internal error", "USB-Key 报告内部错误"))


def raw_login(session: pkcs11.Session, pin: str, user_type: int = CKU_USER) -> int:
    """``C_Login`` on an open session; returns the raw CK_RV (0 on success)."""
    assert _state.raw is not None
    data = pin.encode("utf-8")
    with lock():
        return int(_state.raw(session.handle, user_type, data, len(data)))


# What python-pkcs11 raises for a failed C_Login, as the CK_RV eseal's login code expects.
_LOGIN_FAILURES = {"PinIncorrect": CKR_PIN_INCORRECT, "PinLocked": CKR_PIN_LOCKED,
                   "PinLenRange": CKR_PIN_LEN_RANGE,
                   "UserAlreadyLoggedIn": CKR_USER_ALREADY_LOGGED_IN,
                   "AnotherUserAlreadyLoggedIn": CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
                   "SessionReadOnlyExists": CKR_SESSION_READ_ONLY_EXISTS,
                   "UserPinNotInitialized": CKR_USER_PIN_NOT_INITIALIZED,
                   "GeneralError": 0x5}


def open_logged_in(token: pkcs11.Token, pin: str, user_type: int, *,
                   rw: bool) -> tuple[pkcs11.Session | None, int]:
    """Open a session and log in through python-pkcs11, for a remote module.

    ``p11-kit-client.so`` hands every ``C_GetFunctionList`` caller a module instance of its
    own, so the raw ``C_Login`` above cannot reach python-pkcs11's sessions. This path has
    python-pkcs11's two flaws (a failed login leaves its session open; closing the session
    logs the process out), which a service process that logs in once can live with.
    Returns the session (None if the login failed) and the CK_RV.
    """
    with lock():
        try:
            if user_type == CKU_SO:
                return token.open(rw=True, so_pin=pin), CKR_OK
            return token.open(rw=rw, user_pin=pin), CKR_OK
        except PKCS11Error as exc:
            rv = _LOGIN_FAILURES.get(type(exc).__name__)
            if rv is None:
                raise
            if rv == CKR_USER_ALREADY_LOGGED_IN:  # this process is logged in already
                return token.open(rw=rw), rv
            return None, rv


@contextmanager
def open_session(token: pkcs11.Token, *, rw: bool = False) -> Iterator[pkcs11.Session]:
    """A session that is always closed, without logging other sessions out."""
    with lock():
        session = token.open(rw=rw)
    try:
        yield session
    finally:
        with lock():
            try:
                session.close()
            except PKCS11Error:
                pass  # already invalidated by a re-initialisation

"""PIN policy for USB-Keys: what a PIN may be, and how many wrong ones a token forgives.

A real USB-Key locks itself after a few wrong PINs and only its security officer (SO) can
unblock it. SoftHSM2, our stand-in, never locks (it only ever sets ``CKF_USER_PIN_COUNT_LOW``),
so eseal keeps the count itself, *on the token*: one public ``CKO_DATA`` object (label
``eseal-pin-tries``, application ``eseal``) holding the wrong tries of the user and of the SO.
Living on the token, the count survives restarts and travels with the key to another machine.

The rules, in the order a login meets them:

* the counter is read first; a missing, unreadable or duplicated counter counts as locked
  (deleting the object must not reset the tries), and so does a count at the limit;
* the counter is incremented *before* ``C_Login`` and cleared only after a successful one, so
  killing the process between the two cannot buy free guesses;
* flags the token reports itself win: ``CKF_USER_PIN_LOCKED`` locks, ``FINAL_TRY`` leaves one
  try, ``COUNT_LOW`` means at least one wrong try already happened (also when it was made by
  another program, such as ``pkcs11-tool``, that does not know our counter);
* tokens that lock themselves (anything that is not SoftHSM) are trusted to do so: their
  flags decide, and our counter is only kept when it exists.

Within a process the whole read–increment–login–clear sequence runs under the PKCS#11 lock;
between processes an advisory ``flock`` next to the SoftHSM configuration keeps two logins
from both reading the same count (a remote module, ``p11-kit-client.so``, has no local
configuration: there the token's own server must count, and the flock is not taken).
SoftHSM does not allow ``CKA_VALUE`` of a data object to be
changed, so a new count is written as a new object before the old ones are destroyed; a crash
in between leaves two objects and the higher count wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import secrets
import string
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pkcs11
from pkcs11 import Attribute, ObjectClass, TokenFlag
from pkcs11.exceptions import PKCS11Error

from eseal.errors import InvalidInput, TokenError
from eseal.token import library as lib
from eseal.token.session import TokenSession

COUNTER_LABEL = "eseal-pin-tries"
COUNTER_APPLICATION = "eseal"
_COUNTER_FORMAT = re.compile(rb"\Aeseal-pin-tries/1 user=(\d{1,4}) so=(\d{1,4})\Z")

DEFAULT_MAX_TRIES = 6
DEFAULT_SO_MAX_TRIES = 6
PIN_MIN_LENGTH = 6
PIN_MAX_LENGTH = 16

# Manufacturers whose tokens never lock a PIN themselves: eseal enforces the limit for them.
NON_LOCKING_MANUFACTURERS = ("SoftHSM",)

_PIN_ALPHABET = frozenset(string.ascii_letters + string.digits + string.punctuation)
_SO_PIN_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl",
              "zxcvbnm")
_COMMON = frozenset({"password", "passw0rd", "qwerty", "abc123", "iloveyou", "admin123",
                     "12345678", "88888888", "66666666", "520520", "5201314"})


# --- what a PIN may be -----------------------------------------------------------------------
def _weak(reason: str, en: str, zh: str, field: str) -> InvalidInput:
    return InvalidInput("PIN_WEAK", f"{field.replace('_', ' ')} is too easy to guess: {en}",
                        f"PIN 码过于简单：{zh}", field=field, details={"reason": reason})


def _is_run(pin: str) -> bool:
    """Each character follows the last in a well-known sequence (123456, 654321, abcdef)."""
    low = pin.lower()
    for seq in _SEQUENCES:
        for line in (seq, seq[::-1]):
            if low in line:
                return True
    # digit runs that wrap (7890123) count too
    if low.isdigit():
        steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(low)}
        if steps in ({1}, {9}):
            return True
    return False


def _is_repetition(pin: str) -> bool:
    """A block of one to four characters repeated (111111, 121212, 123123, abcdabcd)."""
    low = pin.lower()
    return any(len(low) >= 2 * size and (low[:size] * len(low))[:len(low)] == low
               for size in range(1, 5))


def check_pin(pin: str, *, field: str = "pin", forbidden: Iterable[str] = ()) -> str:
    """Refuse a PIN that breaks the policy; return it unchanged when it passes.

    6–16 printable ASCII characters (a USB-Key's PIN pad and every keyboard layout agree on
    them), not one repeated character or block, not a run such as ``123456`` or ``abcdef``,
    not a well-known password, and no part of ``forbidden`` (the enterprise's credit code,
    the token label). There is no history rule.
    """
    if not isinstance(pin, str) or not pin:
        raise InvalidInput("PIN_REQUIRED", f"{field.replace('_', ' ')} is required",
                           "PIN 码不能为空", field=field)
    if len(pin) < PIN_MIN_LENGTH:
        raise InvalidInput("PIN_TOO_SHORT",
                           f"{field.replace('_', ' ')} must have at least {PIN_MIN_LENGTH} "
                           f"characters (has {len(pin)})",
                           f"PIN 码至少 {PIN_MIN_LENGTH} 位（当前 {len(pin)} 位）", field=field,
                           details={"min": PIN_MIN_LENGTH, "length": len(pin)})
    if len(pin) > PIN_MAX_LENGTH:
        raise InvalidInput("PIN_TOO_LONG",
                           f"{field.replace('_', ' ')} must have at most {PIN_MAX_LENGTH} "
                           f"characters (has {len(pin)})",
                           f"PIN 码至多 {PIN_MAX_LENGTH} 位（当前 {len(pin)} 位）", field=field,
                           details={"max": PIN_MAX_LENGTH, "length": len(pin)})
    if not set(pin) <= _PIN_ALPHABET:
        raise InvalidInput("PIN_BAD_CHARACTERS",
                           f"{field.replace('_', ' ')} may only hold letters, digits and "
                           "ASCII punctuation (no spaces)",
                           "PIN 码只能包含字母、数字和英文标点（不含空格）", field=field)
    if len(set(pin)) == 1:
        raise _weak("one_character", "one character repeated", "同一字符重复", field)
    if _is_run(pin):
        raise _weak("sequence", "a run such as 123456 or abcdef", "连续字符（如 123456）", field)
    if _is_repetition(pin):
        raise _weak("repetition", "a short block repeated (such as 121212)",
                    "重复的短字符组（如 121212）", field)
    if pin.lower() in _COMMON:
        raise _weak("common", "a well-known password", "常见密码", field)
    low = pin.lower()
    for word in forbidden:
        if word and low in word.lower():
            raise _weak("enterprise_code", "it is part of the enterprise's credit code or the "
                        "token's name", "与统一社会信用代码或 USB-Key 名称相同或包含其中", field)
    return pin


def generate_so_pin(length: int = PIN_MAX_LENGTH) -> str:
    """A random SO PIN for a token the CA hands out (kept encrypted by the CA, never shown)."""
    while True:
        candidate = "".join(secrets.choice(_SO_PIN_ALPHABET) for _ in range(length))
        try:
            return check_pin(candidate, field="so_pin")
        except InvalidInput:  # pragma: no cover - astronomically unlikely
            continue


# --- the counter on the token ----------------------------------------------------------------
@dataclass(frozen=True)
class TryCounter:
    """Wrong tries since the last success, as stored on the token."""

    user: int = 0
    so: int = 0

    def encode(self) -> bytes:
        return f"eseal-pin-tries/1 user={self.user} so={self.so}".encode("ascii")

    @staticmethod
    def decode(value: bytes) -> TryCounter | None:
        match = _COUNTER_FORMAT.match(bytes(value))
        if match is None:
            return None
        return TryCounter(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class PinState:
    """Everything known about a token's PIN without presenting one."""

    label: str
    counter: TryCounter | None  # None: missing or unreadable on the token
    counter_problem: str | None  # "missing" | "unreadable" | None
    flags: int  # CK_TOKEN_INFO.flags, as the token reported them just now
    self_locking: bool  # the token enforces its own limit
    max_tries: int = DEFAULT_MAX_TRIES
    so_max_tries: int = DEFAULT_SO_MAX_TRIES

    # -- user PIN --
    @property
    def user_failures(self) -> int:
        """Wrong tries counted so far (the limit when the counter is unusable)."""
        if self.counter is None:
            return 0 if self.self_locking else self.max_tries
        failures = self.counter.user
        if self.flags & TokenFlag.USER_PIN_COUNT_LOW:
            failures = max(failures, 1)
        return failures

    @property
    def locked(self) -> bool:
        if self.flags & TokenFlag.USER_PIN_LOCKED:
            return True
        if self.self_locking:
            return False
        return self.user_failures >= self.max_tries

    @property
    def tries_left(self) -> int:
        if self.locked:
            return 0
        left = max(self.max_tries - self.user_failures, 0)
        if self.self_locking:
            left = max(left, 2)  # the token has not said FINAL_TRY: more than one try remains
        if self.flags & TokenFlag.USER_PIN_FINAL_TRY:
            left = min(left, 1)
        return left

    @property
    def lock_reason(self) -> str | None:
        if not self.locked:
            return None
        if self.flags & TokenFlag.USER_PIN_LOCKED:
            return "token"
        if self.counter is None:
            return f"counter_{self.counter_problem}"
        return "too_many_tries"

    # -- SO PIN --
    @property
    def so_failures(self) -> int:
        failures = self.counter.so if self.counter is not None else 0
        if self.flags & TokenFlag.SO_PIN_COUNT_LOW:
            failures = max(failures, 1)
        return failures

    @property
    def so_locked(self) -> bool:
        """A lost counter does not lock the SO PIN: the officer must be able to restore it."""
        if self.flags & TokenFlag.SO_PIN_LOCKED:
            return True
        if self.self_locking:
            return False
        return self.so_failures >= self.so_max_tries

    @property
    def so_tries_left(self) -> int:
        if self.so_locked:
            return 0
        left = max(self.so_max_tries - self.so_failures, 0)
        if self.self_locking:
            left = max(left, 2)
        if self.flags & TokenFlag.SO_PIN_FINAL_TRY:
            left = min(left, 1)
        return left


def token_locks_itself(token: pkcs11.Token) -> bool:
    """Whether this token enforces its own PIN retry limit (hardware does, SoftHSM does not)."""
    maker = (token.manufacturer_id or "").strip()
    return not any(maker.startswith(m) for m in NON_LOCKING_MANUFACTURERS)


def _counter_objects(session: pkcs11.Session) -> list[pkcs11.Object]:
    return list(session.get_objects({Attribute.CLASS: ObjectClass.DATA,
                                     Attribute.LABEL: COUNTER_LABEL}))


def _read_counter(session: pkcs11.Session) -> tuple[TryCounter | None, str | None, int]:
    """(counter, problem, number of objects). Several well-formed objects: the highest wins."""
    objs = _counter_objects(session)
    if not objs:
        return None, "missing", 0
    counters: list[TryCounter] = []
    for obj in objs:
        try:
            if obj[Attribute.APPLICATION] != COUNTER_APPLICATION or obj[Attribute.PRIVATE]:
                return None, "unreadable", len(objs)
            decoded = TryCounter.decode(obj[Attribute.VALUE])
        except (PKCS11Error, UnicodeDecodeError):
            decoded = None
        if decoded is None:
            return None, "unreadable", len(objs)
        counters.append(decoded)
    return (TryCounter(max(c.user for c in counters), max(c.so for c in counters)), None,
            len(objs))


def _write_counter(session: pkcs11.Session, counter: TryCounter) -> None:
    """Write the new count first, then destroy the old objects (never a moment with none)."""
    old = _counter_objects(session)
    session.create_object({
        Attribute.CLASS: ObjectClass.DATA,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: False,
        Attribute.MODIFIABLE: True,
        Attribute.LABEL: COUNTER_LABEL,
        Attribute.APPLICATION: COUNTER_APPLICATION,
        Attribute.VALUE: counter.encode(),
    })
    for obj in old:
        with contextlib.suppress(PKCS11Error):
            obj.destroy()


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _reset_thread_locks() -> None:
    global _THREAD_LOCKS_GUARD
    _THREAD_LOCKS.clear()
    _THREAD_LOCKS_GUARD = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_thread_locks)


@contextlib.contextmanager
def _login_guard(label: str) -> Iterator[None]:
    """Serialise logins to one token: threads of this process, then other processes.

    Never call with the PKCS#11 lock held (it is always taken after this guard).
    """
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(label, threading.Lock())
    with thread_lock:
        conf = lib.softhsm_conf()  # None for a remote module: nothing local to coordinate
        fh = None
        if conf:
            try:
                fh = open(Path(conf).parent / ".eseal-pin.lock", "a")  # noqa: SIM115
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            except OSError:
                if fh is not None:
                    fh.close()
                fh = None  # unwritable directory: the in-process lock still holds
        try:
            yield
        finally:
            if fh is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                fh.close()


class PinPolicy:
    """The retry policy of one process: limits for user and SO PIN, applied to any token."""

    def __init__(self, max_tries: int = DEFAULT_MAX_TRIES,
                 so_max_tries: int = DEFAULT_SO_MAX_TRIES) -> None:
        if max_tries < 1 or so_max_tries < 1:
            raise InvalidInput("BAD_RETRY_LIMIT", "retry limits must be at least 1",
                               "重试次数上限至少为 1", field="pin_max_tries")
        self.max_tries = max_tries
        self.so_max_tries = so_max_tries

    # -- reading --------------------------------------------------------------------------
    def state(self, label: str) -> PinState:
        """The PIN state of a token, read without any PIN."""
        with lib.lock():
            token = lib.find_token(label)  # fresh CK_TOKEN_INFO, so fresh flags
            with lib.open_session(token, rw=True) as session:
                counter, problem, _ = _read_counter(session)
            return PinState(label=label, counter=counter, counter_problem=problem,
                            flags=int(token.flags), self_locking=token_locks_itself(token),
                            max_tries=self.max_tries, so_max_tries=self.so_max_tries)

    def _write(self, label: str, counter: TryCounter) -> None:
        with lib.lock():
            token = lib.find_token(label)
            with lib.open_session(token, rw=True) as session:
                try:
                    _write_counter(session, counter)
                except PKCS11Error as exc:
                    raise TokenError("PIN_COUNTER_WRITE_FAILED",
                                     f"cannot write the PIN retry counter on token {label!r}: "
                                     f"{lib.plain_reason(exc)[0]}",
                                     f"无法在 USB-Key {label!r} 上写入 PIN 重试计数："
                                     f"{lib.plain_reason(exc)[1]}", field="label") from exc

    def install_counter(self, label: str) -> None:
        """Give a freshly provisioned (or just unblocked) token a zero counter."""
        self._write(label, TryCounter(0, 0))

    # -- errors ---------------------------------------------------------------------------
    def _locked_error(self, state: PinState, *, wrong: bool = False) -> TokenError:
        why = {
            "token": ("the token reports its PIN locked", "USB-Key 报告 PIN 已锁定"),
            "counter_missing": ("its retry counter is missing", "重试计数缺失"),
            "counter_unreadable": ("its retry counter is unreadable", "重试计数无法读取"),
        }.get(state.lock_reason or "", (f"{self.max_tries} wrong PINs were entered",
                                        f"已连续输错 {self.max_tries} 次"))
        lead, lead_zh = ("wrong PIN: ", "PIN 码错误，") if wrong else ("", "")
        return TokenError(
            "PIN_LOCKED",
            f"{lead}token {state.label!r} is locked ({why[0]}); 0 tries left: the security officer "
            "must unblock it (eseal token unblock)",
            f"{lead_zh}USB-Key {state.label!r} 已锁定（{why[1]}），剩余 0 次：需由管理员解锁",
            field="pin", details={"tries_left": 0, "reason": state.lock_reason})

    def _so_locked_error(self, state: PinState) -> TokenError:
        return TokenError(
            "SO_PIN_LOCKED",
            f"the SO PIN of token {state.label!r} is locked; 0 tries left: the token must be "
            "re-issued",
            f"USB-Key {state.label!r} 的管理员 PIN 已锁定，剩余 0 次：须重新发放",
            field="so_pin", details={"so_tries_left": 0})

    # -- logging in -----------------------------------------------------------------------
    def login(self, label: str, pin: str, *, rw: bool = False) -> TokenSession:
        """A user session logged in with ``pin``, counting a wrong PIN on the token.

        Never call with the PKCS#11 lock held: the login guard is always taken first.
        """
        with _login_guard(label), lib.lock():
            state = self.state(label)
            if state.locked:
                raise self._locked_error(state)
            keep = state.counter is not None  # self-locking tokens without one: flags only
            before = state.counter or TryCounter()
            if keep:
                self._write(label, TryCounter(before.user + 1, before.so))
            session = TokenSession(label, pin, rw=rw)
            try:
                session.open()
            except TokenError as err:
                raise self._after_failure(label, err, before, so=False, keep=keep) from None
            if keep:
                self._write(label, TryCounter(0, before.so))
            return session

    def login_so(self, label: str, so_pin: str) -> TokenSession:
        """An SO session (read-write), counting a wrong SO PIN on the token.

        Allowed while the user PIN is locked, and also when the counter is missing (then the
        user count stays at the limit until the officer sets a new user PIN).
        """
        with _login_guard(label), lib.lock():
            state = self.state(label)
            if state.so_locked:
                raise self._so_locked_error(state)
            keep = state.counter is not None or not state.self_locking
            before = state.counter or TryCounter(user=self.max_tries)
            if keep:
                self._write(label, TryCounter(before.user, before.so + 1))
            session = TokenSession(label, so_pin, so=True)
            try:
                session.open()
            except TokenError as err:
                raise self._after_failure(label, err, before, so=True, keep=keep) from None
            if keep:
                self._write(label, TryCounter(before.user, 0))
            return session

    def _after_failure(self, label: str, err: TokenError, before: TryCounter, *,
                       so: bool, keep: bool) -> TokenError:
        """Turn a failed login into an error that says how many tries are left."""
        wrong = "SO_PIN_INCORRECT" if so else "PIN_INCORRECT"
        locked = "SO_PIN_LOCKED" if so else "PIN_LOCKED"
        if err.code not in (wrong, locked):
            # The PIN was never checked (another user logged in, token busy, ...): give the
            # try back rather than count our own failure against the holder.
            if keep:
                with contextlib.suppress(TokenError):
                    self._write(label, before)
            return err
        state = self.state(label)
        if err.code == locked:  # the token itself says so
            state = PinState(label, state.counter, state.counter_problem,
                             state.flags | (TokenFlag.SO_PIN_LOCKED if so
                                            else TokenFlag.USER_PIN_LOCKED),
                             state.self_locking, self.max_tries, self.so_max_tries)
        if so:
            if state.so_locked:
                return self._so_locked_error(state)
            left = state.so_tries_left
            return TokenError(
                "SO_PIN_INCORRECT",
                f"wrong SO PIN for token {label!r}; {left} tries left",
                f"USB-Key {label!r} 的管理员 PIN 错误，剩余 {left} 次",
                field="so_pin", details={"so_tries_left": left})
        if state.locked:
            return self._locked_error(state, wrong=True)
        left = state.tries_left
        return TokenError(
            "PIN_INCORRECT",
            f"wrong PIN for token {label!r}; {left} tries left",
            f"USB-Key {label!r} 的 PIN 码错误，剩余 {left} 次",
            field="pin", details={"tries_left": left})

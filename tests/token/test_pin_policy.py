"""PIN policy: what a PIN may be, and the retry counter eseal keeps on tokens that never lock
(SoftHSM), with the token's own flags winning when it reports them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pkcs11 import Attribute, ObjectClass, TokenFlag

from eseal.errors import InvalidInput, TokenError
from eseal.settings import Settings
from eseal.token import TokenSession, lock
from eseal.token.pin import (
    COUNTER_LABEL,
    PinPolicy,
    PinState,
    TryCounter,
    check_pin,
    generate_so_pin,
)
from eseal.token.usbkey import change_pin, provision, unblock

PIN = "4913-7720"
SO_PIN = "so-8812-4401"
NEW_PIN = "5820-1193"
LABEL = "alice"
USCC = "91350100M000100Y43"


# --- the policy on its own ------------------------------------------------------------------
@pytest.mark.parametrize("pin", ["4913-7720", "x7Kp29", "Fj#29aLq0Pz!m4Wv", "258147"])
def test_ordinary_pins_pass(pin: str) -> None:
    assert check_pin(pin) == pin


@pytest.mark.parametrize(("pin", "code"), [
    ("49137", "PIN_TOO_SHORT"),
    ("4913-7720-4913-77", "PIN_TOO_LONG"),
    ("4913 7720", "PIN_BAD_CHARACTERS"),
    ("密码491377", "PIN_BAD_CHARACTERS"),
    ("", "PIN_REQUIRED"),
])
def test_pin_shape_is_refused_with_a_clear_code(pin: str, code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_pin(pin)
    assert exc.value.code == code
    assert exc.value.field == "pin"


@pytest.mark.parametrize(("pin", "reason"), [
    ("111111", "one_character"),
    ("0000000000", "one_character"),
    ("123456", "sequence"),
    ("654321", "sequence"),
    ("7890123", "sequence"),
    ("abcdefg", "sequence"),
    ("qwertyui", "sequence"),
    ("121212", "repetition"),
    ("123123", "repetition"),
    ("password", "common"),
])
def test_obvious_weak_pins_are_refused(pin: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_pin(pin)
    assert exc.value.code == "PIN_WEAK"
    assert exc.value.details["reason"] == reason


@pytest.mark.parametrize("pin", [USCC[-8:], USCC[:6], USCC[2:16].lower()])
def test_a_pin_taken_from_the_enterprise_code_is_refused(pin: str) -> None:
    check_pin(pin)  # acceptable on its own ...
    with pytest.raises(InvalidInput) as exc:
        check_pin(pin, forbidden=[USCC])  # ... but not for this enterprise
    assert exc.value.code == "PIN_WEAK"
    assert exc.value.details["reason"] == "enterprise_code"


def test_generated_so_pins_pass_the_policy_and_are_not_repeated() -> None:
    pins = {generate_so_pin() for _ in range(50)}
    assert len(pins) == 50
    for pin in pins:
        assert len(pin) == 16
        check_pin(pin, field="so_pin")


def test_counter_encoding_round_trips_and_garbage_is_unreadable() -> None:
    assert TryCounter.decode(TryCounter(3, 1).encode()) == TryCounter(3, 1)
    for junk in (b"", b"user=0", b"eseal-pin-tries/1 user=-1 so=0",
                 b"eseal-pin-tries/1 user=0 so=0\n", b"\xff\xfe"):
        assert TryCounter.decode(junk) is None


ZERO = TryCounter()


def _state(flags: int = 0, counter: TryCounter | None = ZERO,
           self_locking: bool = False) -> PinState:
    return PinState("t", counter, None if counter else "missing", flags, self_locking)


def test_token_flags_win_over_the_counter() -> None:
    assert _state().tries_left == 6 and not _state().locked
    locked = _state(TokenFlag.USER_PIN_LOCKED)
    assert locked.locked and locked.tries_left == 0 and locked.lock_reason == "token"
    assert _state(TokenFlag.USER_PIN_FINAL_TRY).tries_left == 1
    # COUNT_LOW: at least one wrong try happened, whatever our counter says
    assert _state(TokenFlag.USER_PIN_COUNT_LOW).tries_left == 5
    assert _state(TokenFlag.USER_PIN_COUNT_LOW, TryCounter(3, 0)).tries_left == 3
    assert _state(TokenFlag.SO_PIN_LOCKED).so_locked
    assert _state(TokenFlag.SO_PIN_FINAL_TRY).so_tries_left == 1


def test_a_missing_counter_locks_only_tokens_that_do_not_lock_themselves() -> None:
    soft = _state(counter=None)
    assert soft.locked and soft.tries_left == 0 and soft.lock_reason == "counter_missing"
    assert not soft.so_locked  # the officer can still restore it
    hardware = _state(counter=None, self_locking=True)
    assert not hardware.locked and hardware.tries_left == 6
    assert _state(TokenFlag.USER_PIN_LOCKED, None, self_locking=True).locked
    # a hardware token that has not said FINAL_TRY has more than one try left
    assert _state(counter=TryCounter(6, 0), self_locking=True).tries_left == 2


# --- on a real SoftHSM token ----------------------------------------------------------------
@pytest.fixture
def policy(settings: Settings) -> PinPolicy:
    provision(settings.softhsm_conf_path, LABEL, PIN, SO_PIN)
    return PinPolicy(settings.pin_max_tries, settings.so_pin_max_tries)


def _wrong(policy: PinPolicy, n: int) -> list[TokenError]:
    errors = []
    for i in range(n):
        with pytest.raises(TokenError) as exc:
            policy.login(LABEL, f"wrong-{i:04d}")
        errors.append(exc.value)
    return errors


def test_six_wrong_pins_lock_the_token_and_the_right_pin_is_then_refused(
        policy: PinPolicy) -> None:
    errors = _wrong(policy, 6)
    assert [e.code for e in errors] == ["PIN_INCORRECT"] * 5 + ["PIN_LOCKED"]
    assert [e.details["tries_left"] for e in errors] == [5, 4, 3, 2, 1, 0]
    assert "5 tries left" in errors[0].message and "剩余 5 次" in errors[0].message_zh
    with pytest.raises(TokenError) as exc:
        policy.login(LABEL, PIN)
    assert exc.value.code == "PIN_LOCKED"
    assert exc.value.details["tries_left"] == 0
    assert "0 tries left" in exc.value.message
    assert policy.state(LABEL).locked


def test_a_right_pin_clears_the_count(policy: PinPolicy) -> None:
    _wrong(policy, 4)
    assert policy.state(LABEL).tries_left == 2
    policy.login(LABEL, PIN).close()
    state = policy.state(LABEL)
    assert state.counter == TryCounter(0, 0) and state.tries_left == 6


def test_so_unblock_restores_a_locked_token(policy: PinPolicy) -> None:
    _wrong(policy, 6)
    unblock(LABEL, SO_PIN, NEW_PIN, policy=policy)
    assert policy.state(LABEL).tries_left == 6
    policy.login(LABEL, NEW_PIN).close()
    with pytest.raises(TokenError) as exc:
        policy.login(LABEL, PIN)
    assert exc.value.code == "PIN_INCORRECT"


def test_the_so_pin_has_its_own_limit(policy: PinPolicy) -> None:
    codes = []
    for i in range(6):
        with pytest.raises(TokenError) as exc:
            unblock(LABEL, f"so-wrong-{i:03d}", NEW_PIN, policy=policy)
        codes.append((exc.value.code, exc.value.details.get("so_tries_left")))
    assert codes == [("SO_PIN_INCORRECT", n) for n in (5, 4, 3, 2, 1)] + [("SO_PIN_LOCKED", 0)]
    assert policy.state(LABEL).tries_left == 6  # user tries untouched
    with pytest.raises(TokenError) as exc:
        unblock(LABEL, SO_PIN, NEW_PIN, policy=policy)
    assert exc.value.code == "SO_PIN_LOCKED"
    policy.login(LABEL, PIN).close()  # the user PIN was not changed


def test_a_weak_new_pin_is_refused_before_anything_changes(policy: PinPolicy) -> None:
    _wrong(policy, 2)
    with pytest.raises(InvalidInput) as exc:
        unblock(LABEL, SO_PIN, "123456", policy=policy)
    assert exc.value.code == "PIN_WEAK" and exc.value.field == "new_pin"
    with pytest.raises(InvalidInput):
        change_pin(LABEL, PIN, "888888", policy=policy)
    assert policy.state(LABEL).counter == TryCounter(2, 0)
    policy.login(LABEL, PIN).close()


def test_change_pin_counts_a_wrong_old_pin(policy: PinPolicy) -> None:
    with pytest.raises(TokenError) as exc:
        change_pin(LABEL, "not-the-pin", NEW_PIN, policy=policy)
    assert exc.value.code == "PIN_INCORRECT" and exc.value.details["tries_left"] == 5
    change_pin(LABEL, PIN, NEW_PIN, policy=policy)
    assert policy.state(LABEL).tries_left == 6
    policy.login(LABEL, NEW_PIN).close()
    with pytest.raises(TokenError):
        policy.login(LABEL, PIN)


def _counter_objects(label: str) -> list:  # type: ignore[type-arg]
    ts = TokenSession(label, None, rw=True)
    with lock():
        objs = list(ts.session().get_objects({Attribute.CLASS: ObjectClass.DATA,
                                              Attribute.LABEL: COUNTER_LABEL}))
    return [ts, objs]


def test_deleting_the_counter_locks_the_token_until_the_officer_unblocks_it(
        policy: PinPolicy) -> None:
    ts, objs = _counter_objects(LABEL)
    assert len(objs) == 1
    with lock():
        assert objs[0][Attribute.PRIVATE] is False  # a public object: readable without a PIN
        objs[0].destroy()
    ts.close()
    state = policy.state(LABEL)
    assert state.locked and state.lock_reason == "counter_missing"
    with pytest.raises(TokenError) as exc:
        policy.login(LABEL, PIN)
    assert exc.value.code == "PIN_LOCKED" and "missing" in exc.value.message
    unblock(LABEL, SO_PIN, NEW_PIN, policy=policy)
    policy.login(LABEL, NEW_PIN).close()


def test_a_tampered_counter_counts_as_locked(policy: PinPolicy) -> None:
    ts, objs = _counter_objects(LABEL)
    with lock():
        objs[0].destroy()
        ts.session().create_object({
            Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.PRIVATE: False,
            Attribute.LABEL: COUNTER_LABEL, Attribute.APPLICATION: "eseal",
            Attribute.VALUE: b"eseal-pin-tries/1 user=zero so=0"})
    ts.close()
    with pytest.raises(TokenError) as exc:
        policy.login(LABEL, PIN)
    assert exc.value.code == "PIN_LOCKED"
    assert exc.value.details["reason"] == "counter_unreadable"


def test_an_extra_counter_with_a_lower_count_does_not_reset_the_tries(
        policy: PinPolicy) -> None:
    _wrong(policy, 3)
    ts, _ = _counter_objects(LABEL)
    with lock():
        ts.session().create_object({
            Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.PRIVATE: False,
            Attribute.LABEL: COUNTER_LABEL, Attribute.APPLICATION: "eseal",
            Attribute.VALUE: TryCounter(0, 0).encode()})
    ts.close()
    assert policy.state(LABEL).tries_left == 3


_CHILD = """
import sys
from eseal.errors import TokenError
from eseal.token import configure
from eseal.token.pin import PinPolicy
configure(sys.argv[1], sys.argv[2])
policy = PinPolicy()
print(policy.state("alice").tries_left)
try:
    policy.login("alice", "wrong-child")
except TokenError as err:
    print(err.code, err.details["tries_left"])
"""


def test_the_count_survives_into_a_new_process(policy: PinPolicy, settings: Settings) -> None:
    _wrong(policy, 2)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, settings.pkcs11_module, str(settings.softhsm_conf_path)],
        capture_output=True, text=True, check=True, env=dict(os.environ)).stdout.split("\n")
    assert out[0] == "4"
    assert out[1] == "PIN_INCORRECT 3"
    assert policy.state(LABEL).tries_left == 3  # and the child's try is seen here


def test_a_wrong_pin_from_another_client_counts_through_count_low(
        policy: PinPolicy, settings: Settings) -> None:
    done = subprocess.run(
        ["pkcs11-tool", "--module", settings.pkcs11_module, "--token-label", LABEL,
         "--login", "--pin", "wrong-by-tool", "-O"],
        capture_output=True, text=True, env=dict(os.environ,
                                                 SOFTHSM2_CONF=str(settings.softhsm_conf_path)))
    assert "CKR_PIN_INCORRECT" in done.stdout + done.stderr
    state = policy.state(LABEL)
    assert state.flags & TokenFlag.USER_PIN_COUNT_LOW
    assert state.counter == TryCounter(0, 0)
    assert state.tries_left == 5


def test_a_wrong_pin_leaves_no_session_that_blocks_an_so_login(policy: PinPolicy) -> None:
    _wrong(policy, 1)
    unblock(LABEL, SO_PIN, NEW_PIN, policy=policy)  # SO login needs no stray RO session
    policy.login(LABEL, NEW_PIN).close()


def test_unknown_label_lists_the_tokens_that_exist(policy: PinPolicy) -> None:
    with pytest.raises(TokenError) as exc:
        policy.login("bob", PIN)
    assert exc.value.code == "TOKEN_NOT_FOUND"
    assert LABEL in exc.value.details["tokens"]
    assert LABEL in exc.value.message


def test_provisioning_refuses_weak_or_equal_pins_and_creates_nothing(
        settings: Settings, tmp_path: Path) -> None:
    conf = settings.softhsm_conf_path
    for pin, so_pin, code in (("123456", SO_PIN, "PIN_WEAK"), (PIN, "111111", "PIN_WEAK"),
                              (PIN, PIN, "PIN_SAME_AS_SO_PIN"), ("abc", SO_PIN, "PIN_TOO_SHORT")):
        with pytest.raises(InvalidInput) as exc:
            provision(conf, "carol", pin, so_pin)
        assert exc.value.code == code
    with pytest.raises(InvalidInput) as exc:
        provision(conf, "a-label-that-is-far-too-long-for-a-token", PIN, SO_PIN)
    assert exc.value.code == "LABEL_TOO_LONG"
    assert not any((settings.token_dir).iterdir())

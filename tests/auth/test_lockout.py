"""Account lockout counts only failures that prove the key signed *now* (issue 13, item 5).

A captured ``/auth/verify`` body can be sent again by anyone, from any address, as often as
they like: replayed, expired or unknown challenges must feed the rate limits and never lock
the holder out or end their live session. A valid signature over a live, unanswered challenge
whose signed origin, purpose or time differ from the challenge proves the key signed for this
attempt (a phishing relay): that still locks. Real ``eseal serve`` processes, real SoftHSM
USB-Keys; clocks that stand still (``ESEAL_NOW``) make the rate-limit blocks deterministic.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import USCC_A, LiveServer, free_port
from tests.worldkit import (
    MAIL_A,
    World,
    build_world,
    challenge_at,
    post_verify,
    refusal,
    signed_answer,
)

HOLDERS: dict[str, tuple[str, str, str]] = {
    "r-many": ("甲一", "agent", USCC_A),
    "r-replayed": ("乙二", "agent", USCC_A),
    "r-expired": ("丙三", "agent", USCC_A),
    "r-unknown": ("丁四", "agent", USCC_A),
    "r-elsewhere": ("辛八", "agent", USCC_A),
    "p-origin": ("戊五", "agent", USCC_A),
    "p-purpose": ("己六", "agent", USCC_A),
    "p-mismatch": ("庚七", "agent", USCC_A),
}
THRESHOLD = 5  # Settings.lockout_threshold
FREE = 10  # login.THROTTLE_FREE: failures per address before the backoff starts


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("lockout"), HOLDERS)


@pytest.fixture(scope="module")
def still(world: World) -> LiveServer:
    """Same database, clock standing still: a rate-limit block lasts as long as the test."""
    return world.start("still", now=datetime.now(UTC))


@pytest.fixture(scope="module")
def future(world: World) -> LiveServer:
    """Same database, clock 400 days ahead (still too): every challenge issued now expired."""
    return world.start("future", now=datetime.now(UTC) + timedelta(days=400))


def live_session(world: World, label: str) -> str:
    """The holder logs in for real; returns the bearer token of that live session."""
    client = world.login(label, address="10.60.0.1")
    assert client.session is not None
    return client.session


def assert_not_locked_and_session_alive(world: World, label: str, session: str) -> None:
    name = world.holders[label].name
    row = world.query("SELECT failures, locked_until FROM accounts WHERE name = :n", n=name)[0]
    assert (row.failures, row.locked_until) == (0, None)
    assert not world.query("SELECT 1 FROM outbox WHERE kind = 'account_locked' AND "
                           "subject LIKE :n", n=f"%{name}%")
    me = httpx.get(f"{world.server.url}/auth/me", headers={"Authorization": f"Bearer {session}"})
    assert me.status_code == 200, me.text
    assert me.json()["name"] == name


def test_replaying_a_used_answer_from_many_addresses_never_locks_or_ends_the_session(
        world: World) -> None:
    answer = signed_answer(world, "r-many", challenge_at(world.server.url))
    first = post_verify(world.server.url, answer, address="10.61.0.1")
    assert first.status_code == 200
    session = first.json()["session"]
    codes = [refusal(post_verify(world.server.url, answer, address=f"10.61.{i}.2"))
             for i in range(THRESHOLD * 2 + 2)]
    assert codes == ["CHALLENGE_REPLAYED"] * (THRESHOLD * 2 + 2)
    assert_not_locked_and_session_alive(world, "r-many", session)
    assert world.login("r-many", address="10.61.99.1").me()["name"] == "甲一"
    # every replay is still in the history and the audit log, as a refusal that locked nothing
    replays = world.query("SELECT code, possession FROM login_attempts WHERE certificate_serial"
                          " = :s AND code = 'CHALLENGE_REPLAYED'", s=world.holders["r-many"].serial)
    assert len(replays) == THRESHOLD * 2 + 2


def _replayed(world: World, label: str, server: LiveServer) -> Callable[[], dict[str, Any]]:
    """The same spent body every time (a captured answer)."""
    answer = signed_answer(world, label, challenge_at(server.url, address="10.62.0.1"))
    assert post_verify(server.url, answer, address="10.62.0.1").status_code == 200
    return lambda: answer


def _expired(world: World, label: str, server: LiveServer) -> Callable[[], dict[str, Any]]:
    """Answers to challenges issued by today's server, sent where the clock is 400 days on."""
    return lambda: signed_answer(world, label, challenge_at(world.server.url,
                                                            address="10.62.0.2"))


def _unknown(world: World, label: str, server: LiveServer) -> Callable[[], dict[str, Any]]:
    """Genuine signatures over nonces this server never issued (or long purged)."""
    def make() -> dict[str, Any]:
        nonce = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        issued = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        return signed_answer(world, label, {"nonce": nonce, "issued_at": issued})
    return make


def _elsewhere(world: World, label: str, server: LiveServer) -> Callable[[], dict[str, Any]]:
    """Challenges issued by a server on this database configured with another base URL,
    signed honestly for the origin they name: the holder did nothing wrong."""
    port = free_port()
    other = world.extra["elsewhere"] = LiveServer(
        world.home, port, env={"ESEAL_BASE_URL": f"http://127.0.0.1:{port}"})
    def make() -> dict[str, Any]:
        challenge = challenge_at(other.url, address="10.62.0.3")
        assert challenge["origin"] != world.origin
        return signed_answer(world, label, challenge, origin=challenge["origin"])
    return make


#: case -> (the refusal, holder, server it is sent to, the answers)
NON_PROVING = {
    "replayed": ("CHALLENGE_REPLAYED", "r-replayed", "still", _replayed),
    "expired": ("CHALLENGE_EXPIRED", "r-expired", "future", _expired),
    "unknown": ("CHALLENGE_UNKNOWN", "r-unknown", "still", _unknown),
    "issued_under_another_base_url": ("CHALLENGE_UNKNOWN", "r-elsewhere", "still", _elsewhere),
}


@pytest.mark.parametrize("case", sorted(NON_PROVING))
def test_a_failure_an_old_answer_can_cause_feeds_the_rate_limit_and_never_locks(
        world: World, still: LiveServer, future: LiveServer, case: str) -> None:
    code, label, where, answers = NON_PROVING[case]
    server = {"still": still, "future": future}[where]
    session = live_session(world, label)
    next_answer = answers(world, label, server)
    address = f"10.63.{sorted(NON_PROVING).index(case)}.1"
    responses = [post_verify(server.url, next_answer(), address=address)
                 for _ in range(FREE + 3)]
    codes = [r.json()["code"] for r in responses]
    # far past the lockout threshold: ten free failures, then the address waits (429)
    assert codes == [code] * (FREE + 1) + ["RATE_LIMITED"] * 2
    assert [r.status_code for r in responses] == [401] * (FREE + 1) + [429] * 2
    assert all(int(r.headers["Retry-After"]) >= 1 for r in responses[FREE + 1:])
    assert_not_locked_and_session_alive(world, label, session)
    # the holder, from anywhere else, logs in as usual
    assert world.login(label, address="10.63.99.1").me()["name"] == world.holders[label].name


def _origin(challenge: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return challenge, "https://eseal-login.example"


def _purpose(challenge: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    return {**challenge, "purpose": "seal"}, None


def _mismatch(challenge: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    stale = datetime.fromisoformat(challenge["issued_at"].replace("Z", "+00:00"))
    earlier = (stale - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    return {**challenge, "issued_at": earlier}, None


PROVING = {
    "CHALLENGE_ORIGIN": ("p-origin", _origin),
    "CHALLENGE_PURPOSE": ("p-purpose", _purpose),
    "CHALLENGE_MISMATCH": ("p-mismatch", _mismatch),
}


@pytest.mark.parametrize("code", sorted(PROVING))
def test_a_fresh_signature_over_other_bytes_counts_and_locks_at_the_threshold(
        world: World, code: str) -> None:
    label, alter = PROVING[code]
    session = live_session(world, label)
    codes = []
    for i in range(THRESHOLD):
        challenge, origin = alter(challenge_at(world.server.url))
        answer = signed_answer(world, label, challenge, origin=origin)
        codes.append(refusal(post_verify(world.server.url, answer, address=f"10.64.{i}.1")))
    assert codes == [code] * THRESHOLD
    fresh = signed_answer(world, label, challenge_at(world.server.url))
    assert refusal(post_verify(world.server.url, fresh)) == "ACCOUNT_LOCKED"
    me = httpx.get(f"{world.server.url}/auth/me", headers={"Authorization": f"Bearer {session}"})
    assert refusal(me) == "SESSION_REVOKED"
    name = world.holders[label].name
    alerts = world.query("SELECT recipient FROM outbox WHERE kind = 'account_locked' AND "
                         "subject LIKE :n", n=f"%{name}%")
    assert [a.recipient for a in alerts] == [MAIL_A]
    locks = world.query("SELECT details FROM audit_events WHERE action = 'account.lock' AND "
                        "CAST(details AS TEXT) LIKE :c", c=f'%"last_code": "{code}"%')
    assert locks

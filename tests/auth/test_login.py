"""USB-Key login end to end: a real ``eseal serve`` (uvicorn) on loopback, real SoftHSM tokens,
the client signing on the token. Each refusal is pinned by its own code; the clock moves by
starting a second server process with a later ``ESEAL_NOW`` on the same database."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from eseal.errors import EsealError
from eseal.holder.client import ServiceError
from eseal.pki.login_message import login_message
from eseal.token.client import UsbKey
from tests.conftest import USCC_A, USCC_B, LiveServer
from tests.worldkit import (
    ENTERPRISE_HOLDERS,
    MAIL_A,
    PIN,
    World,
    build_world,
    challenge_at,
    eseal_cli,
    post_verify,
    refusal,
    signed_answer,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    holders = dict(ENTERPRISE_HOLDERS)
    holders.update({
        "a-twin": ("冯十一", "agent", USCC_A),
        "a-freeze": ("钱七", "agent", USCC_A),
        "a-revoke": ("孙八", "agent", USCC_A),
        "a-lock": ("周九", "agent", USCC_A),
        "a-flood": ("吴十", "agent", USCC_A),
        "a-cli-freeze": ("郑十二", "agent", USCC_A),
        "a-cli-revoke": ("王十三", "agent", USCC_A),
    })
    yield from build_world(tmp_path_factory.mktemp("login"), holders)


@pytest.fixture(scope="module")
def twin(world: World) -> LiveServer:
    """A second server process: same database, same configured base URL, real clock."""
    return world.start("twin")


@pytest.fixture(scope="module")
def still(world: World) -> LiveServer:
    """A server process whose clock stands still (ESEAL_NOW fixed at its start): a rate-limit
    block lasts exactly as long as the test needs it to, however slow the machine is."""
    return world.start("still", now=datetime.now(UTC))


@pytest.fixture(scope="module")
def future(world: World) -> LiveServer:
    """A server process whose clock is 400 days ahead: every challenge issued by the first
    server is long expired there, and a one-year certificate has expired."""
    return world.start("future", now=datetime.now(UTC) + timedelta(days=400))


# --- the happy path ------------------------------------------------------------------------------
def test_login_with_the_usb_key_opens_a_session_that_names_the_account(world: World) -> None:
    client = world.login("a-agent")
    me = client.me()
    assert (me["name"], me["role"], me["enterprise"]) == ("王五", "agent", USCC_A)
    assert me["certificate_serial"] == world.holders["a-agent"].serial
    token = client.session
    assert token is not None
    stored = world.query("SELECT token_hash FROM login_sessions WHERE token_hash = :h",
                         h=hashlib.sha256(token.encode()).hexdigest())
    assert stored and token not in stored[0][0]  # only a hash is kept
    assert stored[0][0].startswith(me["session_id"])  # the opaque id names it
    client.logout()
    ended = httpx.get(f"{world.server.url}/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert refusal(ended) == "SESSION_EXPIRED"
    assert world.last_attempt(me["certificate_serial"]).code == "OK"


def test_eseal_login_exits_zero_and_names_the_account(world: World) -> None:
    done = eseal_cli(world, "login", "--token", "a-rep", "--pin-stdin",
                     "--server", world.server.url, stdin=PIN + "\n")
    assert done.returncode == 0, done.stderr
    assert "logged in as 张三 (legal_rep, " + USCC_A in done.stdout
    assert PIN not in done.stdout + done.stderr


def test_an_empty_pin_on_stdin_is_refused_before_the_token_counts_a_try(world: World) -> None:
    done = eseal_cli(world, "login", "--token", "a-rep", "--pin-stdin",
                     "--server", world.server.url, stdin="")
    assert done.returncode == 1 and "PIN_REQUIRED" in done.stderr
    status = eseal_cli(world, "token", "status", "--label", "a-rep", "--json")
    assert json.loads(status.stdout)["tries_left"] == 6


def test_leaving_the_client_block_ends_the_session_even_after_a_failure(world: World) -> None:
    client = world.login("a-agent")
    token = client.session
    with pytest.raises(ServiceError), client:
        client.request("GET", "/filings/99999999999999999999")  # refused mid-block
    ended = httpx.get(f"{world.server.url}/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert refusal(ended) == "SESSION_EXPIRED"


def test_the_challenge_is_32_random_bytes_bound_to_origin_purpose_and_120_seconds(
        world: World) -> None:
    first, second = challenge_at(world.server.url), challenge_at(world.server.url)
    nonce = base64.urlsafe_b64decode(first["nonce"] + "=" * (-len(first["nonce"]) % 4))
    assert len(nonce) == 32 and first["nonce"] != second["nonce"]
    assert first["origin"] == world.origin and first["purpose"] == "login"
    issued = datetime.fromisoformat(first["issued_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00"))
    assert timedelta(0) < expires - issued <= timedelta(seconds=120)
    signed = login_message(nonce=first["nonce"], origin=first["origin"],
                           issued_at=first["issued_at"])
    assert signed.startswith(b"eseal-login-v1\x00{")
    assert json.loads(signed[len(b"eseal-login-v1\x00"):]) == {
        "issued_at": first["issued_at"], "nonce": first["nonce"], "origin": world.origin,
        "purpose": "login"}
    # the nonce itself is never stored, only its hash
    assert not world.query("SELECT 1 FROM login_challenges WHERE nonce_hash = :n",
                           n=first["nonce"])


# --- each refusal with its own code -------------------------------------------------------------
def test_a_replayed_answer_is_refused_on_this_server_and_on_the_other(
        world: World, twin: LiveServer) -> None:
    answer = signed_answer(world, "a-agent", challenge_at(world.server.url))
    assert post_verify(world.server.url, answer).status_code == 200
    assert refusal(post_verify(world.server.url, answer)) == "CHALLENGE_REPLAYED"
    assert refusal(post_verify(twin.url, answer)) == "CHALLENGE_REPLAYED"


def test_a_challenge_consumed_on_one_server_is_refused_on_the_other_even_in_a_race(
        world: World, twin: LiveServer) -> None:
    """Two processes, one SQLite database, one base URL: the nonce is spent exactly once."""
    answers = [signed_answer(world, "a-twin", challenge_at(world.server.url))
               for _ in range(6)]
    for answer in answers:
        results: dict[str, httpx.Response] = {}

        def send(name: str, url: str, answer: dict[str, Any] = answer,
                 results: dict[str, httpx.Response] = results) -> None:
            results[name] = post_verify(url, answer)

        threads = [threading.Thread(target=send, args=("one", world.server.url)),
                   threading.Thread(target=send, args=("two", twin.url))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results.values())
        assert codes == [200, 401], [r.text for r in results.values()]
        loser = next(r for r in results.values() if r.status_code == 401)
        assert loser.json()["code"] == "CHALLENGE_REPLAYED"
    # a challenge from the first server, answered at the second: one base URL, accepted
    answer = signed_answer(world, "a-twin", challenge_at(world.server.url))
    assert post_verify(twin.url, answer).status_code == 200


def test_a_challenge_issued_by_one_server_is_expired_at_a_server_whose_clock_is_later(
        world: World, future: LiveServer) -> None:
    answer = signed_answer(world, "a-agent", challenge_at(world.server.url))
    assert refusal(post_verify(future.url, answer)) == "CHALLENGE_EXPIRED"
    # a fresh challenge is fine: it is the challenge that expired, and the answer was spent
    assert refusal(post_verify(world.server.url, answer)) == "CHALLENGE_REPLAYED"
    assert post_verify(world.server.url, signed_answer(
        world, "a-agent", challenge_at(world.server.url))).status_code == 200


def test_an_expired_certificate_cannot_log_in(world: World, future: LiveServer) -> None:
    answer = signed_answer(world, "a-agent", challenge_at(future.url))
    assert refusal(post_verify(future.url, answer)) == "CERT_EXPIRED"


def test_a_challenge_signed_for_another_origin_is_refused(world: World) -> None:
    """A phishing site relays our challenge; the holder's client signs for the site it sees."""
    answer = signed_answer(world, "a-agent", challenge_at(world.server.url),
                           origin="https://eseal-login.example")
    assert answer["origin"] == "https://eseal-login.example"
    assert refusal(post_verify(world.server.url, answer)) == "CHALLENGE_ORIGIN"
    with pytest.raises(ServiceError) as refused:
        world.client(origin="https://eseal-login.example").login_with_token("a-agent", PIN)
    assert refused.value.code == "CHALLENGE_ORIGIN"
    world.login("a-agent")  # and a proper login resets the count


def test_a_signature_by_another_key_is_refused_without_details(world: World) -> None:
    answer = signed_answer(world, "a-agent", challenge_at(world.server.url))
    other = ec.generate_private_key(ec.SECP256R1())
    forged = other.sign(login_message(nonce=answer["nonce"], origin=answer["origin"],
                                      issued_at=answer["issued_at"]), ec.ECDSA(hashes.SHA256()))
    answer["signature"] = base64.b64encode(forged).decode()
    response = post_verify(world.server.url, answer, address="10.3.3.3")
    assert response.status_code == 401
    assert response.json() == {"code": "LOGIN_REFUSED", "message": "login refused",
                               "message_zh": "登录被拒绝"}
    attempt = world.last_attempt(world.holders["a-agent"].serial)
    assert (attempt.code, attempt.possession) == ("SIGNATURE_INVALID", False)
    # the unspent challenge still works for its holder: a forgery does not burn it
    genuine = signed_answer(world, "a-agent", {k: answer[k] for k in ("nonce", "issued_at")})
    assert post_verify(world.server.url, genuine).status_code == 200


def _foreign_copy(of: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """A certificate for ``key`` that looks like ``of`` (subject, serial, extensions) but is
    issued by a CA of the attacker's own, with the same name as ours."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(of.subject).issuer_name(of.issuer)
               .public_key(key.public_key()).serial_number(of.serial_number)
               .not_valid_before(of.not_valid_before_utc).not_valid_after(of.not_valid_after_utc))
    for ext in of.extensions:
        if ext.oid in (x509.ExtensionOID.SUBJECT_KEY_IDENTIFIER,
                       x509.ExtensionOID.AUTHORITY_KEY_IDENTIFIER):
            continue
        builder = builder.add_extension(ext.value, critical=ext.critical)
    return builder.sign(ca_key, hashes.SHA256())


def test_a_certificate_from_another_ca_is_refused(world: World) -> None:
    with UsbKey.open("a-agent", PIN) as key:
        ours = key.certificate("login")
    mine = ec.generate_private_key(ec.SECP256R1())
    foreign = _foreign_copy(ours, mine)
    challenge = challenge_at(world.server.url)
    message = login_message(nonce=challenge["nonce"], origin=world.origin,
                            issued_at=challenge["issued_at"])
    answer = {"nonce": challenge["nonce"], "origin": world.origin, "purpose": "login",
              "issued_at": challenge["issued_at"],
              "certificate": base64.b64encode(
                  foreign.public_bytes(serialization.Encoding.DER)).decode(),
              "signature": base64.b64encode(
                  mine.sign(message, ec.ECDSA(hashes.SHA256()))).decode()}
    assert refusal(post_verify(world.server.url, answer, address="10.4.4.4")) == "CERT_UNTRUSTED"
    attempt = world.last_attempt(world.holders["a-agent"].serial)
    assert (attempt.code, attempt.account_id) == ("CERT_UNTRUSTED", None)


def test_a_seal_certificate_cannot_log_in(world: World) -> None:
    challenge = challenge_at(world.server.url)
    fields = {"nonce": challenge["nonce"], "origin": world.origin, "purpose": "login",
              "issued_at": challenge["issued_at"]}
    with UsbKey.open("a-rep", PIN) as key:
        signature = key.sign("seal", login_message(**fields))
        seal = key.certificate("seal").public_bytes(serialization.Encoding.DER)
    answer = {**fields, "certificate": base64.b64encode(seal).decode(),
              "signature": base64.b64encode(signature).decode()}
    assert refusal(post_verify(world.server.url, answer)) == "CERT_PROFILE_NOT_LOGIN"


def test_freezing_a_certificate_ends_its_sessions_and_refuses_it_everywhere_at_once(
        world: World, twin: LiveServer) -> None:
    holder = world.holders["a-freeze"]
    session = world.login("a-freeze")
    other = world.login("a-freeze", url=twin.url)
    assert session.me()["name"] == holder.name
    officer = world.officer()
    frozen = officer.request("POST", f"/officer/certificates/{holder.serial}/freeze")
    assert frozen["status"] == "hold"
    for client in (session, other):
        with pytest.raises(ServiceError) as dead:
            client.me()
        assert (dead.value.status, dead.value.code) == (401, "SESSION_REVOKED")
    for url in (world.server.url, twin.url):
        answer = signed_answer(world, "a-freeze", challenge_at(url))
        assert refusal(post_verify(url, answer)) == "CERT_FROZEN"
    officer.request("POST", f"/officer/certificates/{holder.serial}/unfreeze")
    assert world.login("a-freeze").me()["name"] == holder.name
    with pytest.raises(ServiceError):  # an ended session stays ended
        session.me()


def test_a_certificate_revoked_a_moment_ago_is_refused_now_on_every_server(
        world: World, twin: LiveServer) -> None:
    holder = world.holders["a-revoke"]
    session = world.login("a-revoke")
    answer = signed_answer(world, "a-revoke", challenge_at(twin.url))  # signed before
    world.officer().request("POST", f"/officer/certificates/{holder.serial}/revoke",
                            json={"reason": "keyCompromise"})
    assert refusal(post_verify(twin.url, answer)) == "CERT_REVOKED"
    with pytest.raises(ServiceError) as dead:
        session.me()
    assert dead.value.code == "SESSION_REVOKED"
    done = eseal_cli(world, "login", "--token", "a-revoke", "--pin", PIN,
                     "--server", world.server.url)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "CERT_REVOKED" in done.stderr


@pytest.mark.parametrize(("label", "command", "end_reason"), [
    ("a-cli-freeze", ("cert", "freeze"), "certificate_frozen"),
    ("a-cli-revoke", ("cert", "revoke", "--reason", "keyCompromise"), "certificate_revoked"),
])
def test_a_status_change_on_the_cli_ends_the_holders_live_sessions_at_once(
        world: World, twin: LiveServer, label: str, command: tuple[str, ...],
        end_reason: str) -> None:
    """The session ends in the CLI's own transaction, not when its next request happens to
    notice the certificate's status: no request is made between the change and the check."""
    holder = world.holders[label]
    sessions = [world.login(label), world.login(label, url=twin.url)]
    assert all(client.me()["name"] == holder.name for client in sessions)
    done = eseal_cli(world, *command[:2], holder.serial, *command[2:])
    assert done.returncode == 0, done.stderr
    rows = world.query("SELECT ended_at, end_reason FROM login_sessions "
                       "WHERE certificate_serial = :s", s=holder.serial)
    assert len(rows) == 2
    assert all(ended is not None and reason == end_reason for ended, reason in rows)
    if command[1] == "freeze":  # a lifted freeze does not bring an ended session back
        lifted = eseal_cli(world, "cert", "unfreeze", holder.serial)
        assert lifted.returncode == 0, lifted.stderr
    for client in sessions:
        with pytest.raises(ServiceError) as dead:
            client.me()
        assert (dead.value.status, dead.value.code) == (401, "SESSION_REVOKED")


def test_malformed_answers_are_refused_without_details(world: World) -> None:
    challenge = challenge_at(world.server.url)
    for cert, sig in (("bm90IGEgY2VydA==", "AAAA"), ("%%%", "AAAA")):
        answer = {"nonce": challenge["nonce"], "origin": world.origin, "purpose": "login",
                  "issued_at": challenge["issued_at"], "certificate": cert, "signature": sig}
        response = post_verify(world.server.url, answer, address="10.5.5.5")
        assert refusal(response) == "LOGIN_REFUSED"
        assert set(response.json()) == {"code", "message", "message_zh"}
    missing = httpx.post(f"{world.server.url}/auth/verify", json={"nonce": "x"})
    assert refusal(missing, 422) == "REQUEST_INVALID"


def test_requests_without_a_live_session_are_refused(world: World) -> None:
    bare = httpx.get(f"{world.server.url}/auth/me")
    assert refusal(bare) == "SESSION_REQUIRED"
    made_up = httpx.get(f"{world.server.url}/auth/me",
                        headers={"Authorization": "Bearer " + "A" * 43})
    assert refusal(made_up) == "SESSION_EXPIRED"


# --- lockout and rate limits ---------------------------------------------------------------------
def test_five_possession_proving_failures_lock_the_account_and_alert_until_an_officer_unlocks(
        world: World) -> None:
    holder = world.holders["a-lock"]
    answer = signed_answer(world, "a-lock", challenge_at(world.server.url))
    first = post_verify(world.server.url, answer, address="10.6.0.1")
    assert first.status_code == 200
    session = first.json()["session"]
    # a phishing site relays five fresh challenges; the holder's key signs each for the site
    # it sees (a replayed answer proves nothing now and locks nothing: tests/test_lockout.py)
    codes = [refusal(post_verify(world.server.url, signed_answer(
        world, "a-lock", challenge_at(world.server.url), origin="https://eseal-login.example"),
        address=f"10.6.0.{i}")) for i in range(2, 7)]
    assert codes == ["CHALLENGE_ORIGIN"] * 5
    fresh = signed_answer(world, "a-lock", challenge_at(world.server.url))
    assert refusal(post_verify(world.server.url, fresh)) == "ACCOUNT_LOCKED"
    me = httpx.get(f"{world.server.url}/auth/me", headers={"Authorization": f"Bearer {session}"})
    assert refusal(me) == "SESSION_REVOKED"
    alerts = world.query("SELECT recipient FROM outbox WHERE kind = 'account_locked' AND "
                         "subject LIKE :n", n=f"%{holder.name}%")
    assert [a.recipient for a in alerts] == [MAIL_A]
    officer = world.officer()
    account = next(a for a in officer.request("GET", "/officer/accounts")
                   if a["name"] == holder.name)
    assert account["locked"] is True and account["locked_until"]
    until = datetime.fromisoformat(account["locked_until"])
    assert timedelta(hours=23, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=24)
    unlocked = officer.request("POST", f"/officer/accounts/{account['id']}/unlock")
    assert unlocked["locked"] is False
    assert world.login("a-lock").me()["name"] == holder.name
    events = world.query("SELECT actor FROM audit_events WHERE action = 'account.unlock'")
    assert events and events[-1].actor.startswith("officer:周主任#")


def test_a_flood_of_forged_signatures_is_rate_limited_but_never_locks_the_account(
        world: World, still: LiveServer) -> None:
    holder = world.holders["a-flood"]
    codes: list[str] = []
    for i in range(30):  # from many addresses: only the certificate's limit applies
        address = f"10.9.{i}.1"
        answer = forged_answer(world, "a-flood", challenge_at(still.url, address=address))
        response = post_verify(still.url, answer, address=address)
        codes.append(response.json()["code"])
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
    # ten free failures, the eleventh starts a backoff (2 s, then 4 s, ...): the clock of this
    # server stands still, so every later forgery meets the block
    assert codes == ["LOGIN_REFUSED"] * 11 + ["RATE_LIMITED"] * 19
    # the holder, who has the key, is not stopped by the flood on their certificate
    assert world.login("a-flood", url=still.url, address="10.8.0.1").me()["name"] == holder.name
    row = world.query("SELECT failures, locked_until FROM accounts WHERE name = :n",
                      n=holder.name)[0]
    assert (row.failures, row.locked_until) == (0, None)
    assert not world.query("SELECT 1 FROM outbox WHERE kind = 'account_locked' AND "
                           "subject LIKE :n", n=f"%{holder.name}%")


def test_one_address_sending_forgeries_is_slowed_down_and_only_that_address(
        world: World, still: LiveServer) -> None:
    challenges = [challenge_at(still.url, address="10.7.9.9") for _ in range(14)]
    statuses = []
    for challenge in challenges:
        answer = forged_answer(world, "b-agent", challenge)
        statuses.append(post_verify(still.url, answer, address="10.7.0.1").status_code)
    assert statuses == [401] * 11 + [429] * 3
    blocked = httpx.post(f"{still.url}/auth/challenge", headers={"X-Forwarded-For": "10.7.0.1"})
    assert refusal(blocked, 429) == "RATE_LIMITED"
    # the holder of the key is blocked from that address too (it is the address that is
    # limited), but nowhere else
    assert refusal(post_verify(still.url, signed_answer(world, "a-agent", challenges[0]),
                               address="10.7.0.1"), 429) == "RATE_LIMITED"
    assert world.login("a-agent", url=still.url, address="10.7.1.1").me()["name"] == "王五"


# --- history and notices ------------------------------------------------------------------------
def forged_answer(world: World, label: str, challenge: dict[str, Any]) -> dict[str, str]:
    """An answer carrying ``label``'s (public) certificate, signed by some other key."""
    with UsbKey.open(label, world.holders[label].pin) as key:
        cert = key.certificate("login").public_bytes(serialization.Encoding.DER)
    message = login_message(nonce=challenge["nonce"], origin=world.origin,
                            issued_at=challenge["issued_at"])
    forger = ec.generate_private_key(ec.SECP256R1())
    return {"nonce": challenge["nonce"], "origin": world.origin, "purpose": "login",
            "issued_at": challenge["issued_at"], "certificate": base64.b64encode(cert).decode(),
            "signature": base64.b64encode(forger.sign(message, ec.ECDSA(hashes.SHA256())))
            .decode()}


def test_every_attempt_is_in_the_history_and_a_new_network_is_flagged_and_notified(
        world: World) -> None:
    world.login("b-agent", address="10.31.0.2")  # the other enterprise's history exists
    forged = forged_answer(world, "a-agent", challenge_at(world.server.url))
    assert post_verify(world.server.url, forged, address="10.31.0.1").status_code == 401
    answer = signed_answer(world, "a-agent", challenge_at(world.server.url))
    assert post_verify(world.server.url, answer, address="10.31.0.1").status_code == 200
    assert refusal(post_verify(world.server.url, answer, address="10.31.0.1")) \
        == "CHALLENGE_REPLAYED"

    first = world.client(address="172.20.30.40")
    result = first.login_with_token("a-agent", PIN)
    assert result["new_network"] is True
    again = world.client(address="172.20.30.41").login_with_token("a-agent", PIN)
    assert again["new_network"] is False  # same /24
    notices = world.query("SELECT recipient, body FROM outbox WHERE kind = 'login_new_network' "
                          "AND body LIKE '%172.20.30.0/24%'")
    assert [n.recipient for n in notices] == [MAIL_A]

    agent = world.login("a-agent")
    history = agent.request("GET", f"/enterprises/{USCC_A}/logins", params={"limit": 1000})
    assert {h["enterprise"] for h in history} == {USCC_A}
    flagged = [h for h in history if h["network"] == "172.20.30.0/24"]
    assert [h["new_network"] for h in flagged] == [False, True]  # newest first
    assert all(h["user_agent"] == "eseal-tests" and h["address"].startswith("172.20.30.")
               for h in flagged)
    mine = [h for h in history if h["address"] == "10.31.0.1"]
    assert [(h["result"], h["code"], h["possession"]) for h in reversed(mine)] == [
        ("refused", "SIGNATURE_INVALID", False), ("ok", "OK", True),
        ("refused", "CHALLENGE_REPLAYED", True)]
    everyone = world.officer().request("GET", "/officer/logins", params={"limit": 1000})
    assert {USCC_A, USCC_B} <= {h["enterprise"] for h in everyone}
    # every attempt is audited too, and no session token is kept anywhere
    assert len(world.query("SELECT id FROM audit_events WHERE action = 'auth.login'")) == \
        len(world.query("SELECT id FROM login_attempts"))
    assert first.session is not None
    for table in ("audit_events", "login_attempts", "login_sessions"):
        dump = json.dumps([list(map(str, row)) for row in world.query(f"SELECT * FROM {table}")])
        assert first.session not in dump and answer["nonce"] not in dump


def test_sessions_expire_when_idle_and_at_their_absolute_limit(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from eseal.auth.sessions import resolve_session
    from eseal.ca.authority import Authority

    monkeypatch.setenv("ESEAL_HOME", str(world.home))
    monkeypatch.setenv("SOFTHSM2_CONF", str(world.home / "softhsm2.conf"))
    idle_token = world.login("b-agent").session
    busy_token = world.login("b-agent").session
    assert idle_token and busy_token
    start = datetime.now(UTC)
    with Authority.open(world.settings) as auth:
        def at(minutes: float) -> None:
            monkeypatch.setenv("ESEAL_NOW", (start + timedelta(minutes=minutes)).isoformat())

        at(20)
        assert resolve_session(auth, idle_token).name == "赵六"  # and touches last_seen
        at(45)
        assert resolve_session(auth, idle_token).name == "赵六"  # 25 minutes idle: alive
        at(80)
        with pytest.raises(EsealError) as idle:
            resolve_session(auth, idle_token)
        assert idle.value.code == "SESSION_EXPIRED"
        minutes = 0.0
        while minutes < 12 * 60 - 20:  # used every 20 minutes: never idle
            minutes += 20
            at(minutes)
            assert resolve_session(auth, busy_token).name == "赵六"
        at(12 * 60 + 1)
        with pytest.raises(EsealError) as late:
            resolve_session(auth, busy_token)
        assert late.value.code == "SESSION_EXPIRED"

"""The must-show of the scale-out issue, as a load driver against a running cluster.

    make cluster                       # in one shell (or: python -m deploy.cluster up)
    python -m deploy.load [--dir var/cluster] [--requests 2000]   # make cluster-load

It sends mixed requests over the replicas (round robin over their own ports, as a front
would): USB-Key logins (challenge + verify, software keys holding this CA's login
certificates) and logouts, officer issuance over the API, RFC 3161 timestamps and OCSP with
a nonce; meanwhile officers freeze and unfreeze certificates with the CLI of the replica
homes. Then it checks and prints, honestly, whatever it finds:

* answers by status class, and every 5xx with its code;
* nonces spent once: every verified login answer is replayed on another replica and must be
  refused, and the database holds no more used challenges than logins that succeeded;
* TSA serials unique;
* ``eseal audit verify`` on a replica home intact;
* each expiry notice sent once while two ``eseal notify run`` race (an SMTP sink on
  loopback counts Message-IDs).

Exit status 0 only if all of it holds.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from deploy.cluster import clean_env

USCC = "91350100M000100Y43"
NOTICE_USCC = "91110000802100433B"


# --- identities made on the CA's host -------------------------------------------------------
@dataclass
class Prepared:
    origin: str
    agents: list[tuple[Any, str]]  # (software key, base64 login certificate)
    officer: tuple[Any, str]
    leaf_der: bytes
    issuing_der: bytes
    freezable: list[str]
    notice_serials: list[str]


def _login_identity(auth: Any, *, holder: str, label: str, role: str,
                    uscc: str | None) -> tuple[Any, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from eseal import clock
    from eseal.store.models import TokenRecord

    key = ec.generate_private_key(ec.SECP256R1())
    if role == "officer":
        from eseal.ra.staff import issue_staff_certificate

        issued = issue_staff_certificate(auth, key.public_key(), holder=holder, label=label,
                                         actor="load")
        enterprise_id = None
    else:
        issued = auth.issue(_csr(key, holder), uscc=uscc, profile="login", holder=holder,
                            actor="load", token_label=label)
        enterprise_id = auth.enterprise(uscc).id
    with auth.db.write() as s:
        s.add(TokenRecord(label=label, enterprise_id=enterprise_id, role=role, holder=holder,
                          created_at=clock.now()))
    der = issued.certificate.public_bytes(serialization.Encoding.DER)
    return key, base64.b64encode(der).decode()


def _csr(key: Any, holder: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, holder)]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def prepare(ca_home: Path, *, agents: int = 24, freezable: int = 6,
            notices: int = 4) -> Prepared:
    """Enterprises, agent and officer identities, certificates to freeze and to notice."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from eseal.ca.authority import Authority
    from eseal.ra.enterprises import register_enterprise
    from eseal.settings import load_settings

    os.environ.pop("SOFTHSM2_CONF", None)
    settings = load_settings(ca_home)
    with Authority.open(settings) as auth:
        existing = {e.uscc for e in auth.enterprises()}
        if USCC not in existing:
            register_enterprise(auth, uscc=USCC, name="𠮷野家（福建）餐饮管理有限公司",
                                legal_rep="张三", actor="load")
        if NOTICE_USCC not in existing:
            register_enterprise(auth, uscc=NOTICE_USCC, name="北京测试科技有限公司",
                                legal_rep="李四", actor="load",
                                contact_email="finance@example.com")
        stamp = os.urandom(3).hex()
        ids = [_login_identity(auth, holder=f"经办人{i}", label=f"load-{stamp}-{i}",
                               role="agent", uscc=USCC) for i in range(agents)]
        officer = _login_identity(auth, holder="负载官员", label=f"load-{stamp}-officer",
                                  role="officer", uscc=None)
        leaf = auth.issue(_csr(ec.generate_private_key(ec.SECP256R1()), "状态"), uscc=USCC,
                          profile="login", holder="状态", actor="load").certificate
        frozen = [auth.issue(_csr(ec.generate_private_key(ec.SECP256R1()), f"冻结{i}"),
                             uscc=USCC, profile="login", holder=f"冻结{i}",
                             actor="load").serial for i in range(freezable)]
        noticed = [auth.issue(_csr(ec.generate_private_key(ec.SECP256R1()), f"提醒{i}"),
                              uscc=NOTICE_USCC, profile="login", holder=f"提醒{i}",
                              actor="load").serial for i in range(notices)]
        issuing = auth.certificate("issuing")
    return Prepared(origin=settings.base_url, agents=ids, officer=officer,
                    leaf_der=leaf.public_bytes(serialization.Encoding.DER),
                    issuing_der=issuing.public_bytes(serialization.Encoding.DER),
                    freezable=frozen, notice_serials=noticed)


# --- the mixed load -------------------------------------------------------------------------
@dataclass
class Tally:
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    server_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    refusals: collections.Counter[str] = field(default_factory=collections.Counter)
    tsa_serials: list[int] = field(default_factory=list)
    replays_accepted: int = 0
    replays_tried: int = 0
    logins_ok: int = 0
    cli: collections.Counter[str] = field(default_factory=collections.Counter)
    cli_failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[f"{kind} {response.status_code // 100}xx"] += 1
            if response.status_code >= 400:
                try:
                    code = response.json().get("code", "?")
                except ValueError:
                    code = "(not JSON)"
                counter = self.server_errors if response.status_code >= 500 else self.refusals
                counter[f"{kind} {response.status_code} {code}"] += 1

    @property
    def requests(self) -> int:
        return sum(v for k, v in self.statuses.items() if "skipped" not in k)


def _login(client: httpx.Client, url: str, prep: Prepared, ident: tuple[Any, str],
           tally: Tally) -> tuple[str | None, dict[str, Any] | None]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from eseal.pki.login_message import login_message

    got = client.post(f"{url}/auth/challenge")
    tally.note("challenge", got)
    if got.status_code != 200:
        return None, None
    challenge = got.json()
    fields = {"nonce": challenge["nonce"], "origin": prep.origin, "purpose": "login",
              "issued_at": challenge["issued_at"]}
    sig = ident[0].sign(login_message(**fields), ec.ECDSA(hashes.SHA256()))
    body = {**fields, "certificate": ident[1], "signature": base64.b64encode(sig).decode()}
    got = client.post(f"{url}/auth/verify", json=body)
    tally.note("verify", got)
    if got.status_code != 200:
        return None, None
    with tally.lock:
        tally.logins_ok += 1
    return got.json()["session"], body


def _ocsp_body(prep: Prepared) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    leaf = x509.load_der_x509_certificate(prep.leaf_der)
    issuing = x509.load_der_x509_certificate(prep.issuing_der)
    return (ocsp.OCSPRequestBuilder().add_certificate(leaf, issuing, hashes.SHA1())
            .add_extension(x509.OCSPNonce(os.urandom(16)), critical=False).build()
            .public_bytes(serialization.Encoding.DER))


def _tsa_body() -> bytes:
    import hashlib

    from asn1crypto import tsp

    return tsp.TimeStampReq({
        "version": "v1", "cert_req": True,
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": hashlib.sha256(os.urandom(8)).digest()}}).dump()


def _tsa_serial(der: bytes) -> int | None:
    from asn1crypto import core, tsp

    outer = core.Sequence.load(der)
    if tsp.PKIStatusInfo.load(outer[0].dump())["status"].native != "granted":
        return None
    info = tsp.TimeStampResp.load(der)["time_stamp_token"]["content"][
        "encap_content_info"]["content"].parsed
    return int(info["serial_number"].native)


def _protocol_ok(kind: str, der: bytes) -> bool:
    if kind == "ocsp":
        from cryptography.x509 import ocsp

        return ocsp.load_der_ocsp_response(der).response_status.name == "SUCCESSFUL"
    return _tsa_serial(der) is not None


def _round(i: int, urls: list[str], prep: Prepared, tally: Tally,
           officer_session: dict[str, str]) -> None:
    """One visitor: a login, one piece of work, a logout (about five requests)."""
    url, other = urls[i % len(urls)], urls[(i + 1) % len(urls)]
    address = f"10.{i // 250 % 250}.{i % 250}.1"  # each visitor its own network
    with httpx.Client(timeout=60, headers={"X-Forwarded-For": address}) as client:
        kind = ("issue", "tsa", "ocsp", "me")[i % 4]
        if kind in ("tsa", "ocsp"):
            body, ctype = ((_tsa_body(), "application/timestamp-query") if kind == "tsa"
                           else (_ocsp_body(prep), "application/ocsp-request"))
            got = client.post(f"{url}/{kind}", content=body, headers={"Content-Type": ctype})
            tally.note(kind, got)
            if got.status_code == 200 and not _protocol_ok(kind, got.content):
                with tally.lock:
                    tally.server_errors[f"{kind} protocol failure"] += 1
            if kind == "tsa" and got.status_code == 200:
                serial = _tsa_serial(got.content)
                if serial is not None:
                    with tally.lock:
                        tally.tsa_serials.append(serial)
        session, answer = _login(client, url, prep, prep.agents[i % len(prep.agents)], tally)
        if answer is not None and i % 5 == 0:  # the same answer on another replica
            replay = client.post(f"{other}/auth/verify", json=answer)
            tally.note("replay", replay)
            with tally.lock:
                tally.replays_tried += 1
                tally.replays_accepted += replay.status_code == 200
        if session is None:
            return
        bearer = {"Authorization": f"Bearer {session}"}
        if kind == "issue" and "token" not in officer_session:
            with tally.lock:
                tally.statuses["issue skipped (no officer session)"] += 1
        elif kind == "issue":
            from cryptography.hazmat.primitives.asymmetric import ec

            csr = _csr(ec.generate_private_key(ec.SECP256R1()), f"负载{i}").decode()
            got = client.post(f"{url}/officer/certificates", headers={
                "Authorization": f"Bearer {officer_session['token']}"},
                json={"csr": csr, "uscc": USCC, "profile": "login", "holder": f"负载{i}"})
            tally.note("issue", got)
        else:
            tally.note("me", client.get(f"{url}/auth/me", headers=bearer))
        tally.note("logout", client.post(f"{url}/auth/logout", headers=bearer))


def _cli(state: dict[str, Any], tally: Tally, args: list[str], i: int,
         extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    home = state["replica_homes"][i % len(state["replica_homes"])]
    done = subprocess.run([sys.executable, "-m", "eseal", *args, "--home", home],
                          env=clean_env(**(extra_env or {})), text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    with tally.lock:
        tally.cli[f"{args[0]} {args[1]} exit {done.returncode}"] += 1
        if done.returncode != 0 or "Traceback" in done.stderr:
            tally.cli_failures.append(f"{' '.join(args)}: {done.stderr.strip()[-300:]}")
    return done


def _freezer(state: dict[str, Any], prep: Prepared, tally: Tally, stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        serial = prep.freezable[i % len(prep.freezable)]
        _cli(state, tally, ["cert", "freeze", serial], i)
        _cli(state, tally, ["cert", "unfreeze", serial], i + 1)
        i += 2


def _notices(state: dict[str, Any], prep: Prepared, tally: Tally) -> dict[str, Any]:
    """Two ``eseal notify run``s racing, 300 days on, into one SMTP sink."""
    from aiosmtpd.controller import Controller

    from deploy.cluster import free_port

    received: list[str] = []

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            import email

            msg = email.message_from_bytes(envelope.content)
            received.append(str(msg["Message-ID"]))
            return "250 OK"

    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        from eseal import clock

        later = (clock.now() + timedelta(days=300)).strftime("%Y-%m-%dT%H:%M:%SZ")
        env = {"ESEAL_NOW": later, "ESEAL_ENV": "test"}  # the clock moves only in test
        with ThreadPoolExecutor(2) as pool:
            runs = [pool.submit(_cli, state, tally,
                                ["notify", "run", "--smtp-port", str(port)], i, env)
                    for i in range(2)]
            outputs = [r.result() for r in runs]
        time.sleep(0.5)
    finally:
        controller.stop()
    counts = collections.Counter(received)
    return {"received": len(received), "distinct": len(counts),
            "sent_twice_or_more": sum(1 for c in counts.values() if c > 1),
            "exits": [o.returncode for o in outputs]}


def _used_challenges(state: dict[str, Any]) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(state["database_url"])
    with engine.connect() as conn:
        used = conn.execute(text(
            "SELECT count(*) FROM login_challenges WHERE used_at IS NOT NULL")).scalar()
    engine.dispose()
    return int(used or 0)


def drive(state: dict[str, Any], *, requests: int = 2000, workers: int = 16) -> dict[str, Any]:
    prep = prepare(Path(state["ca_home"]))
    urls = state["replicas"]
    tally = Tally()
    used_before = _used_challenges(state)
    officer_session: dict[str, str] = {}
    with httpx.Client(timeout=60) as client:
        for url in urls:  # a refused officer login is reported, not fatal
            token, _ = _login(client, url, prep, prep.officer, tally)
            if token is not None:
                officer_session["token"] = token
                break
    stop = threading.Event()
    freezer = threading.Thread(target=_freezer, args=(state, prep, tally, stop), daemon=True)
    started = time.perf_counter()
    freezer.start()
    rounds = 0
    with ThreadPoolExecutor(workers) as pool:
        while tally.requests < requests:
            batch = [pool.submit(_round, rounds + k, urls, prep, tally, officer_session)
                     for k in range(workers * 2)]
            for f in batch:
                f.result()
            rounds += len(batch)
    stop.set()
    freezer.join()
    elapsed = time.perf_counter() - started
    used = _used_challenges(state) - used_before
    notices = _notices(state, prep, tally)
    audit = _cli(state, tally, ["audit", "verify"], 0)
    serials = tally.tsa_serials
    report = {
        "requests": tally.requests, "seconds": round(elapsed, 1),
        "by_status": dict(sorted(tally.statuses.items())),
        "5xx": sum(v for k, v in tally.statuses.items() if k.endswith("5xx")),
        "officer_logged_in": "token" in officer_session,
        "5xx_codes": dict(tally.server_errors),
        "4xx_codes": dict(tally.refusals),
        "logins_ok": tally.logins_ok,
        "challenges_used_in_db": used,
        "replays_tried": tally.replays_tried, "replays_accepted": tally.replays_accepted,
        "tsa_serials": len(serials), "tsa_serials_unique": len(set(serials)) == len(serials),
        "cli": dict(tally.cli), "cli_failures": tally.cli_failures[:10],
        "notices": notices,
        "audit_verify_exit": audit.returncode,
        "audit_verify": audit.stdout.strip().splitlines()[:3],
    }
    report["ok"] = (report["5xx"] == 0 and report["officer_logged_in"] and not tally.server_errors
                    and tally.replays_accepted == 0 and used <= tally.logins_ok
                    and report["tsa_serials_unique"] and audit.returncode == 0
                    and notices["sent_twice_or_more"] == 0 and not tally.cli_failures)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.load")
    parser.add_argument("--dir", default="var/cluster")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args(argv)
    state_file = Path(args.dir).resolve() / "cluster.json"
    if not state_file.exists():
        print(f"no running cluster in {args.dir}: start one with `make cluster`", file=sys.stderr)
        return 2
    os.environ.setdefault("ESEAL_ENV", "test")
    report = drive(json.loads(state_file.read_text()), requests=args.requests,
                   workers=args.workers)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

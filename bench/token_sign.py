"""Signatures per second through eseal's token layer beside a bare python-pkcs11 loop on the
same key, in the same run (``python -m bench.token_sign [--quick]``).

The eseal path is what the login client and PDF sealing use: ``UsbKey.sign_digest`` takes the
process-wide PKCS#11 lock, finds the key handle (cached per session), asks the token for one
raw signature and DER-encodes it (ECDSA). The peer calls ``PrivateKey.sign`` on an already
found handle with the same mechanism and nothing else. Both sign digests prepared before the
clock starts; rounds alternate between the two so that a noisy neighbour hurts both alike,
and the median round counts. Aim: the token layer keeps at least 80 % of the bare rate.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

AIM = ">= 0.8 of bare python-pkcs11"
PIN = "4913-7720"
SO_PIN = "so-8812-4401"


def _rate(fn: Callable[[bytes], Any], digests: list[bytes]) -> float:
    started = time.perf_counter()
    for digest in digests:
        fn(digest)
    return len(digests) / (time.perf_counter() - started)


def _measure(spec: str, label: str, conf: Path, n: int, rounds: int) -> tuple[float, float]:
    from pkcs11 import Attribute, Mechanism, ObjectClass

    from eseal.token import TokenSession, generate_keypair
    from eseal.token import library as lib
    from eseal.token.client import UsbKey
    from eseal.token.usbkey import KEY_LABELS, provision

    provision(conf, label, PIN, SO_PIN)
    setup = TokenSession(label, PIN, rw=True).open()
    info = generate_keypair(setup, spec, KEY_LABELS["login"])  # type: ignore[arg-type]
    setup.close()

    usbkey = UsbKey.open(label, PIN)
    usbkey.login_key()  # find the key before the clock starts, as a long-lived client would
    digests = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    prefix = bytes.fromhex("3031300d060960864801650304020105000420")

    token = lib.find_token(label)
    session = token.open()  # the process is logged in already: this session can sign
    handle = next(iter(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                            Attribute.ID: info.id})))
    if spec.startswith("ec-"):
        def bare(digest: bytes) -> Any:
            return handle.sign(digest, mechanism=Mechanism.ECDSA)
    else:
        def bare(digest: bytes) -> Any:
            return handle.sign(prefix + digest, mechanism=Mechanism.RSA_PKCS)

    def eseal(digest: bytes) -> bytes:
        return usbkey.sign_digest("login", digest)

    eseal(digests[0])
    bare(digests[0])
    ours, peers = [], []
    for _ in range(rounds):
        ours.append(_rate(eseal, digests))
        peers.append(_rate(bare, digests))
    session.close()
    usbkey.close()
    return statistics.median(ours), statistics.median(peers)


def run(quick: bool = False) -> list[dict[str, Any]]:
    os.environ.setdefault("ESEAL_ENV", "test")
    from eseal.settings import default_pkcs11_module
    from eseal.token import configure
    from eseal.token.softhsm import write_conf

    plans = (("ec-p256", "P-256", 1000 if quick else 10000),
             ("rsa-2048", "RSA-2048", 150 if quick else 1500))
    rounds = 3 if quick else 5
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        conf = write_conf(Path(tmp) / "softhsm2.conf", Path(tmp) / "tokens")
        configure(default_pkcs11_module(), conf)
        for spec, name, n in plans:
            ours, peer = _measure(spec, f"bench-{spec}", conf, n, rounds)
            rows.append({
                "name": f"{name} signatures through eseal.token (UsbKey.sign_digest)",
                "value": round(ours, 1),
                "unit": "sig/s",
                "peer_or_limit": f"bare python-pkcs11 loop, same key: {peer:,.0f} sig/s",
                "ratio": round(ours / peer, 3),
                "aim": AIM,
            })
    return rows


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    for row in run(quick):
        print(f"{row['name']}: {row['value']:,.0f} {row['unit']} | {row['peer_or_limit']} | "
              f"ratio {row['ratio']:.2f} (aim {row['aim']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

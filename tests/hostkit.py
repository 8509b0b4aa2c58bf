"""Test kit for the native messaging host: frames, the host as its own process, signed attrs.

``run_host(frames, env=...)`` starts ``python -m eseal.holder.native_host`` the way a browser
does (argv[1] = the extension's origin, stdin/stdout pipes) and returns every reply frame it
wrote plus whatever else reached stdout, so a test can prove nothing but frames did.
``signed_attrs(digest, cert)`` builds CMS signed attributes as pyHanko does (content type,
message digest, ESS signing-certificate-v2), without pyHanko, to feed the host's checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import algos, cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import serialization

EXTENSION_ORIGIN = "chrome-extension://ebhnilfpaegjmjbbdkgfgckkbgkaolhi/"
REPO = Path(__file__).resolve().parents[1]


def frame(message: Any) -> bytes:
    body = json.dumps(message, ensure_ascii=False).encode("utf-8") \
        if not isinstance(message, bytes) else message
    return struct.pack("=I", len(body)) + body


@dataclass
class HostRun:
    replies: list[dict[str, Any]]
    rest: bytes  # stdout bytes that were not a whole frame (must be empty)
    returncode: int
    stderr: str


def parse_frames(out: bytes) -> tuple[list[dict[str, Any]], bytes]:
    replies = []
    while len(out) >= 4:
        (n,) = struct.unpack("=I", out[:4])
        if len(out) < 4 + n:
            break
        replies.append(json.loads(out[4:4 + n].decode("utf-8")))
        out = out[4 + n:]
    return replies, out


def host_env(softhsm_conf: Path | str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESEAL_")}
    env["PYTHONPATH"] = str(REPO)
    if softhsm_conf is None:
        env.pop("SOFTHSM2_CONF", None)
    else:
        env["SOFTHSM2_CONF"] = str(softhsm_conf)
    return env


def run_host(data: bytes, *, env: dict[str, str], timeout: float = 60) -> HostRun:
    done = subprocess.run([sys.executable, "-m", "eseal.holder.native_host", EXTENSION_ORIGIN],
                          input=data, capture_output=True, env=env, timeout=timeout)
    replies, rest = parse_frames(done.stdout)
    return HostRun(replies, rest, done.returncode, done.stderr.decode("utf-8", "replace"))


def signed_attrs(digest: bytes, certificate: x509.Certificate) -> bytes:
    der = certificate.public_bytes(serialization.Encoding.DER)
    ess = tsp.SigningCertificateV2({"certs": [tsp.ESSCertIDv2({
        "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
        "cert_hash": hashlib.sha256(der).digest()})]})
    attrs = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
        cms.CMSAttribute({"type": "signing_certificate_v2", "values": [ess]}),
    ])
    return bytes(attrs.dump())

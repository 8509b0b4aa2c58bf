"""Test kit: poppler's ``pdfsig`` as an independent judge of our seals.

A verdict of ours that no tool we did not write agrees with proves little; every sealing
test that claims "valid" asks pdfsig too.
"""


from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

# ---------------------------------------------------------------------------------------------
# poppler's pdfsig as an independent judge


@dataclass(frozen=True)
class PdfsigResult:
    """What ``pdfsig`` printed, reduced to the facts we compare (it always exits 0)."""

    text: str
    signatures: int
    valid: list[bool] = field(default_factory=list)
    trusted: list[bool] = field(default_factory=list)
    total_document_signed: list[bool] = field(default_factory=list)


def pdfsig_check(pdf: Path, root: x509.Certificate, *, workdir: Path | None = None
                 ) -> PdfsigResult:
    """Run ``pdfsig -nssdir sql:DB -no-ocsp`` with an NSS database trusting only ``root``."""
    if shutil.which("pdfsig") is None or shutil.which("certutil") is None:
        raise RuntimeError("pdfsig/certutil are not installed (poppler-utils, libnss3-tools)")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        db = Path(tmp) / "nss"
        db.mkdir()
        root_pem = Path(tmp) / "root.pem"
        root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
        subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True,
                       capture_output=True)
        subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", "root", "-t", "C,C,C",
                        "-i", str(root_pem)], check=True, capture_output=True)
        proc = subprocess.run(["pdfsig", "-nssdir", f"sql:{db}", "-no-ocsp", str(pdf)],
                              capture_output=True, text=True, timeout=120)
    text = proc.stdout + proc.stderr
    blocks = re.split(r"^Signature #\d+:", text, flags=re.M)[1:]
    return PdfsigResult(
        text=text, signatures=len(blocks),
        valid=["Signature Validation: Signature is Valid" in b for b in blocks],
        trusted=["Certificate Validation: Certificate is Trusted" in b for b in blocks],
        total_document_signed=["Total document signed" in b for b in blocks])

"""`make demo` is itself a test: the whole story runs in quiet mode and leaves what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from tests.judgekit import pdfsig_check


def test_demo_tells_the_whole_story_and_leaves_verifiable_files(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESEAL_")}
    env["ESEAL_HOME"] = str(tmp_path / "somewhere-else")  # the demo ignores it
    done = subprocess.run([sys.executable, "-m", "eseal.demo", "--quiet", "--dir", str(root)],
                          env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo finished" in done.stdout
    out = root / "out"
    for name in ("root.pem", "issuing.pem", "annual-report-sealed.pdf", "seal.png",
                 "annual-report-sealed-page1.png", "receipt.json"):
        assert (out / name).stat().st_size > 0, name
    assert not (tmp_path / "somewhere-else").exists()

    # The service is stopped: the sealed filing verifies from its embedded data alone.
    sealed = out / "annual-report-sealed.pdf"
    verify = subprocess.run([sys.executable, "-m", "eseal", "verify", str(sealed), "--trust",
                             str(out / "root.pem")], env={**env, "ESEAL_HOME": str(tmp_path)},
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    result = pdfsig_check(sealed, x509.load_pem_x509_certificate((out / "root.pem")
                                                                  .read_bytes()))
    assert result.valid == [True] and result.trusted == [True]
    assert result.total_document_signed == [True]

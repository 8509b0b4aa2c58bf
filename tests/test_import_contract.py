"""The rooms contract (import-linter, ``[tool.importlinter]`` in pyproject.toml) is kept, and
is not vacuous: every rule it declares catches the import it forbids.

Why this test: a layers or forbidden contract that names a module wrongly, or a layer order
that happens to allow what the arrows forbid, passes silently forever. So the test reads the
rules back from pyproject.toml, plants one import breaking each rule in a copy of the
package (``eseal.<room>._probe_<n>`` modules, or a line appended to a module room such as
``eseal.errors``), runs ``lint-imports`` on the copy and requires every planted import in
the report. The untouched tree must keep every contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

#: The dependency direction of DESIGN.md, written out independently of the contract: what
#: each room may import besides the kernel (errors and its table error_codes, clock,
#: settings). ``__main__`` is the ``python -m eseal`` entry point and ``demo`` the demo
#: script: doors like ``cli``.
KERNEL = {"errors", "error_codes", "clock", "settings"}
DOORS_MAY = {"ra", "auth", "ca", "audit", "signing", "holder", "token", "store", "pki"}
ALLOWED: dict[str, set[str]] = {
    "__main__": {"cli", "api", "demo", *DOORS_MAY},
    "cli": DOORS_MAY, "api": DOORS_MAY, "demo": DOORS_MAY,
    "ra": {"ca", "auth", "audit", "store", "token", "pki"},
    "holder": {"signing", "token", "pki"},
    "auth": {"store", "pki"},
    "ca": {"audit", "token", "store", "pki"},
    "audit": {"token", "store", "pki"},
    "signing": {"token", "pki"},
    "token": {"pki"},
    "store": set(),
    "pki": set(),
    "settings": {"errors", "error_codes"}, "clock": {"errors", "error_codes"},
    "errors": {"error_codes"}, "error_codes": set(),
}
STORE_MUST_NOT = {"cryptography", "asn1crypto", "pkcs11", "pyhanko", "pyhanko_certvalidator",
                  "httpx", "fastapi", "starlette", "uvicorn"}


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["importlinter"]["contracts"])


def forbidden_pairs() -> list[tuple[str, str, str]]:
    """(contract id, importer, imported) for every import a declared rule forbids."""
    pairs: list[tuple[str, str, str]] = []
    for contract in _contracts():
        cid = str(contract["id"])
        if contract["type"] == "layers":
            layers = [[m.strip() for m in str(layer).split("|")]
                      for layer in contract["layers"]]  # type: ignore[attr-defined]
            for high, upper in enumerate(layers):
                for lower in layers[high + 1:]:
                    pairs += [(cid, low, up) for low in lower for up in upper]
                pairs += [(cid, a, b) for a in upper for b in upper if a != b]
        elif contract["type"] == "forbidden":
            pairs += [(cid, str(src), str(dst))
                      for src in contract["source_modules"]  # type: ignore[attr-defined]
                      for dst in contract["forbidden_modules"]]  # type: ignore[attr-defined]
        else:  # a new contract type needs its probes written here first
            raise AssertionError(f"contract {cid}: no probes for type {contract['type']}")
    return pairs


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "pyproject.toml"], cwd=tree,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_every_import_contract() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in done.stdout


def test_the_contract_forbids_exactly_what_the_dependency_direction_forbids() -> None:
    """Deleting or loosening any rule (a layer, a sibling bar, a forbidden module) lets
    some room pair through that the design forbids, and this names it."""
    declared = {(a, b) for _, a, b in forbidden_pairs()}
    rooms = sorted(ALLOWED)
    wanted = {(f"eseal.{a}", f"eseal.{b}") for a in rooms for b in rooms
              if a != b and b not in ALLOWED[a] and not (b in KERNEL and a not in KERNEL)}
    wanted |= {("eseal.store", ext) for ext in STORE_MUST_NOT}
    assert sorted(wanted - declared) == [], "the design forbids these; no rule does"
    assert sorted(declared - wanted) == [], "a rule forbids what the design allows"


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[tuple[str, str]]]:
    """A copy of the package with one planted import per forbidden pair, and the report of
    lint-imports on it; returns (report, [(expected report line fragment, pair)])."""
    tree = tmp_path_factory.mktemp("contract")
    shutil.copytree(ROOT / "eseal", tree / "eseal",
                    ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    expected: list[tuple[str, str]] = []
    for n, (cid, importer, imported) in enumerate(forbidden_pairs()):
        package = tree / Path(*importer.split("."))
        if package.is_dir():
            name = f"_probe_{n}"
            (package / f"{name}.py").write_text(f"import {imported}\n", encoding="utf-8")
            expected.append((f"{importer}.{name} -> {imported} (l.1)", f"{cid}: {importer}"))
        else:
            module = package.with_suffix(".py")
            lines = module.read_text(encoding="utf-8").splitlines()
            lines.append(f"import {imported}  # probe")
            module.write_text("\n".join(lines) + "\n", encoding="utf-8")
            expected.append((f"{importer} -> {imported} (l.{len(lines)})", f"{cid}: {importer}"))
    done = lint_imports(tree)
    assert done.returncode != 0, done.stdout
    return done.stdout, expected


def test_each_planted_import_is_reported(probed: tuple[str, list[tuple[str, str]]]) -> None:
    report, expected = probed
    missed = [f"{rule} -> {line}" for line, rule in expected if line not in report]
    assert not missed, "rules that let a forbidden import through:\n" + "\n".join(missed)

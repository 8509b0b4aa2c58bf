"""One error registry (issue 10, part 4): every code eseal can answer with is declared once in
``eseal/error_codes.py`` with the one HTTP status it answers with everywhere.

The package's source is read (AST, :mod:`tests.errorscan`) for every place a code is made;
a code nobody declared, a code raised through classes whose statuses differ from the
declared one, a declared code nothing raises and a stale ``docs/errors.md`` each fail with
the exact list to fix. The CA's own token failing is a coded 503 through a real
``eseal serve``; the CLI fails through one line.
"""

from __future__ import annotations

import ast
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from eseal import errors
from eseal.auth.refusals import REASONS
from eseal.error_docs import DOC, render
from eseal.errors import KINDS, REGISTRY, EsealError, TokenError
from eseal.settings import Settings
from tests.conftest import LiveServer, free_port, sqlite_only
from tests.errorscan import PACKAGE, SPECIAL, Scan, Scanner, Site

#: places whose code is not a literal, with why they are sound and which codes they can make
#: (``None``: they pass on a code some other place made and this test already checked)
DYNAMIC: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {
    ("eseal/api/contract.py", "error"): ("a DoorCode's own code", None),
    ("eseal/holder/client.py", "__init__"): ("the holder's copy of a server's answer", None),
    ("eseal/pki/ocsp_request.py", "__init__"): ("OCSP_ + the response status (SPECIAL)", None),
    ("eseal/pki/tsa_request.py", "__init__"): ("TSA_ + the failure info (SPECIAL)", None),
    ("eseal/ra/enrollment.py", "withdraw"): ("re-records an error already raised", None),
    ("eseal/cli/cmd_cert.py", "_refusal_lines"): ("prints renewals' refusals again", None),
    ("eseal/signing/draft_check.py", "check_draft"): (
        "a structure finding of revision_spans refuses the draft",
        ("PDF_BROKEN_XREF", "PDF_HYBRID_XREF", "PDF_REVISION_ORDER", "TRAILING_BYTES")),
}

#: the only places that set an error's status by hand: answers relayed from elsewhere
STATUS_OVERRIDES = {
    ("eseal/api/contract.py", "http_error"): "Starlette's own HTTP errors keep their status",
    ("eseal/holder/client.py", "__init__"): "the holder's copy of the server's answer",
}


PIN = "4913-7720"


@pytest.fixture(scope="module")
def scanned() -> Scan:
    return Scanner().scan()


def _error_class(name: str) -> type[EsealError] | None:
    """The class object for a class name the scan found (None for a helper's union)."""
    import importlib

    for module in ("eseal.errors", "eseal.auth.refusals", "eseal.signing.sign",
                   "eseal.audit.head", "eseal.pki.ocsp_request", "eseal.pki.tsa_request",
                   "eseal.holder.client", "eseal.store.db", "eseal.holder.native_messaging",
                   "eseal.token.session"):
        cls = getattr(importlib.import_module(module), name, None)
        if isinstance(cls, type) and issubclass(cls, EsealError):
            return cls
    return None


def produced_codes(scan: Scan) -> dict[str, list[Site]]:
    """Every code the package can make, with where: the scan's sites, the login refusals'
    table, and what the known dynamic places can make."""
    out: dict[str, list[Site]] = {}
    for site in scan.sites:
        out.setdefault(site.code, []).append(site)
    for reason in REASONS:
        cls = "LoginRateLimited" if reason == "RATE_LIMITED" else "LoginRefused"
        out.setdefault(reason, []).append(Site(reason, cls, "eseal/auth/refusals.py:REASONS"))
    for (path, function), (_why, codes) in DYNAMIC.items():
        for code in codes or ():
            out.setdefault(code, []).append(Site(code, "InvalidInput", f"{path}:{function}"))
    return out


def undeclared(codes: dict[str, list[Site]], registry: dict[str, errors.ErrorCode]) -> str:
    """The registry lines to add, ready to paste, one per missing code ('' if none)."""
    lines = []
    for code in sorted(set(codes) - set(registry)):
        sites = codes[code]
        cls = _error_class(sites[0].cls.split("|")[0])
        status = (cls.default_status if cls is not None else None) or 400
        where = ", ".join(f"{s.where} ({s.cls})" for s in sites[:3])
        lines.append(f'    ("{code}", {status}, "TODO English title", "TODO 中文标题"),'
                     f"  # {where}")
    return "\n".join(lines)


def status_conflicts(codes: dict[str, list[Site]],
                     registry: dict[str, errors.ErrorCode]) -> list[str]:
    """Codes raised through a class whose own status is not the declared one (so the same
    code would answer differently by place); ``EsealError`` and ``TokenError`` take theirs
    from the registry."""
    found = []
    for code, sites in sorted(codes.items()):
        if code not in registry:
            continue
        want = registry[code].status
        for site in sites:
            for name in site.cls.split("|"):
                if name == "DoorCode":
                    continue
                cls = _error_class(name)
                if cls is None:
                    found.append(f"{code}: {site.where} raises it through unknown {name}")
                elif cls.default_status is not None and cls.default_status != want:
                    found.append(f"{code}: declared {want}, but {site.where} raises it as "
                                 f"{name} ({cls.default_status})")
    return found


# --- (a) every code made anywhere in eseal/ is declared --------------------------------------
def test_every_code_eseal_raises_is_declared_in_the_registry(scanned: Scan) -> None:
    missing = undeclared(produced_codes(scanned), REGISTRY)
    assert not missing, "declare these codes in eseal/error_codes.py:\n" + missing


def test_every_place_that_makes_a_code_from_a_variable_is_known(scanned: Scan) -> None:
    seen = {(path, function) for path, function, _expr in scanned.dynamic}
    unknown = sorted(f"{p}:{f}: {e}" for p, f, e in scanned.dynamic if (p, f) not in DYNAMIC)
    assert not unknown, ("a code is made from a variable here; make it a literal or add the "
                         "place to DYNAMIC with the codes it can make:\n" + "\n".join(unknown))
    assert set(DYNAMIC) <= seen, f"stale DYNAMIC entries: {sorted(set(DYNAMIC) - seen)}"


def test_the_scan_finds_codes_behind_helpers_flags_and_tuples(scanned: Scan) -> None:
    where = {(s.code, s.cls) for s in scanned.sites}
    assert ("PDF_EMPTY", "InvalidInput") in where                # _pdf_error(code, ...)
    assert ("SEAL_CERT_REVOKED", "Conflict") in where            # refuse(..., conflict=True)
    assert ("NOT_THE_DRAFT", "InvalidInput") in where            # imported refuse(...)
    assert ("PDF_TRUNCATED", "InvalidInput") in where            # code, en, zh = _unreadable()
    assert ("ENROLL_CODE_INVALID", "NotFound") in where          # NotFound(*_CODE_REFUSED)
    assert ("SO_PIN_INCORRECT", "TokenError") in where           # code = a if so else b
    assert ("LOGIN_REFUSED", "LoginRefused") in where            # super().__init__(...)
    assert ("TSA_BAD_ALG", "TsaProtocolError") in where          # SPECIAL
    assert ("BODY_TOO_LARGE", "DoorCode") in where
    assert ("CA_TOKEN_UNAVAILABLE", "ServiceUnavailable") in where
    assert set(SPECIAL) <= set(scanned.classes)


def test_an_undeclared_code_is_reported_as_the_line_to_add(tmp_path: Path) -> None:
    package = tmp_path / "eseal"
    package.mkdir()
    (package / "errors.py").write_text("class EsealError(Exception): ...\n"
                                       "class NotFound(EsealError): ...\n")
    (package / "room.py").write_text(
        "from eseal.errors import NotFound\n"
        "def find(x):\n"
        "    raise NotFound('GADGET_NOT_FOUND', 'no gadget', '找不到')\n")
    scan = Scanner(package).scan()
    line = undeclared({s.code: [s] for s in scan.sites}, REGISTRY)
    assert line == ('    ("GADGET_NOT_FOUND", 404, "TODO English title", "TODO 中文标题"),'
                    "  # eseal/room.py:3 (NotFound)")


# --- (b) a code answers with one status wherever it is raised --------------------------------
def test_no_code_is_raised_through_a_class_whose_status_differs(scanned: Scan) -> None:
    conflicts = status_conflicts(produced_codes(scanned), REGISTRY)
    assert not conflicts, "\n".join(conflicts)


def test_a_code_raised_through_two_classes_with_different_statuses_is_caught() -> None:
    sites = {"CERT_NOT_FOUND": [Site("CERT_NOT_FOUND", "NotFound", "a.py:1"),
                                Site("CERT_NOT_FOUND", "Conflict", "b.py:2")]}
    assert status_conflicts(sites, REGISTRY) == [
        "CERT_NOT_FOUND: declared 404, but b.py:2 raises it as Conflict (409)"]


def test_the_status_an_error_answers_with_is_the_registrys_at_every_site(
        scanned: Scan) -> None:
    wrong = []
    for site in scanned.sites:
        cls = _error_class(site.cls)
        if cls is None or site.cls in SPECIAL or site.code not in REGISTRY:
            continue
        err = cls(site.code, "specific message", "具体说明")
        if err.status != REGISTRY[site.code].status:
            wrong.append(f"{site.where}: {site.code} answers {err.status}")
    assert not wrong, "\n".join(wrong)
    assert TokenError("CERT_NOT_FOUND", "x").status == errors.NotFound("CERT_NOT_FOUND",
                                                                        "x").status == 404
    assert errors.ConfigError("HOME_NOT_INITIALISED", "x").status == 503


def test_only_relayed_answers_set_a_status_by_hand() -> None:
    places = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and any(
                        isinstance(t, ast.Attribute) and t.attr == "status"
                        and isinstance(t.value, ast.Name) and t.value.id in ("err", "self")
                        for t in node.targets):
                    places.add((str(path.relative_to(PACKAGE.parent)), fn.name))
    places.discard(("eseal/errors.py", "status"))  # the setter itself
    assert places == set(STATUS_OVERRIDES)


def test_login_refusals_are_401_and_the_rate_limit_429() -> None:
    statuses = {reason: REGISTRY[reason].status for reason in REASONS}
    assert statuses.pop("RATE_LIMITED") == 429
    assert set(statuses.values()) == {401}


# --- (c) no declared code is unused ----------------------------------------------------------
def test_every_declared_code_is_raised_somewhere(scanned: Scan) -> None:
    unused = sorted(set(REGISTRY) - set(produced_codes(scanned)))
    assert not unused, f"declared but never raised (remove them): {unused}"


def test_every_code_is_declared_once_with_a_known_status_and_both_titles() -> None:
    assert errors.DECLARED_TWICE == []
    for entry in REGISTRY.values():
        assert re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", entry.code), entry
        assert entry.status in KINDS, entry
        assert entry.title and entry.title == entry.title.strip(), entry
        assert re.search(r"[\u4e00-\u9fff]", entry.title_zh), entry


# --- (d) docs/errors.md is the registry's ----------------------------------------------------
def test_docs_errors_md_is_generated_from_the_registry() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "run `make docs`"
    for entry in REGISTRY.values():
        assert f"| `{entry.code}` |" in render()
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    assert "(docs/errors.md)" in readme


# --- the CA's own failures are 503s, over real HTTP ------------------------------------------
@pytest.fixture
def broken_ca_pin(home: Path) -> Iterator[LiveServer]:
    """A served home whose CA PIN file holds a wrong PIN (the token is only logged in to when
    a CA key is first needed, so the service starts)."""
    from eseal.ca.authority import init_home
    from eseal.settings import load_settings
    from eseal.token import configure

    port = free_port()
    settings = load_settings(home, base_url=f"http://127.0.0.1:{port}")
    configure(settings.pkcs11_module, settings.softhsm_conf_path)
    init_home(settings)
    settings.ca_pin_file.write_text("not-the-ca-pin\n")
    server = LiveServer(home, port)
    yield server
    server.stop()


def test_a_wrong_ca_pin_is_a_coded_503_not_a_400_or_500(broken_ca_pin: LiveServer) -> None:
    server = broken_ca_pin
    answer = httpx.get(f"{server.url}/crl/issuing.crl", timeout=30)  # signed on the CA token
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["code"] == "CA_TOKEN_UNAVAILABLE"
    assert body["details"]["cause"] == "PIN_INCORRECT"
    assert body["message"] and re.search(r"[\u4e00-\u9fff]", body["message_zh"])
    ocsp_request = httpx.post(f"{server.url}/ocsp", content=b"0\x00", timeout=30)
    assert ocsp_request.status_code == 200  # OCSP answers in its own protocol, as before
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_a_holders_wrong_pin_stays_a_403_and_the_cas_own_is_a_503(
        settings: Settings) -> None:
    from eseal.token.keys import public_key
    from eseal.token.pin import generate_so_pin
    from eseal.token.session import TokenSession
    from eseal.token.usbkey import provision

    provision(settings.softhsm_conf_path, "holder-key", PIN, generate_so_pin())
    with pytest.raises(TokenError) as holder:
        TokenSession("holder-key", "8163-0429", rw=True).open()
    assert (holder.value.code, holder.value.status) == ("PIN_INCORRECT", 403)
    with pytest.raises(errors.ServiceUnavailable) as own:
        TokenSession("holder-key", "8163-0429", rw=True, service=True).open()
    assert (own.value.code, own.value.status) == ("CA_TOKEN_UNAVAILABLE", 503)
    assert own.value.details == {"token": "holder-key", "cause": "PIN_INCORRECT"}
    with TokenSession("holder-key", PIN, service=True) as ts, \
            pytest.raises(errors.ServiceUnavailable) as key:
        public_key(ts, b"no-such-key")
    assert (key.value.code, key.value.details["cause"]) == ("CA_KEY_MISSING", "KEY_NOT_FOUND")
    with pytest.raises(errors.ServiceUnavailable) as missing:
        TokenSession("no-such-token", PIN, service=True).open()
    # a missing token may be SoftHSM's blank-token moment: retried, then TOKEN_UNAVAILABLE
    assert (missing.value.code, missing.value.details["cause"]) == (
        "TOKEN_UNAVAILABLE", "TOKEN_NOT_FOUND")


@sqlite_only("it breaks the SQLite file under a live server; the PostgreSQL restart is "
             "tests/store/test_concurrent_writes.py")
def test_a_database_the_service_cannot_use_is_a_coded_503_not_a_500(
        served_home: tuple[Settings, LiveServer]) -> None:
    settings, server = served_home
    database = Path(str(settings.database).removeprefix("sqlite:///"))
    with sqlite3.connect(database) as broken:  # another hand breaks the schema under it
        broken.execute("DROP TABLE login_challenges")
    answer = httpx.post(f"{server.url}/auth/challenge", json={}, timeout=30)
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "DATABASE_UNAVAILABLE"


# --- the CLI fails through one line ----------------------------------------------------------
def test_no_cli_command_exits_through_a_hand_made_line() -> None:
    cli = PACKAGE / "cli"
    hand_made = [f"{p.name}:{n}" for p in sorted(cli.glob("*.py"))
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"SystemExit\(\d|sys\.exit\(1\)|echo\(f?\"error ", line)
                 and p.name != "__init__.py"]
    assert hand_made == []


def _eseal(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ, ESEAL_HOME=str(home), ESEAL_ENV="test")
    return subprocess.run([sys.executable, "-m", "eseal", *args], env=env, text=True,
                          capture_output=True, timeout=120)


def test_a_usage_error_and_an_uninitialised_home_each_end_in_one_coded_line(
        tmp_path: Path) -> None:
    usage = _eseal("cert", "list", "--no-such-option", home=tmp_path)
    assert usage.returncode == 2
    assert usage.stderr.splitlines()[-1].startswith("error USAGE_INVALID: ")
    assert " / 命令行用法错误" in usage.stderr.splitlines()[-1]
    empty = _eseal("cert", "list", home=tmp_path)
    assert empty.returncode == 1
    assert empty.stderr.count("\n") == 1
    assert empty.stderr.startswith("error HOME_NOT_INITIALISED [home]: ")

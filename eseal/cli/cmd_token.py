"""``eseal token``: provision, enroll, inspect, re-PIN and unblock USB-Keys.

Token commands use the PKCS#11 module and the SoftHSM configuration of the eseal home
(``ESEAL_HOME``) unless ``--module`` or ``SOFTHSM2_CONF`` say otherwise. ``rekey`` replaces a
holder's key with a new one on the token (``eseal.holder.rekey.rekey_on_token``:
the client side of ``eseal.ra.rekey.rekey``). PINs come from an
option, from lines of stdin (``--pin-stdin``) or from a hidden prompt on a terminal; they are
never printed or logged. Commands that need the authority (enrolling, refreshing, keeping and
using SO PINs) open the home's CA; ``status`` and ``change-pin`` work on any token.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from cryptography import x509

from eseal.cli.common import authority, cli_actor, echo_json, home_option
from eseal.errors import InvalidInput
from eseal.holder.rekey import rekey_on_token
from eseal.settings import Settings, load_settings

if TYPE_CHECKING:
    from eseal.ca.authority import Authority
    from eseal.token.pin import PinPolicy

module_option = click.option(
    "--module", "module", type=click.Path(dir_okay=False), default=None,
    help="PKCS#11 module (default: the home's setting, SoftHSM2)")
label_option = click.option("--label", required=True, help="the token's label")
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")
actor_option = click.option("--actor", default=None,
                            help="who acts, for the audit log (default: officer:<login>@cli)")
pin_stdin_option = click.option(
    "--pin-stdin", is_flag=True,
    help="read the PINs not given as options from stdin, one per line, in the order the "
         "options are listed")


class _Secrets:
    """PINs from options, then stdin lines, then a hidden prompt on a terminal."""

    def __init__(self, from_stdin: bool) -> None:
        self.from_stdin = from_stdin

    def get(self, value: str | None, *, prompt: str, field: str, confirm: bool = False) -> str:
        if value is not None:
            return value
        if self.from_stdin:
            line = sys.stdin.readline()
            if not line:
                raise InvalidInput("PIN_REQUIRED", f"{prompt}: no line left on stdin",
                                   f"标准输入中缺少 {prompt}", field=field)
            return line.rstrip("\r\n")
        if not sys.stdin.isatty():
            option = "--" + field.replace("_", "-")
            raise InvalidInput("PIN_REQUIRED",
                               f"{prompt} required (use {option} or --pin-stdin)",
                               f"需要 {prompt}（使用 {option} 或 --pin-stdin）", field=field)
        return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def _settings(home: str | None, module: str | None) -> Settings:
    settings = load_settings(home)
    if module:
        settings = settings.replace(pkcs11_module=module)
    from eseal.ca.authority import configure_tokens

    configure_tokens(settings)
    return settings


def _conf_path(settings: Settings) -> Path:
    """The SoftHSM configuration in force: ``SOFTHSM2_CONF`` unless the home names one."""
    env = os.environ.get("SOFTHSM2_CONF")
    if env and not settings.softhsm_conf:
        return Path(env)
    return settings.softhsm_conf_path


def _policy(settings: Settings) -> PinPolicy:
    from eseal.token.pin import PinPolicy

    return PinPolicy(settings.pin_max_tries, settings.so_pin_max_tries)


def _has_ca(settings: Settings) -> bool:
    return settings.ca_pin_file.exists()


@click.group("token")
def command() -> None:
    """USB-Keys (PKCS#11 tokens): provision, enroll, status, change-pin, unblock, rekey."""


# --- init -------------------------------------------------------------------------------------
@command.command("init")
@home_option
@module_option
@label_option
@click.option("--pin", default=None, help="the holder's PIN (6-16 characters)")
@click.option("--so-pin", default=None,
              help="the security officer's PIN (default: a random one the CA keeps)")
@pin_stdin_option
@actor_option
def init_cmd(home: str | None, module: str | None, label: str, pin: str | None,
             so_pin: str | None, pin_stdin: bool, actor: str | None) -> None:
    """Provision a SoftHSM token under the home's softhsm2.conf.

    Hardware USB-Keys are initialised with their vendors' tools instead, then enrolled with
    `eseal token enroll`. Without --so-pin a random SO PIN is generated and kept, encrypted,
    in the CA's records (as CAs keep the SO PINs of the keys they hand out); nothing secret
    is printed.
    """
    from eseal.errors import ConfigError
    from eseal.token.pin import check_pin, generate_so_pin
    from eseal.token.softhsm import delete_token
    from eseal.token.usbkey import check_label, provision

    settings = _settings(home, module)
    secrets_in = _Secrets(pin_stdin)
    check_label(label)
    user_pin = secrets_in.get(pin, prompt="new PIN", field="pin", confirm=True)
    check_pin(user_pin, forbidden=[label])
    generated = so_pin is None
    if not _has_ca(settings):
        if generated:
            raise ConfigError("HOME_NOT_INITIALISED",
                              f"no CA in {settings.home} to keep a generated SO PIN: run "
                              "`eseal init` first, or give --so-pin and keep it yourself",
                              f"{settings.home} 中没有 CA 保管管理员 PIN：请先运行 `eseal init`，"
                              "或使用 --so-pin 自行保管", field="so_pin")
        assert so_pin is not None
        provision(_conf_path(settings), label, user_pin, so_pin,
                  policy=_policy(settings))
        click.echo(f"token {label!r} provisioned; its SO PIN is NOT kept (no CA in this home)")
        return
    from eseal.ra.so_pins import check_label_free, keep_so_pin

    officer_pin = so_pin if so_pin is not None else generate_so_pin()
    with authority(settings) as auth:
        check_label_free(auth, label)
        provision(_conf_path(settings), label, user_pin, officer_pin,
                  policy=_policy(settings))
        try:
            keep_so_pin(auth, label, officer_pin, actor=actor or cli_actor(),
                        generated=generated)
        except BaseException:
            delete_token(_conf_path(settings), label)
            raise
    how = "generated and kept" if generated else "kept"
    click.echo(f"token {label!r} provisioned; SO PIN {how}, encrypted, by the CA")


# --- enroll ---------------------------------------------------------------------------------
@command.command("enroll")
@home_option
@module_option
@label_option
@click.option("--pin", default=None, help="the token's user PIN")
@pin_stdin_option
@click.option("--enterprise", "uscc", default=None,
              help="the enterprise's unified social credit code (18 characters)")
@click.option("--role", type=click.Choice(["legal_rep", "agent"]), default=None,
              help="legal_rep gets a login and a seal key; agent a login key")
@click.option("--holder", default=None, help="the holder's name as registered")
@click.option("--server", default=None,
              help="enroll through this eseal service with an enrollment code (--code) "
                   "instead of this home's local CA")
@click.option("--code", default=None,
              help="the single-use enrollment code (with --server); it fixes enterprise, "
                   "role and holder")
@click.option("--key-type", default="ec-p256",
              type=click.Choice(["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"]),
              help="key type generated on the token")
@actor_option
@json_option
def enroll_cmd(home: str | None, module: str | None, label: str, pin: str | None,
               pin_stdin: bool, uscc: str | None, role: str | None, holder: str | None,
               server: str | None, code: str | None, key_type: str,
               actor: str | None, as_json: bool) -> None:
    """Generate keys on the token, have the CA certify them, write the certificates.

    The login key (both roles) and the seal key (legal representative only) are generated on
    the token and never leave it; each certificate is stored beside its key (same CKA_ID,
    same label) with the CA chain. A failure half way leaves nothing behind.

    Locally (an officer at the CA's console): --enterprise, --role and --holder. From the
    holder's own machine: --server URL --code CODE (the code says who and what).
    """
    if server is not None or code is not None:
        if server is None or code is None:
            raise InvalidInput("SERVER_AND_CODE", "--server and --code go together",
                               "--server 与 --code 须同时给出",
                               field="code" if code is None else "server")
        if uscc or role or holder:
            raise InvalidInput("CODE_FIXES_HOLDER",
                               "with --code the enrollment code fixes enterprise, role and "
                               "holder: drop --enterprise/--role/--holder",
                               "使用开通码时企业、角色与持有人由开通码确定，请勿另行指定",
                               field="code")
        _enroll_remote(home, module, label, pin, pin_stdin, server, code, key_type, as_json)
        return
    missing = [name for name, value in (("--enterprise", uscc), ("--role", role),
                                        ("--holder", holder)) if not value]
    if missing:
        raise InvalidInput("ENROLL_OPTIONS_MISSING",
                           f"give {', '.join(missing)} (or --server and --code)",
                           f"缺少 {', '.join(missing)}（或使用 --server 与 --code）",
                           field=missing[0].lstrip("-"))
    assert uscc is not None and role is not None and holder is not None
    from eseal.ra.enrollment import enroll_on_token

    settings = _settings(home, module)
    user_pin = _Secrets(pin_stdin).get(pin, prompt="PIN", field="pin")
    with authority(settings) as auth:
        result = enroll_on_token(auth, label=label, pin=user_pin, uscc=uscc, role=role,
                                 holder=holder, actor=actor or cli_actor(),
                                 key_spec=key_type)  # type: ignore[arg-type]
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(f"token {label!r} enrolled for {result.uscc} ({role}, {result.holder})")
    for purpose, issued in result.issued.items():
        click.echo(f"  {purpose:5} certificate {issued.serial}  "
                   f"until {issued.certificate.not_valid_after_utc:%Y-%m-%d}")


def _enroll_remote(home: str | None, module: str | None, label: str, pin: str | None,
                   pin_stdin: bool, server: str, code: str, key_type: str,
                   as_json: bool) -> None:
    """``--server --code``: keys made on this machine's token, certified by the service."""
    from eseal.holder.client import EsealClient

    _settings(home, module)
    user_pin = _Secrets(pin_stdin).get(pin, prompt="PIN", field="pin")
    with EsealClient(server) as client:
        result = client.enroll_token(code=code, label=label, pin=user_pin,
                                     key_spec=key_type)  # type: ignore[arg-type]
    if as_json:
        echo_json({k: v for k, v in result.items() if k != "chain"})
        return
    where = f"{result['enterprise']}, " if result.get("enterprise") else ""
    click.echo(f"token {label!r} enrolled ({where}{result['role']}, {result['holder']})")
    for purpose, item in result["certificates"].items():
        click.echo(f"  {purpose:5} certificate {item['serial']}  until {item['not_after'][:10]}")


# --- refresh ----------------------------------------------------------------------------------
@command.command("refresh")
@home_option
@module_option
@label_option
@actor_option
@json_option
def refresh_cmd(home: str | None, module: str | None, label: str, actor: str | None,
                as_json: bool) -> None:
    """Install the certificates the CA renewed for this token's keys (no PIN needed)."""
    from eseal.ra.enrollment import refresh_token

    settings = _settings(home, module)
    with authority(settings) as auth:
        installed = refresh_token(auth, label=label, actor=actor or cli_actor())
    if as_json:
        echo_json({"label": label, "installed": installed})
        return
    if not installed:
        click.echo(f"token {label!r} already holds its current certificates")
    for item in installed:
        click.echo(f"installed {item['profile']} certificate {item['serial']}")


# --- status -----------------------------------------------------------------------------------
@command.command("status")
@home_option
@module_option
@label_option
@json_option
def status_cmd(home: str | None, module: str | None, label: str, as_json: bool) -> None:
    """The token, its keys and certificates, tries left and whether it is locked (no PIN)."""
    from eseal.pki.oids import profile_of
    from eseal.token.usbkey import status

    settings = _settings(home, module)
    st = status(label, policy=_policy(settings), profile_of=profile_of)
    if as_json:
        echo_json(st.to_dict())
        return
    state = "LOCKED" if st.locked else "unlocked"
    click.echo(f"token {st.label} ({st.manufacturer} {st.model}, serial {st.serial})")
    click.echo(f"  PIN: {state}, {st.tries_left} of {st.pin.max_tries} tries left"
               + (f" ({st.pin.lock_reason})" if st.pin.lock_reason else ""))
    click.echo(f"  SO PIN: {'LOCKED' if st.pin.so_locked else 'unlocked'}, "
               f"{st.pin.so_tries_left} tries left")
    for key in st.keys:
        click.echo(f"  key  {key.label:16} {key.algorithm:14} id {key.id}")
    for cert in st.certificates:
        click.echo(f"  cert {cert.label:16} {cert.profile or '?':6} serial {cert.serial} "
                   f"until {cert.not_after:%Y-%m-%d}  {cert.subject}")
    for cert in st.ca_chain:
        click.echo(f"  CA   {cert.label:16} {cert.subject}")


# --- change-pin -------------------------------------------------------------------------------
@command.command("change-pin")
@home_option
@module_option
@label_option
@click.option("--pin", default=None, help="the current PIN (a wrong one counts as a try)")
@click.option("--new-pin", default=None, help="the new PIN (6-16 characters)")
@pin_stdin_option
def change_pin_cmd(home: str | None, module: str | None, label: str, pin: str | None,
                   new_pin: str | None, pin_stdin: bool) -> None:
    """Change the user PIN."""
    from eseal.token.usbkey import change_pin, enterprise_codes

    settings = _settings(home, module)
    secrets_in = _Secrets(pin_stdin)
    old = secrets_in.get(pin, prompt="current PIN", field="pin")
    new = secrets_in.get(new_pin, prompt="new PIN", field="new_pin", confirm=True)
    change_pin(label, old, new, policy=_policy(settings), forbidden=enterprise_codes(label))
    if _has_ca(settings):  # at the CA's console: the change goes into the credential ledger
        from eseal.ra.so_pins import token_record

        with authority(settings) as auth:
            if token_record(auth, label) is not None:
                with auth.change(actor=f"holder:{label}", action="token.pin.change",
                                 target=label):
                    pass
    click.echo(f"PIN of token {label!r} changed")


# --- unblock ----------------------------------------------------------------------------------
@command.command("unblock")
@home_option
@module_option
@label_option
@click.option("--so-pin", default=None,
              help="the security officer's PIN (default: the one the CA keeps; audited)")
@click.option("--new-pin", default=None, help="the holder's new PIN")
@pin_stdin_option
@actor_option
def unblock_cmd(home: str | None, module: str | None, label: str, so_pin: str | None,
                new_pin: str | None, pin_stdin: bool, actor: str | None) -> None:
    """Unblock a locked token with the SO PIN and set a new user PIN (an officer action)."""
    from eseal.errors import EsealError
    from eseal.token.pin import check_pin
    from eseal.token.usbkey import enterprise_codes, unblock

    settings = _settings(home, module)
    new = _Secrets(pin_stdin).get(new_pin, prompt="new PIN", field="new_pin", confirm=True)
    forbidden = enterprise_codes(label)  # also: TOKEN_NOT_FOUND before anything else
    check_pin(new, field="new_pin", forbidden=[label, *forbidden])
    policy = _policy(settings)
    who = actor or cli_actor()
    if so_pin is not None and not _has_ca(settings):
        unblock(label, so_pin, new, policy=policy, forbidden=forbidden)
        click.echo(f"token {label!r} unblocked with the given SO PIN")
        return
    from eseal.ra.so_pins import kept_so_pin

    details = {"so_pin": "given" if so_pin is not None else "kept"}
    with authority(settings) as auth:
        officer_pin = so_pin if so_pin is not None else kept_so_pin(
            auth, label, actor=who, purpose="unblock")
        try:
            unblock(label, officer_pin, new, policy=policy, forbidden=forbidden)
        except EsealError as err:
            auth.record_refusal(actor=who, action="token.unblock", target=label, error=err,
                                details=details)
            raise
        with auth.change(actor=who, action="token.unblock", target=label, details=details):
            pass
    click.echo(f"token {label!r} unblocked; the holder's new PIN is set")


# --- list -------------------------------------------------------------------------------------
@command.command("list")
@home_option
@module_option
@json_option
def list_cmd(home: str | None, module: str | None, as_json: bool) -> None:
    """The labels of the tokens this home's PKCS#11 configuration sees."""
    from eseal.token import token_labels

    _settings(home, module)
    labels = [label for label in token_labels() if label]
    if as_json:
        echo_json(labels)
        return
    for label in labels:
        click.echo(label)


# --- rekey ------------------------------------------------------------------------------------
class LocalRekeyCa:
    """``RekeyCa`` on the local authority (the ``--server`` variant comes with the API)."""

    def __init__(self, auth: Authority, actor: str) -> None:
        self.auth, self.actor = auth, actor

    def current(self, key_id_hex: str, purpose: str) -> x509.Certificate | None:
        rows = [r for r in self.auth.certificates_for_key(key_id_hex) if r.profile == purpose]
        return x509.load_der_x509_certificate(rows[0].der) if rows else None

    def rekey(self, old_serial: str, csr_pem: bytes, proof: bytes) -> x509.Certificate:
        from eseal.ra import rekey

        return rekey.rekey(self.auth, old_serial, csr_pem, proof, self.actor).certificate

    def confirm(self, new_serial: str) -> None:
        from eseal.ra import rekey

        rekey.confirm_rekey(self.auth, new_serial, self.actor)

    def pending(self, serial: str) -> bool:
        from eseal.ra import rekey

        return rekey.rekey_pending(self.auth, serial)


@command.command("rekey")
@home_option
@module_option
@label_option
@click.option("--pin", default=None, help="the token's user PIN")
@pin_stdin_option
@click.option("--profile", "purpose", type=click.Choice(["login", "seal"]), default="login",
              show_default=True, help="which key to replace")
@click.option("--key-type", default=None,
              type=click.Choice(["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"]),
              help="type of the new key (default: that of the old one)")
@actor_option
@json_option
def rekey_cmd(home: str | None, module: str | None, label: str, pin: str | None,
              pin_stdin: bool, purpose: str, key_type: str | None, actor: str | None,
              as_json: bool) -> None:
    """Replace a key on the token: new key, CSR, proof signed by the old key, new
    certificate installed; the old certificate is superseded only after that.

    Allowed in the renewal window (from 90 days before expiry until the grace period ends)
    and required once a key reaches the key-age limit. Run it again after an interruption.
    """
    from eseal.token.client import UsbKey

    settings = _settings(home, module)
    user_pin = _Secrets(pin_stdin).get(pin, prompt="PIN", field="pin")
    with authority(settings) as auth:
        usbkey = UsbKey(_policy(settings).login(label, user_pin, rw=True))
        try:
            result = rekey_on_token(usbkey, purpose, LocalRekeyCa(auth, actor or
                                                                  f"holder:{label}@cli"),
                                    key_spec=key_type)
        finally:
            usbkey.close()
    if as_json:
        echo_json(result)
        return
    how = "finished the interrupted re-key" if result["resumed"] else "re-keyed"
    click.echo(f"token {label!r}: {how} {purpose}; certificate {result['new_serial']} "
               f"until {result['not_after'][:10]}")

"""The holder's side of a remote unblock (远程解锁): everything that touches the USB-Key.

The service answers a spent one-time authorisation with the token's current SO PIN and a
fresh one (:mod:`eseal.ra.remote_unblock`). Here, on the holder's own machine: log in as SO,
set the holder's new user PIN on the token (it is typed here and goes nowhere else: no
request carries it), change the SO PIN to the fresh one, and tell the service it is done so
it keeps the fresh SO PIN. Afterwards the SO PIN that travelled no longer opens the token.
"""

from __future__ import annotations

from typing import Any

from pkcs11.exceptions import PKCS11Error

from eseal.errors import TokenError
from eseal.holder.client import EsealClient
from eseal.token import library as lib
from eseal.token.pin import PinPolicy, check_pin
from eseal.token.session import remember_login
from eseal.token.usbkey import enterprise_codes, unblock


def rotate_so_pin(label: str, old_so_pin: str, new_so_pin: str, *,
                  policy: PinPolicy | None = None) -> None:
    """Change the token's SO PIN (a wrong old one counts as an SO try)."""
    policy = policy or PinPolicy()
    check_pin(new_so_pin, field="so_pin")
    so = policy.login_so(label, old_so_pin)
    try:
        with lib.lock():
            try:
                so.session().set_pin(old_so_pin, new_so_pin)
                remember_login(label, new_so_pin, so=True)
            except PKCS11Error as exc:
                raise TokenError("SO_PIN_CHANGE_FAILED",
                                 f"token {label!r} refused the new SO PIN: "
                                 f"{lib.plain_reason(exc)[0]}",
                                 f"USB-Key {label!r} 拒绝了新的管理员 PIN", field="so_pin") from exc
    finally:
        so.close()


def request_unblock(client: EsealClient, label: str) -> dict[str, Any]:
    return dict(client.request("POST", "/unblock-requests", json={"label": label}))


def finish_unblock(client: EsealClient, *, request_id: int, authorisation: str, label: str,
                   new_pin: str, policy: PinPolicy | None = None) -> dict[str, Any]:
    """Redeem the authorisation, unblock the token with a new user PIN, rotate its SO PIN,
    confirm. The new PIN is checked *before* the authorisation is spent."""
    forbidden = enterprise_codes(label)
    check_pin(new_pin, field="new_pin", forbidden=[label, *forbidden])
    secret = dict(client.request("POST", f"/unblock-requests/{request_id}/redeem",
                                 json={"authorisation": authorisation}))
    unblock(label, secret["so_pin"], new_pin, policy=policy, forbidden=forbidden)
    rotate_so_pin(label, secret["so_pin"], secret["next_so_pin"], policy=policy)
    return dict(client.request("POST", f"/unblock-requests/{request_id}/complete",
                               json={"authorisation": authorisation}))

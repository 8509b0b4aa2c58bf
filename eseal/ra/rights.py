"""Rights per kind of business (分级权限): which filing types a sub-account may submit.

Filing types are rows (``filing_types``, seeded by migration 0007: 年度报告, 变更登记, 备案,
注销登记, 其他), so the authority adds a kind of business without a release. The legal
representative grants an agent a set of types; the set lives with the account, not in the
certificate, so changing it re-issues nothing and takes effect on the next submission. An
agent whose rights were never set holds every type (accounts enrolled before rights existed
keep working); once set, exactly the set. The legal representative holds every type. A
submission of a type the account does not hold is refused ``FILING_TYPE_FORBIDDEN`` (403).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from eseal import clock
from eseal.auth.accounts import get_account
from eseal.ca.authority import Authority
from eseal.errors import Forbidden, InvalidInput, NotFound
from eseal.store.models_enterprise import AccountRight, AccountRightsSet, FilingType

DEFAULT_FILING_TYPE = "other"
MAX_TYPE_LENGTH = 32


def filing_types(auth: Authority) -> list[dict[str, str]]:
    with auth.db.read() as s:
        return [{"code": t.code, "name_zh": t.name_zh, "name_en": t.name_en}
                for t in s.execute(select(FilingType).order_by(FilingType.code)).scalars()]


def check_filing_type(auth: Authority, code: Any, field: str = "type") -> str:
    known = {t["code"] for t in filing_types(auth)}
    if not isinstance(code, str) or code not in known:
        shown = code if isinstance(code, str) else type(code).__name__
        raise InvalidInput("FILING_TYPE_UNKNOWN",
                           f"unknown filing type {str(shown)[:40]!r} (known: "
                           f"{', '.join(sorted(known))})",
                           f"未知业务类型 {str(shown)[:40]!r}", field=field)
    return code


def rights_of(auth: Authority, account_id: int) -> dict[str, Any]:
    """``{"restricted": bool, "types": [...]}``: an unrestricted account holds every type."""
    with auth.db.read() as s:
        restricted = s.get(AccountRightsSet, account_id) is not None
        types = sorted(s.execute(select(AccountRight.filing_type)
                                 .where(AccountRight.account_id == account_id)).scalars())
    if not restricted:
        types = [t["code"] for t in filing_types(auth)]
    return {"account_id": account_id, "restricted": restricted, "types": types}


def set_rights(auth: Authority, account_id: int, types: Any, *, actor: str,
               by_role: str = "officer", by_enterprise_id: int | None = None
               ) -> dict[str, Any]:
    """Grant an agent exactly ``types`` (replacing what they held; audited with both)."""
    details: dict[str, Any] = {"account_id": account_id, "types": types}
    target = f"account:{account_id}"

    def validate() -> list[str]:
        account = get_account(auth, account_id)
        if account.role != "agent" or (by_role != "officer"
                                       and account.enterprise_id != by_enterprise_id):
            raise NotFound("ACCOUNT_NOT_FOUND",
                           f"no agent account {account_id} whose rights you may set",
                           f"找不到可设置权限的经办人账户 {account_id}", field="account_id")
        if not isinstance(types, list) or len(types) > 50:
            raise InvalidInput("RIGHTS_INVALID", "rights are a list of filing type codes",
                               "权限应为业务类型代码列表", field="types")
        details["enterprise"] = account.enterprise_uscc
        return sorted({check_filing_type(auth, t, f"types[{i}]") for i, t in enumerate(types)})

    wanted = auth.refusing(validate, actor=actor, action="account.rights.set", target=target,
                           details=details)
    with auth.change(actor=actor, action="account.rights.set", target=target,
                     details=details) as s:
        details["previous"] = sorted(s.execute(select(AccountRight.filing_type).where(
            AccountRight.account_id == account_id)).scalars())
        s.execute(delete(AccountRight).where(AccountRight.account_id == account_id))
        for code in wanted:
            s.add(AccountRight(account_id=account_id, filing_type=code))
        marker = s.get(AccountRightsSet, account_id)
        if marker is None:
            s.add(AccountRightsSet(account_id=account_id, set_by=actor, set_at=clock.now()))
        else:
            marker.set_by, marker.set_at = actor, clock.now()
        details["types"] = wanted
    return rights_of(auth, account_id)


def check_may_file(auth: Authority, *, account_id: int, role: str, filing_type: str) -> None:
    """Refuse (403 ``FILING_TYPE_FORBIDDEN``) a type the account does not hold."""
    if role == "legal_rep":
        return
    held = rights_of(auth, account_id)
    if filing_type not in held["types"]:
        raise Forbidden("FILING_TYPE_FORBIDDEN",
                        f"this account may not submit {filing_type} filings (it holds: "
                        f"{', '.join(held['types']) or 'none'})",
                        f"该账户无权提交此类业务（{filing_type}）", field="type")

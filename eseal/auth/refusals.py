"""Why a login was refused: every exact refusal code with its English and Chinese text.

The HTTP answer for any refusal before a valid signature says only ``LOGIN_REFUSED`` (a
certificate is public, so detail would help an attacker); the exact code goes to the login
history and the audit log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eseal.errors import RateLimited, Unauthorized

if TYPE_CHECKING:
    pass


#: every exact refusal code, English and Chinese
REASONS: dict[str, tuple[str, str]] = {
    "ANSWER_MALFORMED": ("the login answer is malformed", "登录应答格式错误"),
    "CERT_MALFORMED": ("the certificate cannot be read", "证书无法解析"),
    "SIGNATURE_INVALID": ("the signature does not verify with the certificate's key",
                          "签名与证书公钥不符"),
    "CHALLENGE_UNKNOWN": ("this challenge was never issued here", "该挑战不是本服务签发的"),
    "CHALLENGE_REPLAYED": ("this challenge was already used", "该挑战已被使用（重放）"),
    "CHALLENGE_EXPIRED": ("this challenge has expired", "该挑战已过期"),
    "CHALLENGE_ORIGIN": ("the challenge was signed for another site",
                         "该挑战签名所针对的站点不是本站"),
    "CHALLENGE_PURPOSE": ("the challenge was signed for another purpose", "该挑战签名用途不符"),
    "CHALLENGE_MISMATCH": ("the signed challenge differs from the one issued",
                           "签名内容与签发的挑战不一致"),
    "CERT_UNTRUSTED": ("the certificate was not issued by this CA", "证书不是本 CA 签发的"),
    "CERT_PROFILE_NOT_LOGIN": ("this certificate is not a login certificate",
                               "该证书不是登录证书"),
    "CERT_NOT_YET_VALID": ("the certificate is not valid yet", "证书尚未生效"),
    "CERT_EXPIRED": ("the certificate has expired", "证书已过期"),
    "CERT_FROZEN": ("the certificate is frozen", "证书已冻结"),
    "CERT_REVOKED": ("the certificate is revoked", "证书已吊销"),
    "ENTERPRISE_DEREGISTERED": ("the enterprise is deregistered", "企业已注销"),
    "ACCOUNT_NOT_LINKED": ("no account is linked to this USB-Key", "该 USB-Key 未关联账户"),
    "ACCOUNT_DISABLED": ("the account is disabled", "账户已停用"),
    "ACCOUNT_LOCKED": ("the account is locked after repeated suspicious logins; an officer can "
                       "unlock it", "账户因多次可疑登录已被锁定，请联系管理员解锁"),
    "RATE_LIMITED": ("too many failed logins; wait and try again", "登录失败次数过多，请稍后再试"),
}


class LoginRefused(Unauthorized):
    """A refused login. ``reason`` is the exact code (history, audit log); the caller sees it
    only after proof of possession, otherwise only ``LOGIN_REFUSED``."""

    def __init__(self, reason: str, *, possession: bool, field: str | None = None) -> None:
        en, zh = REASONS.get(reason, ("login refused", "登录被拒绝"))
        if possession:
            super().__init__(reason, f"login refused: {en}", f"登录被拒绝：{zh}", field=field)
        else:
            super().__init__("LOGIN_REFUSED", "login refused", "登录被拒绝")
        self.reason = reason
        self.possession = possession


class LoginRateLimited(RateLimited):
    def __init__(self, retry_after: int) -> None:
        en, zh = REASONS["RATE_LIMITED"]
        super().__init__("RATE_LIMITED", en, zh, details={"retry_after": retry_after})
        self.reason = "RATE_LIMITED"
        self.retry_after = retry_after

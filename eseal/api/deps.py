"""FastAPI dependencies shared by the route modules: the authority, the settings, and who is
asking (``current_principal``) and whether their role may (``require_roles``).

A principal comes from ``Authorization: Bearer <session token>`` (a session opened by a
USB-Key login, ``eseal.auth.login``) or, for the portal and console pages, from the session
cookie — then a state-changing request must also carry the session's CSRF token and may
not come from another site (:mod:`eseal.api.web.session_cookie`). Every request checks the
session *and* its login certificate's status now: a certificate frozen or revoked a moment
ago ends the session (401 ``SESSION_REVOKED``). Roles are enforced here, before a handler
runs; which enterprise's data a principal may touch is enforced with
:func:`check_enterprise` (another enterprise's resources answer 404, as if they did not
exist).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from eseal import clock
from eseal.api.web.session_cookie import SESSION_COOKIE, check_csrf, check_same_site
from eseal.ca.authority import Authority
from eseal.errors import Forbidden, NotFound
from eseal.settings import Settings

RoleName = Literal["agent", "legal_rep", "officer", "auditor"]
ALL_ROLES: tuple[str, ...] = ("agent", "legal_rep", "officer", "auditor")
ENTERPRISE_ROLES: tuple[str, ...] = ("agent", "legal_rep")


#: The largest row id: ids are 32-bit ``Integer`` columns (PostgreSQL's ``integer``), so a
#: larger number can name no row and would make PostgreSQL fail the query (a 500).
MAX_ROW_ID = 2**31 - 1

#: A database row id in a URL path: 1..MAX_ROW_ID, so an absurd number is a 422
#: ``VALUE_OUT_OF_RANGE`` naming the field rather than an integer overflow in the database.
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
#: The same bound for an optional id in a query string (paging cursors, account filters).
RowIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)]


def get_authority(request: Request) -> Authority:
    return request.app.state.authority  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def client_address(request: Request) -> str | None:
    """The caller's address (uvicorn resolves X-Forwarded-For from trusted proxies only)."""
    return request.client.host if request.client else None


def user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


@dataclass(frozen=True)
class Principal:
    account_id: int
    role: RoleName
    name: str
    enterprise_id: int | None
    enterprise_uscc: str | None
    certificate_serial: str  # the login certificate of this session
    session_id: str  # opaque id (not the token)
    authenticated_at: datetime  # when the USB-Key last proved itself for this session
    via_cookie: bool = False  # a page session (cookie + CSRF token) rather than a bearer

    @property
    def actor(self) -> str:
        """How the audit log names this person: role, name and account id."""
        return f"{self.role}:{self.name}#{self.account_id}"


_bearer = HTTPBearer(auto_error=False, scheme_name="session",
                     description="session token from POST /auth/verify (USB-Key login)")


def session_token(request: Request,
                  credentials: HTTPAuthorizationCredentials | None) -> tuple[str | None, bool]:
    """The session token of a request and whether it came in the page cookie. A bearer
    token wins; the cookie is used only without one, and then the request must be same-site
    and, when it changes something, carry the CSRF token."""
    if credentials is not None:
        return credentials.credentials, False
    settings: Settings = request.app.state.settings
    check_same_site(request, settings.base_url)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        check_csrf(request, cookie)
        return cookie, True
    return None, False


def current_principal(
        request: Request,
        auth: Annotated[Authority, Depends(get_authority)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The logged-in account: 401 SESSION_REQUIRED / SESSION_EXPIRED / SESSION_REVOKED;
    403 CSRF_TOKEN_INVALID for a cookie request without its token or from another site."""
    from eseal.auth.sessions import resolve_session

    token, via_cookie = session_token(request, credentials)
    view = resolve_session(auth, token)
    return Principal(account_id=view.account_id, role=view.role,  # type: ignore[arg-type]
                     name=view.name, enterprise_id=view.enterprise_id,
                     enterprise_uscc=view.enterprise_uscc,
                     certificate_serial=view.certificate_serial, session_id=view.session_id,
                     authenticated_at=view.created_at, via_cookie=via_cookie)


#: How recent a USB-Key proof must be for the officer's gravest actions (revoke, batch
#: renew, unlock): a session left open on an unattended desk cannot do them.
STEP_UP_WINDOW = timedelta(minutes=5)


def require_step_up(principal: Principal) -> None:
    """403 STEP_UP_REQUIRED unless the USB-Key proved itself in the last five minutes (a
    login, or the re-authentication the console offers, opens a fresh session)."""
    age = clock.now() - principal.authenticated_at
    if age <= STEP_UP_WINDOW:
        return
    minutes = int(age.total_seconds() // 60)
    raise Forbidden("STEP_UP_REQUIRED",
                    "this action needs a USB-Key re-authentication within the last 5 minutes "
                    f"(last one {minutes} minutes ago)",
                    "此操作需要在 5 分钟内重新使用 USB-Key 验证身份"
                    f"（上次验证在 {minutes} 分钟前）",
                    field="session",
                    details={"window_seconds": int(STEP_UP_WINDOW.total_seconds()),
                             "age_seconds": int(age.total_seconds())})


def require_roles(*roles: str) -> Callable[..., Principal]:
    """A dependency that admits only these roles (403 ROLE_FORBIDDEN otherwise)."""
    unknown = [r for r in roles if r not in ALL_ROLES]
    if not roles or unknown:
        raise ValueError(f"unknown roles {unknown or roles!r}")
    allowed = frozenset(roles)

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            raise Forbidden("ROLE_FORBIDDEN",
                            f"a {principal.role} may not do this (needs: {', '.join(roles)})",
                            f"当前角色无权执行此操作（需要：{'、'.join(roles)}）",
                            field="role")
        return principal

    dependency.__name__ = f"require_{'_'.join(roles)}"
    return dependency


def check_enterprise(principal: Principal, uscc: str) -> None:
    """Enterprise staff touch only their own enterprise (another's answers 404, exactly as a
    code that does not exist); officers touch any."""
    if principal.role == "officer":
        return
    if principal.role in ENTERPRISE_ROLES and principal.enterprise_uscc == uscc:
        return
    raise NotFound("ENTERPRISE_NOT_FOUND", f"no enterprise {uscc} for this account",
                   f"找不到企业 {uscc}", field="uscc")

"""FastAPI dependencies shared by the route modules: the authority, the settings, and who is
asking (``current_principal``) and whether their role may (``require_roles``).

A principal comes from ``Authorization: Bearer <session token>`` (a session opened by a
USB-Key login, ``eseal.auth.login``). Every request checks the session *and* its login
certificate's status now: a certificate frozen or revoked a moment ago ends the session
(401 ``SESSION_REVOKED``). Roles are enforced here, before a handler runs; which enterprise's
data a principal may touch is enforced with :func:`check_enterprise` (another enterprise's
resources answer 404, as if they did not exist).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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

    @property
    def actor(self) -> str:
        """How the audit log names this person: role, name and account id."""
        return f"{self.role}:{self.name}#{self.account_id}"


_bearer = HTTPBearer(auto_error=False, scheme_name="session",
                     description="session token from POST /auth/verify (USB-Key login)")


def current_principal(
        auth: Annotated[Authority, Depends(get_authority)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The logged-in account: 401 SESSION_REQUIRED / SESSION_EXPIRED / SESSION_REVOKED."""
    from eseal.auth.sessions import resolve_session

    token = credentials.credentials if credentials is not None else None
    view = resolve_session(auth, token)
    return Principal(account_id=view.account_id, role=view.role,  # type: ignore[arg-type]
                     name=view.name, enterprise_id=view.enterprise_id,
                     enterprise_uscc=view.enterprise_uscc,
                     certificate_serial=view.certificate_serial, session_id=view.session_id)


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

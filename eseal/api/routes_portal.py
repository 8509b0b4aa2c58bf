"""The enterprise portal's own pages and its one change: home, the public verify page, 挂失.

* ``GET /portal/home`` (agent, legal representative) — the enterprise exactly as registered,
  the holder and role; the certificates on the holder's USB-Key(s) and the enterprise's seal
  certificates with days left, the renewal window (年检/续期) and what happens next
  (:mod:`eseal.ra.outlook`); frozen or revoked ones explained in plain words; this year's
  annual report; the account's recent logins with new-network alerts (异常登录提醒) and a
  "this was not me" button.
* ``POST /me/report-lost`` (agent, legal representative; cookie + CSRF, or bearer) — freezes
  the holder's own USB-Key at once (:mod:`eseal.ra.self_freeze`): every current certificate
  on it, the sessions opened with them end (the page's own included: its next load goes to
  the login page saying why), audited with the holder as actor. Only an officer unfreezes.
* ``GET /portal/verify`` — public (no login): upload a PDF, read the same bilingual report
  as ``eseal verify`` with the sealed pages as images and each seal outlined (the page's
  script calls ``POST /verify/pages``). A logged-in visitor keeps the portal's navigation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from eseal.api.deps import (
    MAX_ROW_ID,
    Principal,
    current_principal,
    get_authority,
    require_roles,
)
from eseal.api.web.render import render
from eseal.api.web.session_cookie import SESSION_COOKIE, csrf_token_for
from eseal.api.web.viewer import ENTERPRISE_PAGE_ROLES, Viewer, viewer_for
from eseal.ca.authority import Authority
from eseal.errors import EsealError, NotFound
from eseal.ra.annual_reminders import CHINA

router = APIRouter(tags=["portal"])

Holder = Annotated[Principal, Depends(require_roles(*ENTERPRISE_PAGE_ROLES))]
Auth = Annotated[Authority, Depends(get_authority)]
#: how many of the account's recent logins the home page lists
RECENT_LOGINS = 10


def day(when: datetime | None) -> str:
    """A date as the pages show it (China time)."""
    return when.astimezone(CHINA).strftime("%Y-%m-%d") if when is not None else "—"


def moment(when: datetime | str | None) -> str:
    """A time as the pages show it (China time, to the minute)."""
    if when is None:
        return "—"
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


@router.get("/portal/home", include_in_schema=False)
def home_page(viewer: Annotated[Viewer, Depends(viewer_for(*ENTERPRISE_PAGE_ROLES))]
              ) -> Response:
    from eseal.ra.outlook import (
        annual_report,
        certificates_outlook,
        enterprise_of,
        recent_logins,
    )

    principal, auth = viewer.principal, viewer.auth
    assert principal.enterprise_id is not None  # enterprise roles always have one
    enterprise = enterprise_of(auth, principal.enterprise_id)
    certificates = certificates_outlook(auth, enterprise_id=principal.enterprise_id,
                                        role=principal.role, holder=principal.name)
    logins = recent_logins(auth, enterprise_id=principal.enterprise_id,
                           account_id=principal.account_id, session_id=principal.session_id,
                           limit=RECENT_LOGINS)
    alerts = [e for e in logins
              if e["new_network"] and e["result"] == "ok" and not e["this_session"]]
    mine = [c for c in certificates if c.mine]
    return viewer.render(
        "portal/home.html", enterprise=enterprise, certificates=certificates, mine=mine,
        tokens=sorted({c.token_label for c in mine if c.token_label}),
        key_frozen=bool(mine) and all(c.status != "good" for c in mine),
        annual=annual_report(auth, principal.enterprise_id), logins=logins, alerts=alerts,
        settings=auth.settings, day=day, moment=moment)


class ReportLostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    login_id: int | None = Field(default=None, ge=1, le=MAX_ROW_ID,
                                 description="the login attempt the holder says was not them")


@router.post("/me/report-lost",
             summary="挂失: freeze every current certificate on the holder's own USB-Key(s)")
def report_lost(body: ReportLostIn, principal: Holder, auth: Auth) -> dict[str, Any]:
    from eseal.ra.outlook import is_login_of
    from eseal.ra.self_freeze import report_lost as freeze_own_key

    assert principal.enterprise_id is not None
    login_id = body.login_id

    def check_login() -> None:
        if login_id is not None and not is_login_of(auth, account_id=principal.account_id,
                                                    login_id=login_id):
            raise NotFound("LOGIN_NOT_FOUND",
                           f"login {login_id} is not one of this account's logins",
                           f"登录记录 {login_id} 不属于本账户", field="login_id")

    auth.refusing(check_login, actor=principal.actor, action="cert.report_lost",
                  target=f"account:{principal.account_id}", details={"login_id": login_id})
    done = freeze_own_key(auth, enterprise_id=principal.enterprise_id, role=principal.role,
                          holder=principal.name, actor=principal.actor,
                          disputed_login=body.login_id)
    return done.to_dict()


def _optional_viewer(request: Request) -> Viewer | None:
    """The logged-in visitor of a public page, if any (for the navigation); never a
    redirect: the page is for everyone."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    auth: Authority = request.app.state.authority
    try:
        principal = current_principal(request, auth, None)
    except EsealError:
        return None
    return Viewer(principal=principal, auth=auth, csrf_token=csrf_token_for(token),
                  request=request)


@router.get("/portal/verify", include_in_schema=False)
def verify_page(request: Request) -> Response:
    viewer = _optional_viewer(request)
    limit = request.app.state.settings.upload_limit_bytes
    return render(request, "portal/verify.html", viewer=viewer, upload_limit=limit)

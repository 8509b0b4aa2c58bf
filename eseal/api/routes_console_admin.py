"""The console's enterprise, account, audit and health pages (officer; audit and health for
the auditor too).

The pages only *show*; every change they offer goes through the JSON API the CLI and scripts
use (``/officer/enterprises``, ``/officer/accounts/{id}/unlock``, ``/officer/tokens/{label}/
unblock``, ``/unblock-requests/{id}/approve``, ``/officer/enrollment-codes``), which checks
the role, the CSRF token and — for unlock and unblock — the step-up again on the server. So
an auditor, who sees the audit and health pages only, gets no change control in the HTML
*and* a 403 from every change route.

Names are shown exactly as stored: no normalisation, no replacement. Characters a reader
may not recognise or a font may lack (outside the Basic Multilingual Plane, CJK Extension A,
the compatibility block) are listed with their code points beside the name, so 𠮷 (U+20BB7)
is seen to be 𠮷 and not 吉.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from eseal.api.web.viewer import CONSOLE_READERS, Viewer, viewer_for
from eseal.errors import EsealError, InvalidInput

router = APIRouter(tags=["console"])

OfficerPage = Annotated[Viewer, Depends(viewer_for("officer"))]
ReaderPage = Annotated[Viewer, Depends(viewer_for(*CONSOLE_READERS))]

#: the audit page's filters, named as ``GET /audit/events`` names them
AUDIT_FILTERS = ("enterprise", "actor", "action", "from", "to")
AUDIT_PAGE = 50
ENTERPRISE_PAGE = 100
#: an officer may issue enrollment codes for these roles (enterprise roles need a USCC)
CODE_ROLES = (("agent", "经办人", "agent"), ("legal_rep", "法定代表人", "legal representative"),
              ("officer", "管理员", "CA officer"), ("auditor", "审计员", "auditor"))


def rare_characters(text: str) -> list[dict[str, str]]:
    """The characters of ``text`` a reader should see spelled out: supplementary planes,
    CJK Extension A and the compatibility ideographs, each once, with its code point."""
    seen: list[dict[str, str]] = []
    for ch in text:
        cp = ord(ch)
        rare = cp > 0xFFFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF
        if rare and all(item["char"] != ch for item in seen):
            seen.append({"char": ch, "codepoint": f"U+{cp:04X}"})
    return seen


def _audit_read(viewer: Viewer, request: Request) -> None:
    """An officer's look at everyone's records is audited, as ``officer.read`` is on the
    JSON API (``eseal.api.routes_officer``)."""
    auth = viewer.auth
    with auth.db.write() as s:
        auth.audit.append(s, actor=viewer.principal.actor, action="officer.read",
                          target=request.url.path, details={"query": str(request.url.query)[:300]})


# --- enterprises --------------------------------------------------------------------------------
@router.get("/console/enterprises", include_in_schema=False)
def enterprises_page(viewer: OfficerPage, request: Request) -> Response:
    """Newest first, ``ENTERPRISE_PAGE`` at a time (keyset paging by id: ``before_id``)."""
    from sqlalchemy import func, select

    from eseal.store.models import Enterprise

    _audit_read(viewer, request)
    before_id = _page_key(request.query_params.get("before_id", ""))
    q = select(Enterprise).order_by(Enterprise.id.desc()).limit(ENTERPRISE_PAGE + 1)
    if before_id is not None:
        q = q.where(Enterprise.id < before_id)
    with viewer.auth.db.read() as s:
        found = list(s.execute(q).scalars())
        total = int(s.execute(select(func.count()).select_from(Enterprise)).scalar_one())
    rows = [{"uscc": e.uscc, "name": e.name, "legal_rep": e.legal_rep, "status": e.status,
             "rare": rare_characters(e.name) + rare_characters(e.legal_rep)}
            for e in found[:ENTERPRISE_PAGE]]
    older = found[ENTERPRISE_PAGE - 1].id if len(found) > ENTERPRISE_PAGE else None
    return viewer.render("console/enterprises.html", enterprises=rows, total=total,
                         older=older, paged=before_id is not None)


def _page_key(text: str) -> int | None:
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise InvalidInput("VALUE_OUT_OF_RANGE", "before_id: a whole number from 1",
                           "before_id 须为正整数", field="before_id")
    return int(text)


@router.get("/console/enterprises/{uscc}", include_in_schema=False)
def enterprise_page(uscc: str, viewer: OfficerPage, request: Request) -> Response:
    from eseal.api.routes_enterprise import certificate_dict

    _audit_read(viewer, request)
    ent = viewer.auth.enterprise(uscc)  # ENTERPRISE_NOT_REGISTERED: a 404 page
    certs = [certificate_dict(row, code) for row, code in viewer.auth.list_certificates(uscc=uscc)]
    return viewer.render("console/enterprise.html", enterprise=ent, certificates=certs,
                         name_chars=[{"char": ch, "codepoint": f"U+{ord(ch):04X}"}
                                     for ch in ent.name],
                         rare=rare_characters(ent.name) + rare_characters(ent.legal_rep))


# --- accounts -----------------------------------------------------------------------------------
@router.get("/console/accounts", include_in_schema=False)
def accounts_page(viewer: OfficerPage, request: Request) -> Response:
    from eseal.auth.accounts import list_accounts
    from eseal.ra.remote_unblock import pending_requests

    _audit_read(viewer, request)
    auth = viewer.auth
    accounts = [a.to_dict() for a in list_accounts(auth, all_accounts=True)]
    pending = pending_requests(auth, enterprise_id=None, all_enterprises=True)
    return viewer.render("console/accounts.html", accounts=accounts, pending=pending,
                         code_roles=CODE_ROLES)


# --- audit ----------------------------------------------------------------------------------------
@router.get("/console/audit", include_in_schema=False)
def audit_page(viewer: ReaderPage, request: Request) -> Response:
    from eseal.ra.audit_search import audit_query, search_events

    params = request.query_params
    filters = {name: params.get(name, "") for name in AUDIT_FILTERS}
    before = params.get("before_id", "")
    events: list[dict[str, Any]] = []
    error: EsealError | None = None
    try:
        before_id = int(before) if before else None
        if before_id is not None and before_id < 1:
            raise ValueError(before)
    except ValueError:
        error = InvalidInput("VALUE_OUT_OF_RANGE", "before_id: a positive whole number",
                           "before_id 须为正整数", field="before_id")
        before_id = None
    if error is None:
        try:
            query = audit_query(enterprise=filters["enterprise"] or None,
                                actor=filters["actor"] or None,
                                action=filters["action"] or None,
                                since=filters["from"] or None, until=filters["to"] or None,
                                before_id=before_id or 2**31 - 1, limit=AUDIT_PAGE + 1)
            events = search_events(viewer.auth, query)
        except EsealError as err:
            error = err
    more = len(events) > AUDIT_PAGE
    events = events[:AUDIT_PAGE]
    older = None
    if more:
        older = {**{k: v for k, v in filters.items() if v}, "before_id": events[-1]["id"]}
    # a bad filter is the page again with the error beside its field, answered with its status
    return viewer.render("console/audit.html", status=error.status if error else 200,
                         filters=filters, events=events,
                         search_error=error, older=older, searched=any(filters.values()))


# --- health ---------------------------------------------------------------------------------------
@router.get("/console/health", include_in_schema=False)
def health_page(viewer: ReaderPage, request: Request) -> Response:
    from eseal.api.console_health import health

    return viewer.render("console/health.html", health=health(request, viewer.auth))

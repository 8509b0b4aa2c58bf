"""The officer console's certificate pages: search, one certificate, batch renewal.

* ``GET /console/certificates`` — the search form and one page of results, rendered on the
  server from the query string (so a search can be bookmarked and the first paint needs no
  script): credit code, enterprise name, holder, serial, state, profile, "expiring within N
  days", order and page size. Pages are keyset pages (``eseal.ra.certificate_search``):
  *next* continues after the page's last row (``cursor``), *previous* runs the reverse order
  from the page's first row (``before``) and shows it the right way round, so no offset is
  ever scanned, however deep the page. A bad filter is shown next to its field (422 page).
* ``GET /console/certificates/{serial}`` — subject, enterprise (code and exact registered
  name), holder, profile, state, validity and days left, PEM download, status history and
  freeze windows, and the freeze / unfreeze / revoke controls (revoke needs a reason and a
  USB-Key proof within five minutes; the page says so).
* ``GET /console/renewals`` — batch renewal: preview, confirm, renew in chunks with progress.

Officers only: the issue gives auditors the audit pages, and every control here changes
something. The pages change nothing themselves; their script calls the officer JSON API
(``routes_officer``, ``routes_console``), which checks the role, CSRF and step-up again.
Page reads are audited like the API's reads (``officer.read``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from eseal import clock
from eseal.api.web.viewer import Viewer, viewer_for
from eseal.ca.authority import Authority
from eseal.ca.crl import REASONS
from eseal.errors import InvalidInput
from eseal.ra import certificate_history, certificate_search

router = APIRouter(tags=["console"])
OfficerPage = Annotated[Viewer, Depends(viewer_for("officer"))]

#: the filters of the search form, in the order the form shows them
FILTERS = ("uscc", "name", "holder", "serial", "status", "profile", "expiring_within")
PAGE_SIZES = (20, 50, 100, 200)
REVERSE = {"newest": "oldest", "oldest": "newest", "expiry": "expiry_desc",
           "expiry_desc": "expiry"}
#: sort -> the row field its cursor is made of
SORT_KEY = {"newest": "created_at", "oldest": "created_at", "expiry": "not_after",
            "expiry_desc": "not_after"}
#: RFC 5280 reasons an officer may revoke for (certificateHold is a freeze, not a revocation)
REVOKE_REASONS = tuple(r for r in REASONS if r != "certificateHold")
STATE_WORDS = {"good": ("有效", "good"), "hold": ("已冻结", "frozen"),
               "revoked": ("已吊销", "revoked"), "expired": ("已过期", "expired")}
HISTORY_WORDS = {"issued": ("签发", "issued"), "enrolled": ("USB-Key 登记签发", "enrolled"),
                 "frozen": ("冻结", "frozen"), "unfrozen": ("解冻", "unfrozen"),
                 "revoked": ("吊销", "revoked"), "renewed_to": ("续期为新证书", "renewed to"),
                 "renewed_from": ("由旧证书续期而来", "renewed from"),
                 "rekeyed_to": ("更换密钥为新证书", "re-keyed to"),
                 "rekey_confirmed": ("更换密钥已确认", "re-key confirmed")}


def _audit_read(viewer: Viewer) -> None:
    request = viewer.request
    with viewer.auth.db.write() as s:
        viewer.auth.audit.append(s, actor=viewer.principal.actor, action="officer.read",
                                 target=request.url.path,
                                 details={"query": str(request.url.query)[:300]})


def _int_param(value: str | None, field: str) -> int | None:
    """A whole number typed into the form (empty: none); anything else names the field."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise InvalidInput("VALUE_OUT_OF_RANGE", f"{field}: {value!r} is not a whole number",
                           f"{field}：{value!r} 不是整数", field=field)
    return int(text)


def _cursor_key(row: dict[str, Any], sort: str) -> datetime:
    return datetime.fromisoformat(row[SORT_KEY[sort]])


def _search(auth: Authority, form: dict[str, str], sort: str | None, limit: int | None,
            cursor: str | None, before: str | None,
            ) -> tuple[certificate_search.SearchPage, bool, bool, str]:
    """One page: (page with rows in display order, has previous, has next, sort used)."""
    common: dict[str, Any] = {k: form[k] for k in FILTERS if k != "expiring_within"}
    common["expiring_within"] = _int_param(form["expiring_within"], "expiring_within")
    chosen = certificate_search.search_query(**common, sort=sort, limit=limit).sort
    if before:
        q = certificate_search.search_query(**common, sort=REVERSE[chosen], cursor=before,
                                            limit=limit)
        back = certificate_search.search_certificates(auth, q)
        rows = list(reversed(back.rows))
        page = certificate_search.SearchPage(
            rows=rows, total=back.total, total_exact=back.total_exact, next_cursor=None,
            sort=chosen, limit=back.limit, offset=0)
        return page, back.next_cursor is not None, bool(rows), chosen
    q = certificate_search.search_query(**common, sort=chosen, cursor=cursor or None,
                                        limit=limit)
    page = certificate_search.search_certificates(auth, q)
    return page, bool(cursor), page.next_cursor is not None, chosen


def _links(form: dict[str, str], sort: str, page: certificate_search.SearchPage,
           has_prev: bool, has_next: bool) -> dict[str, str]:
    """The page's links: previous, first, next, renew this page, batch renewal."""
    here = "/console/certificates?"
    base = {k: v for k, v in form.items() if v} | {"sort": sort, "limit": str(page.limit)}
    links = {"first_url": here + urlencode(base), "prev_url": "", "next_url": "",
             "renew_url": ""}
    if has_next and page.rows:
        last = page.rows[-1]
        after = certificate_search.encode_cursor(sort, _cursor_key(last, sort), last["serial"])
        links["next_url"] = here + urlencode(base | {"cursor": after})
    if has_prev and page.rows:
        first = page.rows[0]
        back = certificate_search.encode_cursor(REVERSE[sort], _cursor_key(first, sort),
                                                first["serial"])
        links["prev_url"] = here + urlencode(base | {"before": back})
    # enterprise certificates not revoked: the preview says why any of them is left out
    serials = ",".join(r["serial"] for r in page.rows
                       if r["enterprise"] and r["state"] != "revoked")
    if serials:
        links["renew_url"] = "/console/renewals?" + urlencode({"serials": serials})
    return links


@router.get("/console/certificates", include_in_schema=False)
def certificates_page(viewer: OfficerPage, request: Request) -> Response:
    params = request.query_params
    form = {k: params.get(k, "") for k in FILTERS}
    sort = params.get("sort") or None
    errors: dict[str, InvalidInput] = {}
    page = None
    links = {"first_url": "", "prev_url": "", "next_url": "", "renew_url": ""}
    try:
        limit = _int_param(params.get("limit", ""), "limit")
        page, has_prev, has_next, sort = _search(viewer.auth, form, sort, limit,
                                                 params.get("cursor"), params.get("before"))
        links = _links(form, sort, page, has_prev, has_next)
    except InvalidInput as err:
        errors[err.field or ""] = err
    _audit_read(viewer)
    size = page.limit if page is not None else PAGE_SIZES[0]
    days = form["expiring_within"].strip()
    batch_url = "/console/renewals" + (
        "?" + urlencode({"expiring_within": days}) if days.isascii() and days.isdigit() else "")
    return viewer.render(
        "console/certificates.html", status=422 if errors else 200, form=form, sort=sort,
        limit=size, page_sizes=sorted({*PAGE_SIZES, size}), sorts=tuple(REVERSE),
        errors=errors, page=page, batch_url=batch_url, states=STATE_WORDS,
        profiles=certificate_search.PROFILES, **links)


@router.get("/console/certificates/{serial}", include_in_schema=False)
def certificate_page(serial: str, viewer: OfficerPage) -> Response:
    history = certificate_history.certificate_history(viewer.auth, serial)
    cert = history.certificate
    row = viewer.auth.certificate_row(cert["serial"])
    _audit_read(viewer)
    now = clock.now()
    not_after = datetime.fromisoformat(cert["not_after"])
    days_left = (not_after - now).days if not_after >= now else 0
    return viewer.render(
        "console/certificate.html", cert=cert, subject=row.subject, days_left=days_left,
        history=history.events, windows=history.freeze_windows, states=STATE_WORDS,
        kinds=HISTORY_WORDS, reasons=REVOKE_REASONS)


@router.get("/console/renewals", include_in_schema=False)
def renewals_page(viewer: OfficerPage, request: Request) -> Response:
    params = request.query_params
    serials = [s for s in params.get("serials", "").replace("\n", ",").split(",") if s.strip()]
    return viewer.render("console/renewals.html", serials=serials[:10000],
                         days=params.get("expiring_within", ""))

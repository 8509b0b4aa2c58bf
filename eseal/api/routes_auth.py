"""Login over HTTP: ``/auth/challenge``, ``/auth/verify``, ``/auth/me``, ``/auth/logout``.

The protocol and every check live in ``eseal.auth.login``; this module only moves JSON. A
refusal before proof of possession answers 401 ``LOGIN_REFUSED`` and nothing more; after a
valid signature it names the exact reason; a rate limit answers 429 with ``Retry-After``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from eseal.api.deps import Principal, client_address, current_principal, get_authority, user_agent
from eseal.ca.authority import Authority

router = APIRouter(prefix="/auth", tags=["login"])


class VerifyIn(BaseModel):
    """The challenge fields exactly as signed, the login certificate and the signature."""

    model_config = ConfigDict(extra="forbid")
    nonce: str = Field(max_length=128, description="the challenge's nonce (base64url)")
    origin: str = Field(max_length=512, description="the origin the client signed for")
    purpose: str = Field(max_length=32, description='"login"')
    issued_at: str = Field(max_length=64, description="the challenge's issued_at, as given")
    certificate: str = Field(max_length=16384, description="login certificate, base64 DER")
    signature: str = Field(max_length=2048, description="signature, base64")


def rate_limited(err: Any) -> JSONResponse:
    return JSONResponse(status_code=err.status, content=err.to_dict(),
                        headers={"Retry-After": str(err.retry_after)})


def _json(body: dict[str, Any]) -> Response:
    """Plain JSON of str/int/bool/None values, without FastAPI's encoder walking it."""
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
                    media_type="application/json")


# The two login steps are coroutines: their CPU work (decoding, the signature) runs on the
# event loop, their writes go to the process's group-commit writer (eseal.auth.login), and the
# loop serves other requests while they wait; a thread-pool hop per request would cost more
# than the work (see bench/login.py).
@router.post("/challenge", summary="A single-use login challenge (nonce, origin, expiry)")
async def challenge(request: Request) -> Any:
    from eseal.auth.challenges import issue_challenge_async
    from eseal.auth.refusals import LoginRateLimited

    auth: Authority = request.app.state.authority
    try:
        return _json((await issue_challenge_async(auth, address=client_address(request)))
                     .to_dict())
    except LoginRateLimited as err:
        return rate_limited(err)


async def verified_login(body: VerifyIn, request: Request) -> Any:
    """The login a USB-Key answer opens (``LoginResult``), by the same checks for the CLI's
    bearer session and a page's cookie session (``POST /web/login``); raises
    ``LoginRateLimited`` (answer it with :func:`rate_limited`)."""
    from eseal.auth.challenges import LoginAnswer
    from eseal.auth.login import verify_login_async

    auth: Authority = request.app.state.authority
    answer = LoginAnswer(nonce=body.nonce, origin=body.origin, purpose=body.purpose,
                         issued_at=body.issued_at, certificate=body.certificate,
                         signature=body.signature)
    return await verify_login_async(auth, answer, address=client_address(request),
                                    user_agent=user_agent(request))


@router.post("/verify", summary="Answer a challenge with a USB-Key signature; opens a session")
async def verify(body: VerifyIn, request: Request) -> Any:
    from eseal.auth.refusals import LoginRateLimited

    try:
        result = await verified_login(body, request)
    except LoginRateLimited as err:
        return rate_limited(err)
    return _json(result.to_dict())


@router.get("/me", summary="The logged-in account")
def me(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, Any]:
    return {"account_id": principal.account_id, "role": principal.role,
            "name": principal.name, "enterprise": principal.enterprise_uscc,
            "certificate_serial": principal.certificate_serial,
            "session_id": principal.session_id}


@router.post("/logout", summary="End this session")
def logout(principal: Annotated[Principal, Depends(current_principal)],
           auth: Annotated[Authority, Depends(get_authority)]) -> dict[str, Any]:
    from eseal.auth.sessions import logout

    logout(auth, session_id=principal.session_id, actor=principal.actor)
    return {"session_id": principal.session_id, "ended": True}

"""Sign in with an admin token, sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from hub.admin import audit
from hub.web.console.context import Console
from hub.web.console.guard import Signed, form_fields
from hub.web.console.render import Refused, SignInNeeded
from hub.web.console.session import COOKIE


def add_routes(router: APIRouter, console: Console) -> None:
    auth = console.auth
    signing_out = Depends(auth.acts(None))

    @router.get("/signin")
    def signin_form(request: Request, next: str = "/console/", why: str | None = None) -> Response:
        try:
            auth.viewer(request)
            return RedirectResponse(_safe(next), status_code=303)
        except SignInNeeded:
            pass
        return console.page("signin.html", None, notice=why, back_to=_safe(next), error=None)

    @router.post("/signin")
    def signin(
        request: Request, fields: Annotated[dict[str, str], Depends(form_fields)]
    ) -> Response:
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise Refused(403, "Refused", "sign in from the console's own page")
        back_to = _safe(fields.get("next", "/console/"))
        admin = auth.auth.identify(fields.get("token", "").strip())
        live = auth.auth.live_token(admin.actor) if admin else None
        if admin is None or live is None:
            # Guessing tokens counts against the caller's address, as on the API.
            client = request.client.host if request.client else "unknown"
            verdict = auth.auth.limits.hit("unverified", client)
            if not verdict.allowed:
                raise Refused(429, "Too many attempts", verdict.reason())
            return _refused(console, back_to)
        response = RedirectResponse(back_to, status_code=303)
        response.set_cookie(
            COOKIE,
            auth.sessions.issue(admin.actor, live[0]),
            max_age=auth.sessions.lifetime_s,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        audit.write_entry(console.engine, admin.actor, "console.signin")
        return response

    @router.post("/signout")
    def signout(
        signed: Signed = signing_out,
    ) -> Response:
        response = RedirectResponse("/console/signin?why=signed-out", status_code=303)
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
        return response


def _refused(console: Console, back_to: str) -> HTMLResponse:
    error = "That token matches no HUB_ADMIN_TOKENS entry and no live token."
    return console.page("signin.html", None, back_to=back_to, error=error, status=401)


def _safe(target: str) -> str:
    """Only back into the console: `next` must not send anyone to another site."""
    if target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"

"""Pages: one Jinja2 environment with autoescaping on everything, the headers every console
answer carries (a strict Content-Security-Policy first), and the route class that turns the
console's refusals into pages instead of the API's JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from hub.events.models import as_utc
from hub.web.schemas import ApiError

HERE = Path(__file__).parent
# Webhook payloads are hostile: no inline script or style can run, whatever a page shows.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _when(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S") + "Z" if value else ""


def _pretty(value: Any) -> str:
    # The sender's key order: a person compares it with the provider's documentation.
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _millis(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "running"
    ms = (as_utc(end) - as_utc(start)).total_seconds() * 1000
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(when=_when, pretty=_pretty)
ENV.globals.update(millis=_millis)


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("notice", None)
    html = ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)


class SignInNeeded(Exception):
    """No live session: the browser is sent to the sign-in page, and back afterwards."""

    def __init__(self, back_to: str, reason: str = "") -> None:
        super().__init__(reason)
        self.back_to = back_to
        self.reason = reason


class Refused(Exception):
    """A request the console will not do; shown as a page with its status."""

    def __init__(self, status: int, title: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.title, self.reason = status, title, reason


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInNeeded as exc:
                where = "/console/signin?next=" + quote(exc.back_to, safe="/")
                if exc.reason:
                    where += "&why=" + quote(exc.reason)
                response = RedirectResponse(where, status_code=303)
            except Refused as exc:
                response = page(
                    "error.html", exc.status, title=exc.title, reason=exc.reason, viewer=None
                )
            except ApiError as exc:  # the rate limiter's 429, as a page
                response = page(
                    "error.html", exc.status_code, title=exc.error, reason=exc.reason, viewer=None
                )
                response.headers.update(exc.headers or {})
            response.headers.update(HEADERS)
            return response

        return handle

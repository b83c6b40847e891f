"""Every error the FastAPI app answers, as `{"error", "reason"}`: not only the admin routes'
own (hub/web/common.py) but Starlette's too, a path nobody routes, a body that fails
validation outside an admin route, and an unhandled exception (500)."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from hub.web.common import describe_invalid
from hub.web.schemas import ApiError

# The codes the rest of the hub answers with (admin routes, the webhook ingress); any other
# status gets its HTTP phrase in snake case (`418` → `im_a_teapot`).
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}

# Where things are, for whoever asked for a path that is none of them.
ELSEWHERE = (
    "the admin API is under /admin, webhooks are POSTed to /webhooks/{provider}, "
    "the API documentation is at /docs"
)


def code_for(status: int) -> str:
    if status in CODES:
        return CODES[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "error"
    return "_".join(phrase.lower().replace("'", "").replace("-", " ").split())


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's and FastAPI's HTTPException (an unknown path, a static file that is not
    there, an ApiError raised outside an admin route) as `{"error", "reason"}`."""
    if isinstance(exc, ApiError):
        return exc.response()
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == 404:
        reason = f"nothing at {request.url.path[:200]}; {ELSEWHERE}"
    elif isinstance(exc.detail, str) and exc.detail != _phrase(status):
        reason = exc.detail
    else:
        reason = _phrase(status) or f"HTTP {status}"
    headers = dict(exc.headers) if exc.headers else None
    return ApiError(status, code_for(status), reason, headers).response()


async def invalid_request(request: Request, exc: Exception) -> Response:
    """A request FastAPI refused before any admin route's own handling could (422)."""
    assert isinstance(exc, RequestValidationError)
    return ApiError(422, "invalid_request", describe_invalid(exc)).response()


async def internal_error(request: Request, exc: Exception) -> Response:
    """An unhandled exception: JSON rather than Starlette's text/plain. The exception is
    still raised on to the server, which logs it with its traceback (and
    hub/web/request_id.py logs the request id with it); the answer names no detail of it."""
    reason = "the hub failed to answer this request; its log has the X-Request-ID of this answer"
    return ApiError(500, "internal_error", reason).response()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""

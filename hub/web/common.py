"""What every admin router shares: the route class that answers errors as
`{"error", "reason"}`, and the error entries that document them in the OpenAPI."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from hub.web.schemas import ApiError, ErrorOut

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

INVALID = "A parameter failed validation"


class AdminRoute(APIRoute):
    """Answers errors as `{"error", "reason"}`, like the webhook ingress, rather than
    FastAPI's `{"detail": ...}`, without a handler on the whole app."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()
            except RequestValidationError as exc:
                return ApiError(422, "invalid_request", describe_invalid(exc)).response()
            except HTTPException as exc:
                if exc.status_code != 400:
                    raise
                # FastAPI's answer to a body it cannot decode (not UTF-8): `{"detail"}` and a
                # 400 that no route documents. A body that is not JSON at all is a 422 already.
                reason = "the body is not valid JSON (UTF-8)"
                return ApiError(422, "invalid_request", reason).response()

        return handle


def describe_invalid(exc: RequestValidationError | ValidationError) -> str:
    # loc and msg only: pydantic's `input` would echo whatever the caller sent.
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is invalid"


def errors(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    # Every error is listed so /docs shows this API's shape, not FastAPI's HTTPValidationError.
    return {code: {"model": ErrorOut, "description": d} for code, d in described.items()}


# What every admin route can answer besides its own errors.
COMMON = errors(
    {
        401: "Missing or unknown bearer token",
        403: "The token lacks the scope this route needs",
        429: "Rate limit exceeded (`Retry-After` and `X-RateLimit-*` headers say when)",
    }
)


def admin_router(
    authenticate: Callable[..., Any], prefix: str = "/admin", **kwargs: Any
) -> APIRouter:
    """A router whose every route needs a valid token (and is rate limited per token)."""
    return APIRouter(
        prefix=prefix,
        dependencies=[Depends(authenticate)],
        route_class=AdminRoute,
        responses=COMMON,
        **kwargs,
    )

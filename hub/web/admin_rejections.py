"""`GET /admin/rejections`: the webhook requests the ingress refused, newest first, so an
admin sees that a provider has been failing signatures since 10:02 without reading logs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query

from hub.admin.tokens import Scope
from hub.events.rejections import RejectionFilter, list_rejections
from hub.web.admin_schemas import RejectionOut, RejectionPage, RejectionQuery
from hub.web.auth import AdminAuth
from hub.web.common import INVALID, errors
from hub.web.schemas import ApiError

if TYPE_CHECKING:
    from hub.container import Container

DESCRIPTION = (
    "What senders were refused (401, 400, 413, 415, 405, 404, 429 on `/webhooks/*`), newest "
    "first: the provider, endpoint, error (the answer's `error`, the metric's `outcome`), "
    "what the sender was told, and its address; never a body, a header value or a secret. "
    "Each process keeps at most 10 rows per endpoint and error per 10 s, then one row whose "
    "`count` says how many more there were; the newest 10,000 rows are kept."
)


def add_routes(api: APIRouter, container: Container, auth: AdminAuth) -> None:
    """Onto the admin router of hub/web/admin_manage.py, beside the audit trail: both are
    what an operator reads to learn what happened."""
    engine = container.engine

    @api.get("/rejections", tags=["rejections"], summary="Webhook requests the hub refused",
             description=DESCRIPTION, dependencies=[Depends(auth.requires(Scope.READ))],
             responses=errors({400: "A cursor this API did not issue", 422: INVALID}))  # fmt: skip
    def rejections(query: Annotated[RejectionQuery, Query()]) -> RejectionPage:
        cursor = query.cursor
        if cursor is not None and not (cursor.isascii() and cursor.isdigit()):
            raise ApiError(400, "bad_cursor", "cursor is not one this API issued")
        before = int(cursor) if cursor is not None else None
        filters = RejectionFilter(query.provider, query.error, query.since, query.until)
        limit = query.limit
        rows = list_rejections(engine, filters, before, limit + 1)
        items = [RejectionOut.model_validate(r, from_attributes=True) for r in rows[:limit]]
        more = len(rows) > limit
        return RejectionPage(items=items, next_cursor=str(items[-1].id) if more else None)

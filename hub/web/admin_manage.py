"""The audit trail, refused webhook requests, API tokens and retention under /admin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query, Response

from hub.admin import audit
from hub.admin.retention import run_retention
from hub.admin.tokens import Scope, TokenError, TokenStore, parse_scopes
from hub.web import admin_rejections
from hub.web.admin_schemas import (
    AuditOut,
    AuditPage,
    AuditQuery,
    RetentionOut,
    RetentionRequest,
    TokenCreated,
    TokenList,
    TokenRequest,
    token_out,
)
from hub.web.auth import Admin, AdminAuth
from hub.web.common import INVALID, admin_router, errors
from hub.web.schemas import ApiError

if TYPE_CHECKING:
    from hub.container import Container


RETENTION = (
    "What the periodic job does: bodies of processed and ignored events older than "
    "HUB_RETAIN_PROCESSED_DAYS, and failed ones older than HUB_RETAIN_FAILED_DAYS, are "
    "emptied; metadata, attempts and the audit trail stay."
)


def router(container: Container, auth: AdminAuth, tokens: TokenStore) -> APIRouter:
    engine = container.engine
    api = admin_router(auth.authenticate)
    # Defaults, not Annotated aliases: FastAPI resolves annotations in module globals.
    as_admin = Depends(auth.requires(Scope.ADMIN))

    @api.get("/audit", tags=["audit"], summary="Who did what through the admin surface",
             dependencies=[Depends(auth.requires(Scope.READ))],
             responses=errors({400: "A cursor this API did not issue", 422: INVALID}))  # fmt: skip
    def audit_log(query: Annotated[AuditQuery, Query()]) -> AuditPage:
        cursor = query.cursor
        if cursor is not None and not cursor.isdigit():
            raise ApiError(400, "bad_cursor", "cursor is not one this API issued")
        before = int(cursor) if cursor is not None else None
        filters = audit.AuditFilter(query.actor, query.action, query.since, query.until)
        limit = query.limit
        rows = audit.list_entries(engine, filters, before, limit + 1)
        items = [AuditOut.model_validate(r, from_attributes=True) for r in rows[:limit]]
        more = len(rows) > limit
        return AuditPage(items=items, next_cursor=str(items[-1].id) if more else None)

    @api.get("/tokens", tags=["tokens"], summary="API tokens (never their secrets)")
    def list_tokens(admin: Admin = as_admin) -> TokenList:
        return TokenList(items=[token_out(t) for t in tokens.list()])

    @api.post("/tokens", tags=["tokens"], status_code=201, summary="Make a scoped token",
              responses=errors({409: "A token with this name exists", 422: INVALID}))  # fmt: skip
    def create_token(request: TokenRequest, admin: Admin = as_admin) -> TokenCreated:
        try:
            scopes = parse_scopes([s.value for s in request.scopes])
            secret, info = tokens.create(request.name, scopes, admin.actor)
        except TokenError as exc:
            code = 409 if "exists" in str(exc) else 422
            raise ApiError(
                code, "conflict" if code == 409 else "invalid_request", str(exc)
            ) from None
        return TokenCreated(**token_out(info).model_dump(), token=secret)

    @api.delete("/tokens/{name}", tags=["tokens"], status_code=204, summary="Revoke a token",
                responses=errors({404: "No live token with this name"}))  # fmt: skip
    def revoke_token(name: str, admin: Admin = as_admin) -> Response:
        if not tokens.revoke(name, admin.actor):
            raise ApiError(404, "not_found", f"no live token named {name[:100]!r}")
        return Response(status_code=204)

    @api.post("/retention/run", tags=["retention"], summary="Empty old bodies now",
              description=RETENTION)  # fmt: skip
    def retention(request: RetentionRequest | None = None, admin: Admin = as_admin) -> RetentionOut:
        dry_run = request.dry_run if request else False
        result = run_retention(engine, container.settings, admin.actor, dry_run=dry_run)
        return RetentionOut(
            processed_redacted=result.processed_redacted,
            failed_redacted=result.failed_redacted,
            dry_run=result.dry_run,
        )

    admin_rejections.add_routes(api, container, auth)  # GET /admin/rejections
    return api

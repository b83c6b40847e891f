"""`--json`: one JSON document on stdout, in the admin API's shapes (hub/web/schemas.py and
admin_schemas.py), so a script reads `hub events show --json` and `GET /admin/events/{id}`
alike. A list command prints a JSON list of the items the API's page would hold.

Imported by the commands when they run: the schemas bring FastAPI and pydantic."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

from hub.web.admin_schemas import (
    AuditOut,
    IncidentDetailOut,
    IncidentOut,
    TokenOut,
    incident_detail_out,
    incident_out,
    token_out,
)
from hub.web.schemas import AttemptOut, EventDetail, EventSummary, Stats

if TYPE_CHECKING:
    from hub.admin.audit import AuditRow
    from hub.admin.tokens import TokenInfo
    from hub.events.queries import Counts, EventRow, StoredEvent
    from hub.incidents.queries import IncidentDetail, IncidentRow


def emit(document: BaseModel | Sequence[BaseModel]) -> None:
    """Write the document (a model, or a list of them) as one JSON text and a newline."""
    if isinstance(document, BaseModel):
        data: object = document.model_dump(mode="json")
    else:
        data = [item.model_dump(mode="json") for item in document]
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def event_summary(row: EventRow) -> EventSummary:
    return EventSummary.model_validate(row, from_attributes=True)


def event_detail(stored: StoredEvent) -> EventDetail:
    try:
        body, encoding = stored.body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:  # JSON strings cannot carry arbitrary bytes, as in the API
        body, encoding = base64.b64encode(stored.body).decode("ascii"), "base64"
    return EventDetail(
        **event_summary(stored.event).model_dump(),
        headers={str(k): str(v) for k, v in stored.headers.items()},
        body=body,
        body_encoding=encoding,
        attempts=[AttemptOut.model_validate(a, from_attributes=True) for a in stored.attempts],
        rule=stored.decided_by,
    )


def incident(row: IncidentRow) -> IncidentOut:
    return incident_out(row)


def incident_detail(detail: IncidentDetail) -> IncidentDetailOut:
    return incident_detail_out(detail)


def audit_entry(row: AuditRow) -> AuditOut:
    return AuditOut.model_validate(row, from_attributes=True)


def token(info: TokenInfo) -> TokenOut:
    return token_out(info)


def stats(counts: Counts) -> Stats:
    return Stats(by_status=counts.by_status, by_provider=counts.by_provider)

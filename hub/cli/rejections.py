"""`hub events rejected`: the webhook requests the ingress refused, newest first, as
`GET /admin/rejections` lists them (hub/events/rejections.py), so a terminal shows that
Stripe has been failing signatures since 10:02.

Imports what it reads when it runs, so `hub --help` loads none of it."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

ERRORS = (
    "unauthorized",
    "bad_request",
    "too_large",
    "unsupported_media_type",
    "method_not_allowed",
    "not_found",
    "rate_limited",
    "refused",
)


def rejected(args: argparse.Namespace) -> int:
    from hub.cli.output import table, when
    from hub.config import Settings
    from hub.container import build
    from hub.events.rejections import RejectionFilter, list_rejections

    engine = build(Settings()).engine
    filters = RejectionFilter(args.provider, args.error, args.since, args.until)
    rows = list_rejections(engine, filters, None, args.limit)
    if args.json:
        from hub.cli.json_out import emit
        from hub.web.admin_schemas import RejectionOut

        emit([RejectionOut.model_validate(r, from_attributes=True) for r in rows])
        return 0
    table(
        ("AT (UTC)", "PROVIDER", "ENDPOINT", "STATUS", "ERROR", "CLIENT", "REASON"),
        [(when(r.at), r.provider, r.endpoint, r.status, r.error, r.client, r.reason) for r in rows],
        sys.stdout,
    )
    return 0


def register(events: Any) -> None:
    """`rejected` under `hub events`."""
    p = events.add_parser(
        "rejected",
        help="webhook requests the hub refused (bad signatures, ...), newest first",
        description="Webhook requests the hub refused, newest first; a row whose reason "
        "begins '… and N more like it' stands for N refusals the log held back.",
    )
    p.add_argument("--provider", help="stripe, github, slack (or unknown: no such endpoint)")
    p.add_argument("--error", choices=ERRORS, help="the error code the sender got")
    p.add_argument("--since", type=_iso, help="at or after (ISO 8601, UTC unless an offset)")
    p.add_argument("--until", type=_iso, help="before (ISO 8601, UTC unless an offset)")
    p.add_argument("--limit", type=int, default=20, help="at most this many rows (default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead")
    p.set_defaults(func=rejected)


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text)

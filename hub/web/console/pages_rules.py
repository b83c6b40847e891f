"""Rules and silences: the rules in force with their hash, a draft tried on stored events
(what `hub rules test` prints, as tables), reload, and silences listed, added and expired.
The same functions as `/admin/rules` and `/admin/silences`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from hub.admin.tokens import Scope
from hub.events.models import utcnow
from hub.rules import silences
from hub.rules.document import PROVIDERS, RulesError
from hub.rules.preview import Scope as PreviewScope
from hub.rules.preview import parse_span, preview
from hub.rules.state import RuleSet, parse_text
from hub.web.console.context import Console
from hub.web.console.guard import Signed, Viewer
from hub.web.console.render import Refused

DRAFT_MAX = 200_000  # characters: a rules file is a few hundred lines


def add_routes(router: APIRouter, console: Console) -> None:
    reader = Depends(console.auth.reads())
    tester = Depends(console.auth.acts(Scope.READ))
    admin = Depends(console.auth.acts(Scope.ADMIN))

    def show(viewer: Viewer, notice: str | None = None, **context: Any) -> HTMLResponse:
        include_expired = bool(context.pop("all_silences", False))
        rows = silences.listed(console.engine, include_expired=include_expired)
        now = utcnow()
        defaults: dict[str, Any] = {"draft": console.container.rules.current.text, "since": "7d",
                    "provider": None, "errors": None, "result": None, "rows": [],
                    "reload_errors": None, "silence_error": None, "silence_form": {}}  # fmt: skip
        context = defaults | context
        return console.page("rules.html", viewer, notice=notice,
                            rules=console.container.rules.current, providers=PROVIDERS,
                            silences=[(s, s.state(now)) for s in rows],
                            all_silences=include_expired, **context)  # fmt: skip

    @router.get("/rules")
    def rules(request: Request, notice: str | None = None, viewer: Viewer = reader) -> HTMLResponse:
        return show(viewer, notice, all_silences=request.query_params.get("all") == "1")

    @router.post("/rules/test")
    def test(signed: Signed = tester) -> HTMLResponse:
        viewer, fields = signed
        shown = {"draft": fields.get("draft", "")[:DRAFT_MAX], "since": fields.get("since", "7d"),
                 "provider": fields.get("provider") or None}  # fmt: skip
        try:
            scope, proposed = _draft(shown)
        except (RulesError, ValueError) as exc:
            errors = exc.errors if isinstance(exc, RulesError) else [str(exc)]
            return show(viewer, errors=errors, **shown)
        c = console.container
        sides = (proposed, c.rules.current)
        result = preview(c.engine, c.settings, c.catalogue(), sides, scope).as_json()
        return show(viewer, result=result, rows=_compare(result), **shown)

    @router.post("/rules/reload")
    def reload(signed: Signed = admin) -> Any:
        viewer, _fields = signed
        state = console.container.rules
        if state.path is None:
            return show(viewer, errors=["HUB_RULES_FILE is not set: nothing to reload"])
        try:
            state.reload(viewer.actor)
        except RulesError as exc:
            state.refused(viewer.actor, exc)
            return show(viewer, reload_errors=exc.errors)
        return RedirectResponse("/console/rules?notice=rules-reloaded", status_code=303)

    _silence_routes(router, console, show)


def _silence_routes(router: APIRouter, console: Console, show: Any) -> None:
    responder = Depends(console.auth.acts(Scope.INCIDENTS))

    @router.post("/silences")
    def add_silence(signed: Signed = responder) -> Any:
        viewer, fields = signed
        try:
            ends = _ends(fields.get("for", ""), fields.get("until", ""))
            silences.add(console.engine, viewer.actor, fields.get("match", "").strip(), ends,
                         reason=fields.get("reason", "")[:500])  # fmt: skip
        except (silences.SilenceError, ValueError) as exc:
            return show(viewer, silence_error=str(exc), silence_form=fields)
        return RedirectResponse("/console/rules?notice=silence-added#silences", status_code=303)

    @router.post("/silences/{silence_id}/expire")
    def expire(silence_id: str, signed: Signed = responder) -> RedirectResponse:
        viewer, _fields = signed
        try:
            silences.expire(console.engine, console.container.events, silence_id, viewer.actor)
        except silences.SilenceError as exc:
            raise Refused(404, "Not found", str(exc)) from None
        return RedirectResponse("/console/rules?notice=silence-expired#silences", status_code=303)


def _draft(shown: dict[str, Any]) -> tuple[PreviewScope, RuleSet]:
    provider = shown["provider"]
    if provider is not None and provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}")
    return PreviewScope(parse_span(shown["since"]), provider), parse_text(shown["draft"], "draft")


def _ends(duration: str, until: str) -> datetime:
    if until.strip():
        value = datetime.fromisoformat(until.strip())
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not duration.strip():
        raise ValueError("say how long (2h, 30m) or until when")
    return utcnow() + parse_span(duration)


def _compare(result: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(what, in force, with the draft) rows, as `hub rules test` prints them."""
    new, old = result["proposed"], result["in_force"]
    rows = [(label, old[key], new[key]) for label, key in (
        ("incidents", "incidents"), ("suppressed", "suppressed"), ("resolves", "resolves"),
        ("template errors", "template_errors"))]  # fmt: skip
    for label, key in (("Slack", "slack_posts"), ("GitHub", "github_issues")):
        for name in sorted(set(new[key]) | set(old[key])):
            rows.append((f"{label} {name}", old[key].get(name, 0), new[key].get(name, 0)))
    return rows

"""The rules' verdict on one event: first match wins, `continue` adds channels, a route only
applies to what raises, incident rules raise and resolve, misses are counted, not fatal."""

from __future__ import annotations

import pytest

from hub.rules.compiled import TemplateFailed
from hub.rules.judge import judge
from hub.rules.state import parse_text
from tests.handlers import payloads as p

RULES = """
defaults: {slack_channel: "#ops", severity: sev2}
rules:
  - name: mute-sandbox
    match: {provider: github, where: 'payload.repository.full_name == "acme/sandbox"'}
    suppress: {reason: playground}
  - name: big-disputes
    match: {provider: stripe, type: "charge.dispute.*", where: payload.data.object.amount >= 100000}
    route: {slack_channel: "#payments-oncall", severity: sev1, mention: "<!subteam^S1>"}
    continue: true
  - name: finance-too
    match: {provider: stripe, type: "charge.dispute.*", where: payload.data.object.amount >= 100000}
    route: {slack_channel: "#finance", severity: sev4}
  - name: stripe-rest
    match: {provider: stripe}
    route: {slack_channel: "#payments"}
  - name: subs
    match: {provider: stripe, type: customer.subscription.deleted}
    incident:
      key: "stripe:sub:{{ payload.data.object.customer }}"
      title: "Subscription cancelled for {{ payload.data.object.customer }}"
      resolve_when: {provider: stripe, type: customer.subscription.created}
"""
OPEN_DISPUTE = {"key": "stripe:dispute:dp_1", "title": "Dispute", "severity": "sev2",
                "change": "open"}  # fmt: skip


def verdict(kind: str, payload: dict, incident: dict | None, text: str = RULES):
    rules = parse_text(text, "rules.yaml")
    provider, type_ = kind.split(" ")
    return judge(rules.rules, rules.defaults, provider, type_, payload, incident=incident)


def dispute(amount: int) -> dict:
    return p.stripe_event("charge.dispute.created", p.dispute(amount=amount))


def test_continue_routes_to_two_channels_and_the_first_rule_sets_severity():
    v = verdict("stripe charge.dispute.created", dispute(250_000), OPEN_DISPUTE)
    assert v.decided_by == ("big-disputes", "finance-too")
    assert v.channels == ("#payments-oncall", "#finance")
    assert (v.severity, v.mention) == ("sev1", "<!subteam^S1>")


def test_first_match_wins_without_continue():
    v = verdict("stripe charge.dispute.created", dispute(4_999), OPEN_DISPUTE)
    assert v.decided_by == ("stripe-rest",)
    assert v.channels == ("#payments",) and v.severity is None


def test_suppress_stops_everything():
    payload = p.workflow_run("failure", "main", repo="acme/sandbox")
    v = verdict("github workflow_run.completed", payload, {**OPEN_DISPUTE, "key": "github:ci"})
    assert v.suppressed_by == "mute-sandbox" and v.decided_by == ("mute-sandbox",)


def test_a_route_does_not_apply_to_an_event_that_raises_nothing():
    subs = p.stripe_event("customer.subscription.deleted", {"id": "sub_1", "customer": "cus_9"})
    v = verdict("stripe customer.subscription.deleted", subs, None)
    # `stripe-rest` matches the provider but routes nothing; the incident rule below decides.
    assert v.decided_by == ("subs",)
    assert v.raised is not None
    assert (v.raised.change, v.raised.key) == ("open", "stripe:sub:cus_9")
    assert v.raised.title == "Subscription cancelled for cus_9"
    assert v.raised.severity == "sev2"  # the file's default


def test_resolve_when_resolves_the_same_key():
    subs = p.stripe_event("customer.subscription.created", {"id": "sub_2", "customer": "cus_9"})
    v = verdict("stripe customer.subscription.created", subs, None)
    assert v.raised is not None and (v.raised.change, v.raised.key) == (
        "resolve",
        "stripe:sub:cus_9",
    )


def test_a_missing_field_is_a_miss_not_a_match_nor_an_error():
    text = "rules:\n  - name: by-amount\n    match: {where: payload.data.object.amount > 5}\n" \
           "    route: {severity: sev1}\n"  # fmt: skip
    v = verdict("stripe payout.failed", {"data": {"object": {}}}, OPEN_DISPUTE, text)
    assert v.decided_by == () and v.severity is None
    assert [m.rule for m in v.misses] == ["by-amount"]
    assert "no field" in v.misses[0].reason


def test_a_where_that_is_not_a_bool_is_a_miss():
    text = "rules:\n  - name: odd\n    match: {where: payload.id}\n    suppress: true\n"
    v = verdict("stripe x.y", {"id": "evt_1"}, None, text)
    assert v.suppressed_by is None and "not a bool" in v.misses[0].reason


def test_the_catalogue_decision_is_readable_as_incident():
    text = "rules:\n  - name: sev1-only\n    match: {where: incident.severity == 'sev1'}\n" \
           "    route: {slack_channel: '#pager'}\n"  # fmt: skip
    assert verdict("stripe x.y", {}, {**OPEN_DISPUTE, "severity": "sev1"}, text).channels == (
        "#pager",
    )
    # No catalogue decision: `incident` is absent, so the rule misses rather than fails.
    assert verdict("stripe x.y", {}, None, text).decided_by == ()


def test_a_template_that_raises_names_the_rule_and_its_line():
    text = ("rules:\n  - name: subs\n    match: {type: customer.subscription.deleted}\n"
            "    incident:\n      key: 'sub:{{ payload.data.object.customer.id }}'\n"
            "      title: t\n")  # fmt: skip
    event = p.stripe_event("customer.subscription.deleted", {"id": "sub_1", "customer": "cus_1"})
    with pytest.raises(
        TemplateFailed, match=r"rule subs \(rules.yaml:2\): key: .*has no attribute"
    ):
        verdict("stripe customer.subscription.deleted", event, None, text)


def test_templates_are_sandboxed():
    text = ("rules:\n  - name: evil\n    match: {type: x.y}\n    incident:\n"
            "      key: '{{ payload.__class__.__mro__ }}'\n      title: t\n")  # fmt: skip
    with pytest.raises(TemplateFailed, match="rule evil"):
        verdict("stripe x.y", {"a": 1}, None, text)


def test_no_rules_is_nothing():
    v = verdict("stripe charge.dispute.created", dispute(1), OPEN_DISPUTE, "")
    assert v.decided_by == () and v.channels == () and v.raised is None

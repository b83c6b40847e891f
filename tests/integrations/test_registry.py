"""The provider table and which endpoints get mounted."""

from __future__ import annotations

import pytest
import stripe

from integrations.base import SignatureInvalid
from integrations.registry import ENDPOINT_FACTORIES, build_endpoints

ALL = {"stripe": ["whsec_a"], "github": ["gh"], "slack": ["sl"]}


def test_all_providers_mount_exactly_these_paths() -> None:
    mounted = build_endpoints(ALL)
    assert set(mounted) == {
        "stripe",
        "github",
        "slack/events",
        "slack/interactions",
        "slack/commands",
    }
    assert all(endpoint.path == path for path, endpoint in mounted.items())
    assert {endpoint.provider for endpoint in mounted.values()} == set(ENDPOINT_FACTORIES)


def test_providers_without_secrets_are_not_mounted() -> None:
    assert build_endpoints({}) == {}
    mounted = build_endpoints({"stripe": ["whsec_a"], "github": [], "slack": ["", "  "]})
    assert set(mounted) == {"stripe"}


def test_blank_entries_are_dropped_not_used_as_keys() -> None:
    mounted = build_endpoints({"github": ["", "gh"]})
    assert set(mounted) == {"github"}


def test_unknown_providers_are_ignored() -> None:
    assert build_endpoints({"pagerduty": ["x"]}) == {}


def test_tolerance_reaches_the_endpoints() -> None:
    now = 1_700_000_000
    body = '{"id":"evt_1","type":"payout.failed"}'
    header = stripe.WebhookSignature.generate_signature_header(body, "whsec_a", timestamp=now - 20)
    endpoint = build_endpoints(ALL, tolerance=10)["stripe"]
    with pytest.raises(SignatureInvalid, match="tolerance is 10 s"):
        endpoint.receive(
            {"content-type": "application/json", "stripe-signature": header}, body.encode(), now
        )
    assert (
        build_endpoints(ALL)["stripe"]
        .receive(
            {"content-type": "application/json", "stripe-signature": header}, body.encode(), now
        )
        .delivery_id
        == "evt_1"
    )

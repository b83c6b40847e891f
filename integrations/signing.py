"""Signing as the senders sign: what `hub demo` sends and what the tests send, made by one
function so the two cannot drift. Stripe and Slack signatures come from their own SDK
helpers, so the hub's verifiers (integrations/stripe.py, slack.py) are checked against the
senders' code rather than a second copy of ours; GitHub ships no helper, and its scheme is
one HMAC."""

from __future__ import annotations

import hashlib
import hmac
import time


def signature_headers(
    provider: str, body: bytes, secret: str, now: float | None = None
) -> dict[str, str]:
    """The headers that carry `provider`'s signature of `body`, stamped `now` (default: the
    current time) where the scheme signs a timestamp."""
    stamp = int(time.time() if now is None else now)
    if provider == "stripe":
        import stripe  # the SDK is only needed here, not by the verifier on the hot path

        header = stripe.WebhookSignature.generate_signature_header(
            body.decode(), secret, timestamp=stamp
        )
        return {"stripe-signature": header}
    if provider == "github":
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {"x-hub-signature-256": f"sha256={digest}"}
    if provider == "slack":
        from slack_sdk.signature import SignatureVerifier

        signature = SignatureVerifier(secret).generate_signature(timestamp=str(stamp), body=body)
        return {"x-slack-request-timestamp": str(stamp), "x-slack-signature": str(signature)}
    raise ValueError(f"no signing scheme for {provider!r}")

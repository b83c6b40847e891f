"""What every outbound client raises, so callers never depend on an SDK's exceptions.

Reasons are safe to log and to show an admin: they never carry a token, a response_url, or
an SDK's own message (which may quote a request)."""

from __future__ import annotations

import math

MIN_WAIT_S = 1.0


class OutboundError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RateLimited(OutboundError):
    """The service asked us to wait (a 429, or a spent budget): not a failure. Callers
    reschedule after `retry_after` seconds rather than sleep in a worker thread."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        # A zero or past reset (clock skew) must not turn into a hot retry loop.
        wait = retry_after if math.isfinite(retry_after) else MIN_WAIT_S
        self.retry_after = max(MIN_WAIT_S, wait)


class Transient(OutboundError):
    """5xx, a timeout, a dropped connection: the same call may work later. The call may
    also have taken effect already, so a caller checks (by marker) before repeating it."""


class Permanent(OutboundError):
    """Bad credentials, an unknown channel or repository, a rejected payload: retrying will
    not help until someone changes the configuration or the data."""


def seconds(value: object) -> float | None:
    """A `Retry-After`-style header value in seconds, or None if absent or unreadable
    (the HTTP-date form is not sent by Slack or GitHub)."""
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if value is None:
        return None
    try:
        parsed = float(str(value).strip())
    except ValueError:
        return None
    return parsed if math.isfinite(parsed) else None

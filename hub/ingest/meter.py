"""What the ingress counts: deliveries by endpoint and outcome, and how long each answer took.

Every webhook passes through here, so recording is a list index and a bisect into fixed
buckets: no lock, because only the event loop's thread writes; no label lookup, because each
endpoint's meter is resolved once, when the app is built. A scrape runs on another thread and
copies the lists (atomic under the GIL), so a histogram's buckets and count always agree; its
sum may be one request ahead, which Prometheus tolerates."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

from integrations.base import Endpoint

OUTCOMES = (
    "stored",
    "duplicate",
    "challenge",
    "unauthorized",
    "bad_request",
    "too_large",
    "unsupported_media_type",
    "method_not_allowed",
    "unavailable",
    "not_found",
    "refused",
    "error",
    "rate_limited",
)
(
    STORED,
    DUPLICATE,
    CHALLENGE,
    UNAUTHORIZED,
    BAD_REQUEST,
    TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    METHOD_NOT_ALLOWED,
    UNAVAILABLE,
    NOT_FOUND,
    REFUSED,
    ERROR,
    RATE_LIMITED,
) = range(len(OUTCOMES))
# What an adapter's refusal (InboundError.status) counts as; any other status is `refused`.
REFUSALS = {400: BAD_REQUEST, 401: UNAUTHORIZED, 415: UNSUPPORTED_MEDIA_TYPE}
# Seconds. The hub answers in milliseconds; the top buckets catch a stalled database.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LE = [*(repr(b) for b in BUCKETS), "+Inf"]

RECEIVED = "hub_webhooks_received"
DURATION = "hub_webhook_duration_seconds"
UNROUTED = "unknown"  # a path with no endpoint: its text is the sender's, not a label value


class EndpointMeter:
    __slots__ = ("buckets", "counts", "endpoint", "provider", "total_s")

    def __init__(self, provider: str, endpoint: str) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.counts = [0] * len(OUTCOMES)
        self.buckets = [0] * (len(BUCKETS) + 1)  # not cumulative; the last is +Inf
        self.total_s = 0.0

    def record(self, outcome: int, seconds: float) -> None:
        self.counts[outcome] += 1
        # bisect_left: a value equal to a bound belongs to that bucket (`le`).
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.total_s += seconds


class IngressMeter:
    """The ingress's counters as a Prometheus collector (registered per app)."""

    def __init__(self, endpoints: Mapping[str, Endpoint]) -> None:
        self.by_path = {path: EndpointMeter(ep.provider, path) for path, ep in endpoints.items()}
        self.unrouted = EndpointMeter(UNROUTED, UNROUTED)

    def meter(self, path: str) -> EndpointMeter:
        return self.by_path.setdefault(path, EndpointMeter(UNROUTED, path))

    def describe(self) -> Iterator[Metric]:
        yield from self._families([])

    def collect(self) -> Iterator[Metric]:
        yield from self._families([*self.by_path.values(), self.unrouted])

    def _families(self, meters: list[EndpointMeter]) -> Iterator[Metric]:
        labels = ["provider", "endpoint"]
        received = CounterMetricFamily(
            RECEIVED,
            "Webhook requests answered by the ingress, by endpoint and outcome.",
            labels=[*labels, "outcome"],
        )
        duration = HistogramMetricFamily(
            DURATION,
            "Seconds from a webhook request's arrival to its answer.",
            labels=labels,
        )
        for m in meters:
            counts, buckets, total_s = list(m.counts), list(m.buckets), m.total_s
            for outcome, n in zip(OUTCOMES, counts, strict=True):
                received.add_metric([m.provider, m.endpoint, outcome], n)
            cumulative, running = [], 0
            for le, n in zip(_LE, buckets, strict=True):
                running += n
                cumulative.append((le, float(running)))
            duration.add_metric([m.provider, m.endpoint], cumulative, sum_value=total_s)
        yield received
        yield duration

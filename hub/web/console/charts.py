"""Bar charts as inline SVG geometry, computed here and drawn by a template: no script, no
external service, and nothing in them comes from a payload (keys are providers and fixed
words, escaped by the template all the same)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hub.admin.overview import Series

WIDTH = 600
HEIGHT = 140
# Colour classes by key; anything else gets a neutral one (console.css).
KNOWN = ("stripe", "github", "slack", "stored", "refused", "duplicate")


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    bars: list[Bar]
    legend: list[tuple[str, str, int]]  # key, css class, total
    peak: float  # events per minute at the top of the scale
    start_label: str
    width: int = WIDTH
    height: int = HEIGHT


def stacked(title: str, series: Series) -> Chart:
    """One stacked bar per bucket, scaled to events per minute."""
    window = series.window
    per_minute = 60 / window.bucket_s
    count = window.buckets
    totals = [sum(v[i] for v in series.by_key.values()) for i in range(count)]
    peak = max([t * per_minute for t in totals] + [1.0])
    slot = WIDTH / count
    bars: list[Bar] = []
    for i in range(count):
        at = series.start + timedelta(seconds=i * window.bucket_s)
        base = float(HEIGHT)
        for key, values in series.by_key.items():
            rate = values[i] * per_minute
            if not values[i]:
                continue
            h = rate / peak * HEIGHT
            base -= h
            tip = f"{at:%H:%M}Z {key}: {values[i]} ({rate:.1f}/min)"
            bars.append(Bar(i * slot + 0.5, base, max(slot - 1, 1), h, _css(key), tip))
    legend = [(key, _css(key), sum(values)) for key, values in series.by_key.items()]
    span = "24 h ago" if window.span.days else f"{window.span.seconds // 60} min ago"
    return Chart(title, bars, legend, peak, f"{span} ({series.start:%H:%M}Z)")


def _css(key: str) -> str:
    return f"c-{key}" if key in KNOWN else "c-other"

"""Reading decoded webhook payloads safely, and formatting what trigger functions show.

Payloads come from the network: signature-verified, but their shape is whatever the sender
put in. Fields are addressed by a dotted path ("data.object.id"). The `opt_*` readers return
None when a field is absent or of the wrong type, so optional details degrade gracefully; the
`req_*` readers raise PayloadError (a ValueError) naming the field, for the few fields a
trigger cannot decide without."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

# Stripe sends amounts in the currency's minor unit; these currencies have none (an amount of
# 500 JPY is ¥500) or three decimals. ISK, HUF and TWD stay two-decimal in the API even where
# only whole units may be charged. https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)
THREE_DECIMAL_CURRENCIES = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


class PayloadError(ValueError):
    """A field a trigger needs is missing or of the wrong type."""

    def __init__(self, path: str, expected: str) -> None:
        super().__init__(f"payload field {path!r} is missing or not {expected}")
        self.path = path


def lookup(payload: Mapping[str, object], path: str) -> object | None:
    """The value at a dotted path, or None if any step is absent or not an object."""
    node: object = payload
    for part in path.split("."):
        # dict first: decoded JSON is always one, and an ABC's isinstance costs several times
        # more (a failed payment's decision makes ten lookups: 14.4 -> 10.7 us with this).
        if type(node) is not dict and not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def opt_str(payload: Mapping[str, object], path: str) -> str | None:
    """A non-blank string, else None."""
    value = lookup(payload, path)
    return value if isinstance(value, str) and value.strip() else None


def req_str(payload: Mapping[str, object], path: str) -> str:
    value = opt_str(payload, path)
    if value is None:
        raise PayloadError(path, "a non-empty string")
    return value


def opt_int(payload: Mapping[str, object], path: str) -> int | None:
    """An integer (JSON true/false are not integers), else None."""
    value = lookup(payload, path)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def req_int(payload: Mapping[str, object], path: str) -> int:
    value = opt_int(payload, path)
    if value is None:
        raise PayloadError(path, "an integer")
    return value


def opt_epoch(payload: Mapping[str, object], path: str) -> int | None:
    """A timestamp as whole epoch seconds: Stripe sends integers, GitHub ISO 8601 strings
    (`2024-06-10T06:10:02Z`). None when absent or unreadable."""
    value = lookup(payload, path)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())


def opt_bool(payload: Mapping[str, object], path: str) -> bool | None:
    value = lookup(payload, path)
    return value if isinstance(value, bool) else None


def opt_map(payload: Mapping[str, object], path: str) -> Mapping[str, object] | None:
    value = lookup(payload, path)
    return _as_map(value)


def req_map(payload: Mapping[str, object], path: str) -> Mapping[str, object]:
    value = opt_map(payload, path)
    if value is None:
        raise PayloadError(path, "an object")
    return value


def opt_ref(payload: Mapping[str, object], path: str) -> str | None:
    """A Stripe expandable field: the id string, or the `id` of the expanded object."""
    value = lookup(payload, path)
    if isinstance(value, str) and value.strip():
        return value
    expanded = _as_map(value)
    return opt_str(expanded, "id") if expanded is not None else None


def names(payload: Mapping[str, object], path: str) -> frozenset[str]:
    """The lower-cased `name` of each object in a list (GitHub labels); malformed items skipped."""
    value = lookup(payload, path)
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return frozenset()
    found: set[str] = set()
    for item in value:
        mapping = _as_map(item)
        name = opt_str(mapping, "name") if mapping is not None else None
        if name is not None:
            found.add(name.strip().lower())
    return frozenset(found)


def github_actor(payload: Mapping[str, object]) -> str:
    """`github:<login>` of whoever caused a GitHub event; `github` when there is no sender."""
    login = opt_str(payload, "sender.login")
    return f"github:{login}" if login else "github"


def _as_map(value: object) -> Mapping[str, object] | None:
    if type(value) is dict:  # decoded JSON or form fields: its keys are strings
        return value
    if not isinstance(value, Mapping):
        return None
    # JSON object keys are always strings; anything else is not a payload object.
    if not all(isinstance(key, str) for key in value):
        return None
    return value


def format_amount(amount: int | None, currency: str | None) -> str:
    """A Stripe minor-unit amount for people: 123456 usd -> "1,234.56 USD", 5000 jpy -> "5,000 JPY".

    Unknown currencies are taken as two-decimal, Stripe's default."""
    if amount is None:
        return "an unknown amount"
    code = (currency or "").strip().lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        places = 0
    elif code in THREE_DECIMAL_CURRENCIES:
        places = 3
    else:
        places = 2
    major = Decimal(amount).scaleb(-places)
    text = f"{major:,.{places}f}"
    return f"{text} {code.upper()}" if code else text


def first_line(text: str | None, limit: int = 120) -> str:
    """The first non-blank line of a message, shortened to `limit` characters."""
    if not text:
        return ""
    for line in text.splitlines():
        if line.strip():
            return shorten(line.strip(), limit)
    return ""


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"

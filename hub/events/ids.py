"""Event ids that sort by creation time (ULID layout), so paging needs no second column."""

from __future__ import annotations

import os
import time
from datetime import datetime

# Crockford's base32 is in ASCII order, so the text sorts like the 128-bit number
# (48-bit milliseconds, then 80 random bits). Ten bits at a time through a table of pairs:
# base64.b32encode is pure Python and costs more than the rest of the id.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def new_event_id(now_ms: int | None = None) -> str:
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return _encode((ms << 80) | int.from_bytes(os.urandom(10), "big"))


def new_event_ids(count: int, now_ms: int) -> list[str]:
    """`count` ids of one millisecond, as `new_event_id(now_ms)` makes them, at a fraction of
    the cost (a group commit names every event of its batch): the millisecond's ten
    characters once, and the random sixteen from one read of the OS's random source, each
    byte's low five bits through a table (256 is a multiple of 32: every character as
    likely). One id at a time cost the commit thread a fifth of its Python (py-spy)."""
    prefix = "evt_" + _encode(now_ms << 80)[4:14]
    chars = os.urandom(16 * count).translate(_RANDOM_CHARS).decode("ascii")
    return [prefix + chars[i : i + 16] for i in range(0, 16 * count, 16)]


_RANDOM_CHARS = bytes(ord(_ALPHABET[b & 31]) for b in range(256))


def id_floor(when: datetime) -> str:
    """The smallest id an event received at `when` can have: time filters become ranges on
    the primary key, so `received_at` needs no index of its own on the write path."""
    return _encode(int(when.timestamp() * 1000) << 80)


def _encode(value: int) -> str:
    # 128 bits as 26 characters of 5 bits: 3 bits first, 12 pairs of 10, 5 bits last.
    pairs = [_PAIRS[(value >> shift) & 0x3FF] for shift in range(115, 0, -10)]
    return "evt_" + _ALPHABET[value >> 125] + "".join(pairs) + _ALPHABET[value & 31]


def new_incident_id() -> str:
    return "inc_" + new_event_id()[4:]

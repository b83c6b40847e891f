"""Event ids that sort by creation time (ULID layout), so paging needs no second column."""

from __future__ import annotations

import base64
import os
import time

# RFC 4648 base32 re-lettered to Crockford's alphabet, which is in ASCII order: the text
# sorts like the 128-bit number (48-bit milliseconds, then 80 random bits).
_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)


def new_event_id(now_ms: int | None = None) -> str:
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    raw = ms.to_bytes(6, "big") + os.urandom(10)
    return "evt_" + base64.b32encode(raw)[:26].translate(_CROCKFORD).decode()

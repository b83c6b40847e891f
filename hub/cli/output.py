"""Terminal output for the CLI: aligned tables and a progress bar, no dependencies."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], out: TextIO) -> None:
    """Columns as wide as their widest cell; on a terminal the last one is cut to its width.
    Into a pipe or a file nothing is cut: whatever reads it wants the whole reason."""
    cells = [[str(c) if c is not None else "-" for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        room = shutil.get_terminal_size((120, 20)).columns
        fixed = sum(w + 2 for w in widths[:-1])
        widths[-1] = max(len(headers[-1]), min(widths[-1], room - fixed))

    def line(values: Sequence[str]) -> str:
        parts = [
            v.ljust(w)[:w] if i == len(widths) - 1 else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    print(line(headers), file=out)
    for row in cells:
        print(line(row), file=out)
    if not cells:
        print("(none)", file=out)


def fields(pairs: Sequence[tuple[str, object]], out: TextIO) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key.rjust(width)}  {value if value is not None else '-'}", file=out)


class ProgressBar:
    """One line, redrawn in place on a terminal; a line per step of 10% elsewhere (logs)."""

    def __init__(self, total: int, out: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.out = out or sys.stderr
        self.width = width
        self.tty = self.out.isatty()
        self._last_decile = -1

    def show(self, done: int, note: str = "") -> None:
        share = min(done / self.total, 1.0)
        filled = int(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"[{bar}] {done}/{self.total} {share:4.0%} {note}".rstrip()
        if self.tty:
            print("\r" + text, end="", file=self.out, flush=True)
        elif int(share * 10) != self._last_decile:
            self._last_decile = int(share * 10)
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=self.out, flush=True)

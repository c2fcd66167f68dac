"""A dependency-free progress bar for long runs (backtest, replay, simulate, capture).

Drawn on stderr only when stderr is a terminal (so CI logs and pipes stay
clean), redrawn at most a few times a second, and cheap to call per record:
:meth:`Progress.update` does one comparison unless a redraw is due.

>>> bar = Progress(total=100, label="demo", stream=None)
>>> for _ in range(100):
...     bar.update(1)
>>> bar.done, bar.finish()
(100.0, None)
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Redraw interval: frequent enough to look alive, rare enough to cost nothing.
REDRAW_SECONDS = 0.25
#: Calls between clock reads; a clock read per record would cost more than the bar.
CHECK_EVERY = 4096


class Progress:
    """Counts work done against an optional total and draws a one-line bar.

    ``stream`` defaults to stderr when it is a TTY; pass ``None`` to count silently.
    """

    def __init__(
        self,
        total: float | None = None,
        label: str = "",
        unit: str = "records",
        stream: TextIO | bool | None = True,
    ) -> None:
        if stream is True:
            stream = sys.stderr if sys.stderr.isatty() else None
        self.stream: TextIO | None = stream or None
        self.total = total
        self.label = label
        self.unit = unit
        self.done = 0.0
        self.count = 0
        self._calls = 0
        self._started = time.monotonic()
        self._drawn = 0.0

    def update(self, amount: float = 1, count: int = 1) -> None:
        """Add ``amount`` towards the total and ``count`` to the records shown."""
        self.done += amount
        self.count += count
        if self.stream is None:
            return
        self._calls += 1
        if self._calls % CHECK_EVERY == 0 and time.monotonic() - self._drawn >= REDRAW_SECONDS:
            self._draw()

    def _draw(self) -> None:
        assert self.stream is not None
        now = time.monotonic()
        self._drawn = now
        elapsed = max(now - self._started, 1e-9)
        rate = self.count / elapsed
        if self.total:
            share = min(self.done / self.total, 1.0)
            filled = int(share * 30)
            bar = "#" * filled + "." * (30 - filled)
            eta = (elapsed / share - elapsed) if share > 0 else 0.0
            line = f"{self.label} [{bar}] {share:6.1%}  {self.count:,} {self.unit}"
            line += f"  {rate:,.0f}/s  eta {eta:,.0f} s"
        else:
            line = f"{self.label} {self.count:,} {self.unit}  {rate:,.0f}/s"
        self.stream.write("\r" + line[:120].ljust(80))
        self.stream.flush()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self.stream is not None:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

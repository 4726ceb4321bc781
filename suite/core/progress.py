"""The progress line of a long command on stderr: i/n, what is running, elapsed time and ETA.

On a terminal it rewrites one line; piped into a file (a job's log) it writes a line per step.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol


class Labelled(Protocol):
    def label(self) -> str: ...


class Progress:
    """One status line on stderr: i/n, the item's label, elapsed time and ETA."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()

    @staticmethod
    def _clock(seconds: float) -> str:
        m, s = divmod(int(seconds), 60)
        return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"

    def show(self, done: int, item: Labelled) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        eta = self._clock(elapsed / done * (self.total - done)) if done else "?"
        line = f"[{done + 1}/{self.total}] {item.label()}  elapsed {self._clock(elapsed)}  ETA {eta}"
        print(f"\r\033[K{line}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)

"""The live loop's status line, redrawn in place on a terminal (rich); silent in logs and pipes.

`live 00:01:23  faces 9  analysed 9.8 fps (per face)  captured 30.0 fps  dropped 1203  capturing`
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text


class StatusLine:
    """Called with the pipeline's progress; redraws at most every `every_s` seconds.

    `capture` is what it reports on: anything with `captured`, `analysed`, `dropped` and `status`
    (a `LiveCapture`). Only a terminal gets the line: redirected to a file, stderr would fill
    with one line a second for the whole session.
    """

    def __init__(self, capture, stream=None, every_s: float = 1.0):
        self.capture, self.every_s = capture, every_s
        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.start = time.monotonic()
        self.last = 0.0
        self.store_note = ""
        self._prev = (self.start, 0, 0)
        self._live: Live | None = None

    def __call__(self, progress) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s or not self.console.is_terminal:
            return
        self.last = now
        # Wrapped, not cut, on a narrow terminal: the note at its end is the news (rich redraws
        # all the lines in place).
        line = Text(self.text(progress.faces, now))
        if self._live is None:
            self._live = Live(line, console=self.console, auto_refresh=False, transient=False)
            self._live.start()
        self._live.update(line, refresh=True)

    def note(self, message: str) -> None:
        """An event worth its own line (kept in a log too): printed above the status line."""
        self.console.print(message, markup=False, soft_wrap=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()  # the last status stays on screen
            self._live = None

    def text(self, faces: int, now: float | None = None) -> str:
        now = now or time.monotonic()
        t0, cap0, ana0 = self._prev
        dt = max(1e-6, now - t0)
        cap_fps = (self.capture.captured - cap0) / dt
        ana_fps = (self.capture.analysed - ana0) / dt
        self._prev = (now, self.capture.captured, self.capture.analysed)
        elapsed = int(now - self.start)
        clock = f"{elapsed // 3600:02d}:{elapsed % 3600 // 60:02d}:{elapsed % 60:02d}"
        note = self.store_note or self.capture.status
        return (
            f"live {clock}  faces {faces}  analysed {ana_fps:4.1f} fps (per face)  "
            f"captured {cap_fps:4.1f} fps  dropped {self.capture.dropped}  {note}"
        )

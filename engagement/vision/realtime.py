"""What every frame source shares: the 8K frame limit, sampling by timestamp, and the
real-time base (wall-clock times, pacing, `frames()` over `open`/`read`/`close`)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

from engagement.core.errors import SourceError
from engagement.core.records import Frame, RunningMode

# Largest frame analysed: 8K UHD. One BGR frame of this size is already 100 MB; a 16000x16000
# frame would be 768 MB before any copy, and no face analysis needs more than a 4K screen gives.
MAX_FRAME_PIXELS = 7680 * 4320


class FrameSampler:
    """Keeps frames at most `fps` per second, by timestamp (works for variable frame rates)."""

    def __init__(self, fps: float | None):
        self.period_ms = 1000.0 / fps if fps else 0.0
        self.next_ms = -math.inf

    def keep(self, t_ms: float) -> bool:
        if not self.period_ms:
            return True
        if t_ms + 1e-6 < self.next_ms:
            return False
        if self.next_ms == -math.inf:
            self.next_ms = t_ms + self.period_ms
        else:
            # Step along the ideal grid, not from t_ms, so frame jitter never drifts the rate
            # down; after a gap, restart the grid instead of bursting to catch up.
            self.next_ms = max(self.next_ms + self.period_ms, t_ms + self.period_ms / 2)
        return True


class WallClock:
    """Milliseconds since `start()`, strictly increasing even when two reads share a tick."""

    def __init__(self) -> None:
        self.started_at = 0.0  # monotonic time of t_ms == 0
        self._last_ms = -1.0

    def start(self) -> None:
        self.started_at = time.monotonic()

    def now_ms(self) -> float:
        t_ms = max((time.monotonic() - self.started_at) * 1000.0, self._last_ms + 0.001)
        self._last_ms = t_ms
        return t_ms


class Pacer:
    """Waits for the next of `fps` ticks a second. `catch_up`: a late tick is followed at once by
    the ones it delayed (a replay keeps its media rate); otherwise the grid restarts after a delay."""

    def __init__(self, fps: float, *, catch_up: bool):
        self.period_s, self.catch_up = 1.0 / fps, catch_up
        self._next = 0.0

    def wait(self) -> None:
        now = time.monotonic()
        if not self._next:
            self._next = now
        elif self._next > now:
            time.sleep(self._next - now)
        self._next = self._next + self.period_s if self.catch_up else max(self._next + self.period_s, time.monotonic())


class RealTimeSource:
    """What the real-time sources share: `frames()` over `open`/`read`/`close`, times by the wall
    clock, at most `sample_fps` frames a second."""

    running_mode = RunningMode.LIVE
    finite = False
    fps = 0.0
    duration_s = 0.0
    sample_fps: float | None = None
    frame_size: tuple[int, int] | None = None  # (width, height) where known before the first frame

    def __init__(self) -> None:
        self.frames_read = 0
        self.frames_yielded = 0
        self.warnings: list[str] = []

    def frames(self) -> Iterator[Frame]:
        self.open()
        clock, sampler = WallClock(), FrameSampler(self.sample_fps)
        clock.start()
        try:
            while True:
                image = self.read()
                if image is None:
                    if self.finite:
                        return
                    raise SourceError(f"{self.name} returned no image")
                self.frames_read += 1
                t_ms = clock.now_ms()
                if not sampler.keep(t_ms):
                    continue
                self.frames_yielded += 1
                yield Frame(t_ms=t_ms, index=self.frames_read - 1, image=image)
        finally:
            self.close()

    def check_complete(self) -> None:
        return None

    def redact(self, text: str) -> str:
        return text

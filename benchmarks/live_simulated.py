"""A live source for benchmarks that does not wait for the wall clock.

Pre-decoded frames with synthetic timestamps, as fast as the analysis goes: honest only for
what does not depend on wall-clock pacing (memory, throughput); latency is measured on a paced
`LiveCapture` instead. It has what `run_live` reads of a capture (running mode LIVE, counters).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from engagement.app.live.capture import LiveLoopOptions
from engagement.core.records import Frame, RunningMode


class SimulatedCapture:
    running_mode = RunningMode.LIVE
    finite = True
    duration_s = 0.0
    name = "simulated"
    started_at = 0.0
    frame_size = None

    def __init__(self, frames: Sequence[np.ndarray], fps: float, duration_s: float):
        self._frames, self.fps, self.total = frames, fps, int(duration_s * fps)
        self.options = LiveLoopOptions(status=False)
        self.captured = self.analysed = self.rejected = self.reconnects = self.dropped = 0
        self.status = "simulated"
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.frame_times_ms: list[float] = []

    @property
    def frames_read(self) -> int:
        return self.captured

    def effective_fps(self, wall_s: float) -> float:
        return self.analysed / wall_s if wall_s > 0 else 0.0

    def stop(self) -> None:
        self.total = min(self.total, self.captured)

    def frames(self) -> Iterator[Frame]:
        while self.captured < self.total:
            i = self.captured
            self.captured += 1
            self.analysed += 1
            yield Frame(t_ms=i * 1000.0 / self.fps, index=i, image=self._frames[i % len(self._frames)])

    def open(self) -> None:
        return None

    def read(self) -> np.ndarray | None:
        return None

    def close(self) -> None:
        self.stop()

    def check_complete(self) -> None:
        return None

    def redact(self, text: str) -> str:
        return text

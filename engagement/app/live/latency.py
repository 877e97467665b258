"""Capture -> visible in the store: how long a live second takes to reach a dashboard.

Measured only when asked (`LiveLoopOptions.measure_latency`: benchmarks and tests): a thread
reads the store like the dashboard does and notes when each second first becomes visible.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
from sqlalchemy import func, select

from engagement.app.periodic import Periodic
from engagement.core import schema


class StorePoller(Periodic):
    """Reads the store like the dashboard does, noting when each second first becomes visible."""

    def __init__(self, store, session: str, every_s: float = 0.05):
        super().__init__(every_s, "live-store-poller")
        self.store, self.session = store, session
        self.seen: dict[int, float] = {}
        self._run_id: int | None = None
        self._last = -1

    def latencies(self, origin: float, frame_times_ms: Sequence[float]) -> list[float]:
        """Seconds from each analysed frame's capture (`origin` + t_ms, monotonic) to its second
        being visible."""
        out = []
        for t_ms in frame_times_ms:
            seen = self.seen.get(int(t_ms // 1000))
            if seen is not None:
                out.append(seen - (origin + t_ms / 1000.0))
        return out

    def tick(self) -> bool:
        runs, sessions, tl = schema.runs, schema.sessions, schema.class_timeline
        try:
            with self.store.engine.connect() as conn:
                if self._run_id is None:
                    self._run_id = conn.execute(
                        select(func.max(runs.c.id))
                        .select_from(runs.join(sessions, sessions.c.id == runs.c.session_id))
                        .where(sessions.c.name == self.session, runs.c.status == "running")
                    ).scalar()
                    return True
                top = conn.execute(select(func.max(tl.c.second)).where(tl.c.run_id == self._run_id)).scalar()
        except Exception:  # noqa: BLE001 - a busy read is retried on the next poll
            return True
        if top is not None and top > self._last:
            now = time.monotonic()
            for s in range(self._last + 1, top + 1):
                self.seen[s] = now
            self._last = top
        return True


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan

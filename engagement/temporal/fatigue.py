"""Per-participant fatigue figures over the last minute, from the per-second windows' counts.

Every figure reuses the eye closures the attention tracker finds (vision/attention.py): a frame
is "shut" below the closed level of the person's own open eyes, and a closure runs from its first
shut frame to the next frame seen open. A closure shorter than `BLINK_MAX_MS` is a blink, one of
`LONG_CLOSURE_MS` a long closure (longer is eyes closed: resting, reading a desk). Method and
measured accuracy: docs/attention.md, "Fatigue".
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from engagement.core.records import BLENDSHAPE_NAMES, EXPRESSION_LABELS

# PERCLOS, blink rate and blink duration look back this far.
HISTORY_S = 60
# A figure needs this many seconds of readable eyes in its minute; fewer and it is missing.
MIN_READ_S = 15
BLINK_MAX_MS = 500.0
# Blinks last 40-400 ms, so they are counted only where the eyes were read at least this many
# times a second of face: on the shared clips 8 frames a second found the blinks every frame did
# (3 of 3 on WolfgangLanger, 10-11 of 12 on d9), 6 and fewer missed a third to two thirds (a
# gallery is analysed at 3). Below it blink_rate and blink_ms are missing, not low.
BLINK_MIN_FPS = 8.0
LONG_CLOSURE_MS = (500.0, 3000.0)
# A smile: the CNN's mean Happy and the mean mouthSmile blendshape of the second both at least
# these (either alone fires on a wide mouth or on a bright, blurred face).
SMILE_MIN_HAPPY = 0.5
SMILE_MIN_BLENDSHAPE = 0.5
_HAPPY = EXPRESSION_LABELS.index("happy")
_SMILE = (BLENDSHAPE_NAMES.index("mouthSmileLeft"), BLENDSHAPE_NAMES.index("mouthSmileRight"))


@dataclass
class SecondCounts:
    """One participant's eye counts over one window."""

    read: int = 0  # face frames whose eyes were read against an open level
    shut: int = 0  # of those, frames below the closed level
    blinks: int = 0  # closures under BLINK_MAX_MS that ended in the window
    blink_ms: float = 0.0  # their total duration
    long_closures: int = 0
    present: bool = False

    def add_closure(self, duration_ms: float) -> None:
        if duration_ms < BLINK_MAX_MS:
            self.blinks += 1
            self.blink_ms += duration_ms
        elif LONG_CLOSURE_MS[0] <= duration_ms <= LONG_CLOSURE_MS[1]:
            self.long_closures += 1


class FatigueHistory:
    """One participant's last minute of `SecondCounts`; `add` returns the figures after it."""

    def __init__(self, window_ms: int = 1000):
        self._per_minute = 60_000.0 / window_ms
        self._window_s = window_ms / 1000.0
        self._seconds: deque[SecondCounts] = deque(maxlen=max(1, round(HISTORY_S * 1000 / window_ms)))
        self._min_read = MIN_READ_S * 1000 / window_ms

    def add(self, counts: SecondCounts) -> dict[str, float | None]:
        """perclos (share 0-1), blink_rate (per minute of face) and blink_ms (mean), each None
        while the minute holds fewer than MIN_READ_S seconds with readable eyes."""
        self._seconds.append(counts)
        read = sum(c.read for c in self._seconds)
        read_seconds = sum(c.read > 0 for c in self._seconds)
        if read_seconds < self._min_read or read == 0:
            return {"perclos": None, "blink_rate": None, "blink_ms": None}
        perclos = sum(c.shut for c in self._seconds) / read
        if read / read_seconds < BLINK_MIN_FPS * self._window_s:
            return {"perclos": perclos, "blink_rate": None, "blink_ms": None}
        blinks = sum(c.blinks for c in self._seconds)
        present = sum(c.present for c in self._seconds)
        return {
            "perclos": perclos,
            "blink_rate": blinks * self._per_minute / present,
            "blink_ms": sum(c.blink_ms for c in self._seconds) / blinks if blinks else None,
        }


def smile(expression: tuple[float, ...] | None, blendshapes: tuple[float | None, ...] | None) -> int | None:
    """1 when the second's CNN Happy and smile blendshapes both say smile, 0 when not, None when
    either is missing (always so where the profile forbids expressions: neither is measured)."""
    if expression is None or blendshapes is None:
        return None
    scores = [blendshapes[i] for i in _SMILE]
    if any(s is None for s in scores):
        return None
    mouth = sum(scores) / len(scores)  # type: ignore[arg-type]
    return int(expression[_HAPPY] >= SMILE_MIN_HAPPY and mouth >= SMILE_MIN_BLENDSHAPE)

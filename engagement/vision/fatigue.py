"""Yawns, frame by frame: a physical sign of tiredness, not an emotion (docs/attention.md).

A yawn is the mouth held wide open for at least `min_open_ms` with the eyes narrowing. "Wide open"
needs both the lip geometry (inner-lip gap over inner-mouth width, from the landmarks) and, where
the landmarker gives it, its `jawOpen` blendshape; once open, a lower level (`release`) keeps it
open, so landmark jitter does not end a yawn. Talking opens and closes the jaw several times a
second, so its openings never last `min_open_ms`; a laugh holds the mouth open with the lip
corners pulled up (`mouthSmile*`), so a phase whose mean smile score reaches `max_smile` is not a
yawn. Only the verdict (yawn or not) leaves vision/: the blendshapes used here are not stored
where the profile forbids expressions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Inner lip midpoints (upper, lower) and inner mouth corners (FaceMesh topology).
INNER_LIPS = (13, 14)
INNER_CORNERS = (78, 308)


@dataclass(frozen=True)
class YawnOptions:
    """Defaults measured on the shared clips (docs/attention.md, "Yawns")."""

    # Wide open: lip gap / mouth width and jawOpen (0-1) at least these to start a phase.
    min_mouth_ratio: float = 0.6
    min_jaw_open: float = 0.5
    # A phase goes on while both stay above this fraction of their start levels (hysteresis).
    release: float = 0.7
    # The shortest yawn: speech holds no opening this long (syllables last 0.1-0.3 s).
    min_open_ms: float = 1500.0
    # Eyes narrowing: openness below this fraction of the person's own open level ...
    narrow_fraction: float = 0.8
    # ... in at least this share of the phase's frames whose eyes could be read.
    min_narrow_share: float = 0.2
    # A phase whose mean mouthSmile score reaches this is a laugh.
    max_smile: float = 0.4
    # A face unseen for longer than this ends the phase (the yawn cannot be followed).
    max_gap_ms: float = 500.0


def mouth_ratio(landmarks: np.ndarray) -> float:
    """Inner-lip gap over inner-mouth width: ~0-0.1 closed, 0.3-0.5 speech, 0.6+ a wide yawn."""
    gap = float(np.linalg.norm(landmarks[INNER_LIPS[0], :2] - landmarks[INNER_LIPS[1], :2]))
    width = float(np.linalg.norm(landmarks[INNER_CORNERS[0], :2] - landmarks[INNER_CORNERS[1], :2]))
    return gap / width if width > 0 else math.nan


class YawnDetector:
    """One track's yawns. `update` returns whether a confirmed yawn is in progress at the frame."""

    def __init__(self, options: YawnOptions | None = None):
        self.options = options or YawnOptions()
        self._since: float | None = None  # first frame of the current wide-open phase
        self._last_t = -math.inf
        self._frames = self._eye_frames = self._narrow = 0
        self._smile_sum = 0.0

    def update(
        self, t_ms: float, ratio: float, jaw_open: float | None, smile: float | None, eye_ratio: float | None
    ) -> bool:
        """`ratio`: `mouth_ratio`; `jaw_open`, `smile`: blendshape scores (None when the
        landmarker gave none); `eye_ratio`: eye openness over the person's open level (None while
        that level is unknown or the eyes cannot be read)."""
        o = self.options
        if t_ms - self._last_t > o.max_gap_ms:
            self._since = None
        self._last_t = t_ms
        scale = 1.0 if self._since is None else o.release
        jaw_ok = jaw_open is None or (math.isfinite(jaw_open) and jaw_open >= scale * o.min_jaw_open)
        if not (math.isfinite(ratio) and ratio >= scale * o.min_mouth_ratio and jaw_ok):
            self._since = None
            return False
        if self._since is None:
            self._since = t_ms
            self._frames = self._eye_frames = self._narrow = 0
            self._smile_sum = 0.0
        self._frames += 1
        self._smile_sum += smile if smile is not None and math.isfinite(smile) else 0.0
        if eye_ratio is not None and math.isfinite(eye_ratio):
            self._eye_frames += 1
            self._narrow += eye_ratio < o.narrow_fraction
        return self._confirmed(t_ms)

    def _confirmed(self, t_ms: float) -> bool:
        o = self.options
        assert self._since is not None
        if t_ms - self._since < o.min_open_ms or self._smile_sum / self._frames >= o.max_smile:
            return False
        return self._eye_frames > 0 and self._narrow >= o.min_narrow_share * self._eye_frames

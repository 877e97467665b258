"""Attention per participant and frame: on screen, looking away, eyes closed, or not measurable.

A webcam sits above or beside the screen, so "looking at the screen" is a per-person direction,
not the camera axis. Each track learns its own screen direction as the running median of its
gaze (head pose + eye-in-head) over its measurable, eyes-open frames, and a frame is on screen
when its gaze lies inside an elliptical cone around that direction whose half-angles come from the
screen's size and the viewing distance. Everything is causal (a frame is judged from earlier
frames only), so a recording and a live camera give the same answers.

Method, defaults and the measurements behind them: docs/attention.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engagement.core.config import AttentionOptions  # core, since AnalysisOptions holds one

# When less than this share of a track's recent eyes-open gaze lies inside its screen cone, the
# direction is learned again from all of it (docs/attention.md).
RELEARN_BELOW = 0.3
# The screen direction and open-eye level are refitted this often (every sample while learning).
REFIT_MS = 1000.0
# The warm-up is `warmup_s` of samples: every `sample_ms` (15 samples by default) when frames come
# that often, and at least this many when they come more slowly (a class of 25 on two cores gets
# 3-5 frames a second per face): 2 frames a second per face still learn in the same 3 s, slower
# rates take MIN_WARMUP_SAMPLES frames (docs/attention.md, "Frame rate").
MIN_WARMUP_SAMPLES = 6


@dataclass(frozen=True)
class FaceSignals:
    """What attention needs from one face in one frame (angles in radians, sizes in pixels)."""

    gaze_yaw: float
    gaze_pitch: float
    ear: float  # eye aspect ratio, both eyes' mean
    face_size: float  # inter-ocular distance
    sharpness: float
    brightness: float
    head: tuple[float, float, float]  # the head's turning point, mm in the camera frame


def measurable(s: FaceSignals, options: AttentionOptions) -> bool:
    """Whether the gaze can be judged: big, sharp and bright enough, geometry solved."""
    numbers = (s.gaze_yaw, s.gaze_pitch, s.ear, s.face_size, s.sharpness, s.brightness)
    if not all(math.isfinite(v) for v in numbers):
        return False  # pose or eye geometry failed (e.g. a heavily occluded face)
    return (
        s.face_size >= options.min_face_px
        and s.sharpness >= options.min_sharpness
        and s.brightness >= options.min_brightness
    )


def eyes_readable(s: FaceSignals, options: AttentionOptions) -> bool:
    """Whether eye openness can be read: the face big enough and the lids found.

    Sharpness and brightness gate the gaze only: eye openness kept a correlation of at least 0.94
    with the original on faces blurred and darkened past those limits (docs/attention.md), and
    closing the eyes itself lowers the face's sharpness (the open eyes are its sharpest detail:
    0.55-0.65 of the open-eye figure on WolfgangLanger), so a gate on sharpness would drop
    exactly the closed frames of a soft webcam image.
    """
    return math.isfinite(s.ear) and math.isfinite(s.face_size) and s.face_size >= options.min_face_px


class AttentionTracker:
    """One track's attention, frame by frame. Call `update` with increasing times.

    Memory is bounded: at most `history_s / sample_ms` samples of seven numbers each.
    """

    def __init__(self, options: AttentionOptions | None = None):
        self.options = options or AttentionOptions()
        o = self.options
        # Samples of measurable frames, oldest first, in rows [_start, _end) of a buffer twice the
        # history long (compacted when full): t, gaze yaw, gaze pitch, ear, head position x, y, z.
        n = int(math.ceil(o.history_s * 1000.0 / o.sample_ms)) + 1
        self._buffer = np.empty((2 * n, 7))
        self._start = self._end = 0
        self._warmup_samples = max(1, int(math.ceil(o.warmup_s * 1000.0 / o.sample_ms)))
        self._min_warmup_samples = min(MIN_WARMUP_SAMPLES, self._warmup_samples)
        self._last_sample = self._last_fit = -math.inf
        self.direction: tuple[float, float] | None = None  # (yaw, pitch) of the screen, radians
        self.open_level: float | None = None
        self.moves = 0  # times the screen direction was learned again after a move
        self.last_t = -math.inf
        self._closed_since: float | None = None  # first frame of the current closure
        self._verdict = "unknown"  # last eyes-open verdict, held through blinks
        # The frame's reading of the eyes for the fatigue signals (vision/stage.py): whether they
        # were below the closed level (None: not read), and how long a closure that the frame
        # ended lasted (blinks and long closures alike; None when none ended).
        self.shut: bool | None = None
        self.ended_closure_ms: float | None = None

    def update(self, t_ms: float, s: FaceSignals) -> str:
        """The frame's verdict, one of records.FRAME_ATTENTION_STATES (a frame without the face
        is not judged here: its window calls it absent)."""
        if t_ms <= self.last_t:
            raise ValueError(f"attention frames must be in time order: {t_ms} ms after {self.last_t} ms")
        self.last_t = t_ms
        self.shut = self.ended_closure_ms = None
        o = self.options
        gaze_ok = measurable(s, o)
        if gaze_ok and t_ms - self._last_sample >= o.sample_ms:
            self._last_sample = t_ms
            self._add(t_ms, s)
            # Refit once a second (every sample while still learning): a median over minutes
            # moves slowly, and this keeps the cost per frame low (benchmarks/vision_stage.py).
            if self.direction is None or t_ms - self._last_fit >= REFIT_MS:
                self._last_fit = t_ms
                self._fit(t_ms)
        if self.direction is None or self.open_level is None:
            return "unknown"  # still learning this participant (docs/attention.md: warm-up)
        closure = self._closure(t_ms, s)
        if closure == "eyes_closed":
            return closure
        if not gaze_ok:
            return "unknown"
        if closure == "closing":
            return self._verdict  # a blink so far: the gaze before it still stands
        inside = self._inside(np.float64(s.gaze_yaw), np.float64(s.gaze_pitch))
        self._verdict = "on_screen" if inside else "looking_away"
        return self._verdict

    def _closure(self, t_ms: float, s: FaceSignals) -> str:
        """Where this frame stands in a closure: `eyes_closed` once the eyes have been closed for
        `min_closed_ms`, `closing` before that, `open`, or `unread` when the frame cannot tell.

        Only a frame with the eyes seen open ends a closure. A frame whose openness cannot be read
        leaves it running, and so does one too soft or dark for the gaze: before, such a frame
        restarted the clock, and a closure whose frames were now and then unmeasurable never
        lasted `min_closed_ms` and kept the verdict from before it (closed eyes stored as
        on_screen). Nor does time alone: at a low sample rate (`--sample-fps 2`) closed frames
        lie 500 ms apart and are still one closure.
        """
        o = self.options
        assert self.open_level is not None
        if not eyes_readable(s, o):
            return "unread"
        if s.ear >= o.closed_fraction * self.open_level:
            if self._closed_since is not None:
                self.ended_closure_ms = t_ms - self._closed_since
            self._closed_since = None
            self.shut = False
            return "open"
        self.shut = True
        if self._closed_since is None:
            self._closed_since = t_ms
        return "eyes_closed" if t_ms - self._closed_since >= o.min_closed_ms else "closing"

    @property
    def closed_since(self) -> float | None:
        """When the current closure began (None with the eyes open): after an `eyes_closed`
        verdict, the frames since then were closed too, though each kept the verdict from before."""
        return self._closed_since

    def _add(self, t_ms: float, s: FaceSignals) -> None:
        if self._end == len(self._buffer):
            kept = self._end - self._start
            self._buffer[:kept] = self._buffer[self._start : self._end]
            self._start, self._end = 0, kept
        self._buffer[self._end] = (t_ms, s.gaze_yaw, s.gaze_pitch, s.ear, *s.head)
        self._end += 1
        self._forget_before(t_ms - self.options.history_s * 1000.0)

    def _fit(self, t_ms: float) -> None:
        """The open-eye level and the screen direction from the history."""
        o = self.options
        samples = self.samples
        level = float(np.percentile(samples[:, 3], o.open_percentile))
        self.open_level = level if self._learned(samples[:, 0]) and level >= o.min_open_ear else None
        if self.open_level is None:
            self.direction = None
            return
        # Only eyes-open samples say where the screen is; the filter also drops closed-eye samples
        # taken before the open level was known.
        open_ = samples[samples[:, 3] >= o.closed_fraction * self.open_level]
        if self._moved(open_, t_ms):
            self._forget_before(t_ms - o.move_confirm_s * 1000.0)
            open_ = open_[open_[:, 0] >= t_ms - o.move_confirm_s * 1000.0]
            self.direction = None  # learned afresh from the frames since the move
            self.moves += 1
        if not self._learned(open_[:, 0]):
            self.direction = None
            return
        if self.direction is not None:
            inside = self._inside(open_[:, 1], open_[:, 2])
            # Once learned, only on-screen samples refine the direction, so a long look away
            # cannot pull it over; unless most of the history lies outside (the first estimate
            # was wrong, or the setup changed without the head moving): then learn from all.
            if inside.mean() >= RELEARN_BELOW:
                open_ = open_[inside]
        self.direction = (float(np.median(open_[:, 1])), float(np.median(open_[:, 2])))

    def _learned(self, times: np.ndarray) -> bool:
        """Whether samples taken at `times` (ms, ascending) are enough to learn from: the warm-up's
        count at the full sample rate, or fewer that still span the warm-up's time."""
        n = len(times)
        if n >= self._warmup_samples:
            return True
        span_ms = float(times[-1] - times[0]) if n else 0.0
        return n >= self._min_warmup_samples and span_ms >= self.options.warmup_s * 1000.0

    @property
    def samples(self) -> np.ndarray:
        """The history, one row per sample (a view: do not keep it)."""
        return self._buffer[self._start : self._end]

    def _forget_before(self, t_ms: float) -> None:
        self._start += int(np.searchsorted(self.samples[:, 0], t_ms))

    def _inside(self, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
        """Whether gaze angles lie inside the screen cone (elliptical, around `direction`)."""
        o = self.options
        assert self.direction is not None
        dy = (yaw - self.direction[0]) / o.half_width
        dp = (pitch - self.direction[1]) / o.half_height
        return dy * dy + dp * dp <= 1.0

    def _moved(self, samples: np.ndarray, t_ms: float) -> bool:
        """A sustained shift of the head as the camera sees it: the camera or the seat moved.

        At least 90 % of the samples of the last `move_confirm_s` (some slack for landmark
        glitches) must lie off the median head position before them, so looking elsewhere and back
        within that time is not a move.
        """
        o = self.options
        recent = samples[:, 0] >= t_ms - o.move_confirm_s * 1000.0
        need = max(2, int(o.move_confirm_s * 1000.0 / o.sample_ms * 0.8))
        if recent.sum() < need or not self._learned(samples[~recent][:, 0]):
            return False
        before = np.median(samples[~recent][:, 4:7], axis=0)
        now = samples[recent][:, 4:7]
        before_dist = float(np.linalg.norm(before))
        dist = np.linalg.norm(now, axis=1)
        cos = (now @ before) / np.maximum(dist * before_dist, 1e-9)
        angle = np.arccos(np.clip(cos, -1.0, 1.0))
        scale = np.abs(np.log(np.maximum(dist, 1e-9) / max(before_dist, 1e-9)))
        away = (angle > math.radians(o.move_deg)) | (scale > math.log1p(o.move_scale))
        return bool(away.mean() >= 0.9)

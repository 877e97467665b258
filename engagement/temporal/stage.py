"""The temporal stage: per-second windows in, per-track engagement and a class timeline out.

Per track it keeps the last SEGMENT_S (30) seconds of windows, the model's state and the
participant's usual gaze and head direction (features.Baseline: a running median over the last
BASELINE_S seconds with a face). Every HOP_S (15) seconds, once the track has existed for
SEGMENT_S seconds, the last SEGMENT_S seconds become a segment that advances the committed state
(30 s segments every 15 s: the time scale of the Engagement-in-the-Wild segments the model learned
from). Every second the current buffer is run as a provisional next segment from the committed
state, without committing it, so the timeline has a score every second. A track scores from its
MIN_PRESENT_S-th second with a face on.

Missing is missing: a second without a face is `absent`, with no score; a face with too little
signal is `unknown`; neither enters the class mean, and a segment without a face leaves the
model's state as it was. Tracks outside `consenting` are not processed at all and their state is
dropped. Memory is flat: 30 windows, one state and BASELINE_S directions per track, one class
point per second for alerts. The expression CNN's output is not an input of the model.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engagement.core.records import WindowFeatures
from engagement.temporal.features import HOP_S, MIN_PRESENT_S, SEGMENT_S, Baseline, segment_inputs
from engagement.temporal.model import DEFAULT_MODEL, TemporalModel
from engagement.temporal.outputs import Alert, ClassPoint, EngagementEstimate, SecondOutput
from engagement.temporal.timeline import K_MIN, AlertRules, DropRule, class_alerts, class_point

# Scores from a span shorter than a segment get extra uncertainty, added in quadrature, growing
# to this value as the span shrinks to nothing (a heuristic: short spans read as steadier).
SHORT_SPAN_UNCERTAINTY = 0.2


@dataclass
class _Track:
    first_second: int
    buffer: deque = field(default_factory=lambda: deque(maxlen=SEGMENT_S))
    baseline: Baseline = field(default_factory=Baseline)
    state: np.ndarray | None = None  # committed model state (members, 1, hidden)
    prev_state: np.ndarray | None = None  # the state before the last commit
    last_commit: int | None = None


class TemporalStage:
    """Streaming engagement estimation; call `process_second` once per second in order."""

    def __init__(self, model: TemporalModel, k_min: int = K_MIN, drop_rule: DropRule | None = None) -> None:
        if k_min < 1:
            raise ValueError("k_min must be at least 1")
        self.model = model
        self.k_min = k_min
        self.drop_rule = drop_rule or DropRule()
        self._tracks: dict[int, _Track] = {}
        self._class_points: list[ClassPoint] = []
        self._last_second: int | None = None
        self._yawning: set[int] = set()  # tracks in a yawn in the previous second

    @classmethod
    def load(cls, models_dir: Path | None = None, k_min: int = K_MIN, model: str = DEFAULT_MODEL) -> "TemporalStage":
        """The registered model `model` (sha256-checked), by default the shipped one."""
        return cls(TemporalModel.load(model, models_dir), k_min=k_min)

    def model_versions(self) -> dict[str, dict[str, str]]:
        return {self.model.name: {"version": self.model.version, "sha256": self.model.sha256}}

    def process_second(
        self, second: int, windows: dict[int, WindowFeatures], consenting: set[int] | None = None
    ) -> SecondOutput:
        """Estimates for every consenting track in `windows` and the class point of `second`.

        `consenting=None` means every track in `windows` was let through by the consent gate.
        """
        if self._last_second is not None and second <= self._last_second:
            raise ValueError(f"seconds must increase: {second} after {self._last_second}")
        self._last_second = second
        if consenting is not None:
            for track_id in [t for t in self._tracks if t not in consenting]:
                del self._tracks[track_id]  # withdrawn: forget everything about the track
        ids = sorted(t for t in windows if consenting is None or t in consenting)
        estimates: dict[int, EngagementEstimate] = {}
        pending: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, int]] = []
        for track_id in ids:
            w = windows[track_id]
            track = self._tracks.get(track_id)
            if track is None:
                track = self._tracks[track_id] = _Track(first_second=second)
            track.buffer.append(w)
            track.baseline.add(w)
            self._maybe_commit(track, second)
            if w.n_face <= 0:
                # No face: absent, unless the face could not have been seen (a gallery tile too
                # small for the landmarker), which is not knowing, not being away.
                state = "unknown" if w.attention == "unknown" else "absent"
                estimates[track_id] = EngagementEstimate(track_id, second, state)
                continue
            n_present = sum(1 for b in track.buffer if b.n_face > 0)
            x, mask = segment_inputs(list(track.buffer), track.baseline.median())
            if (track.state is None and n_present < MIN_PRESENT_S) or not self.model.observes(mask):
                estimates[track_id] = EngagementEstimate(track_id, second, "unknown")
                continue
            # In the second of a commit the buffer *is* the committed segment: score it from the
            # state before it (the commit's own output), not as a repeat of itself.
            state = track.prev_state if track.last_commit == second else track.state
            if state is None:
                state = self.model.initial_state(1)
            pending.append((track_id, x, mask, state, n_present))
        if pending:
            out = self.model.run(
                np.stack([p[1] for p in pending])[:, None, :],
                np.stack([p[2] for p in pending])[:, None, :],
                np.concatenate([p[3] for p in pending], axis=1),
            )
            for i, (track_id, _, _, _, n_present) in enumerate(pending):
                estimates[track_id] = self._estimate(
                    track_id, second, float(out.score[i, 0]), out.levels[i, 0], float(out.uncertainty[i, 0]), n_present
                )
        ordered = tuple(estimates[t] for t in ids)
        point = class_point(
            second, ordered, self.k_min, windows=[windows[t] for t in ids], yawn_starts=self._yawn_starts(windows, ids)
        )
        self._class_points.append(point)
        return SecondOutput(second=second, estimates=ordered, class_point=point)

    def _yawn_starts(self, windows: dict[int, WindowFeatures], ids: list[int]) -> int:
        """How many of `ids` are in a yawn this second and were not in the previous one."""
        now = {t for t in ids if windows[t].yawn == 1}
        starts = len(now - self._yawning)
        self._yawning = now
        return starts

    def _maybe_commit(self, track: _Track, second: int) -> None:
        """Advance the committed state by one segment every HOP_S seconds after the first SEGMENT_S."""
        age = second - track.first_second + 1
        due = age >= SEGMENT_S if track.last_commit is None else second - track.last_commit >= HOP_S
        if not due:
            return
        x, mask = segment_inputs(list(track.buffer), track.baseline.median())
        state = track.state if track.state is not None else self.model.initial_state(1)
        # A segment with no face still runs: the graph holds the state unchanged for it.
        track.prev_state = state
        track.state = self.model.run(x[None, None], mask[None, None], state).state
        track.last_commit = second

    @staticmethod
    def _estimate(track_id: int, second: int, score: float, levels: np.ndarray, unc: float,
                  n_present: int) -> EngagementEstimate:
        short = SHORT_SPAN_UNCERTAINTY * max(0.0, 1.0 - n_present / SEGMENT_S)
        p = tuple(float(v) for v in levels)
        return EngagementEstimate(
            track_id=track_id,
            second=second,
            state="present",
            score=min(1.0, max(0.0, score)),
            level=int(np.argmax(levels)),
            p_levels=p,  # type: ignore[arg-type]
            uncertainty=math.sqrt(unc * unc + short * short),
        )

    def finish(self) -> list[Alert]:
        """Alerts over the whole run: falls of the score and of the on-screen share, rises of
        cameras off (timeline.class_alerts)."""
        return class_alerts(self._class_points, AlertRules(score=self.drop_rule))

"""Per-track windows (1 s by default) of frame features: the temporal model's input.

Every track gets a window for every second from its first appearance to the end of the run:
seconds where its face was not found are emitted with `n_face == 0` and no statistics, so a
face that leaves shows up as *absent* rather than vanishing from the record (or, worse, as
zeros that read like disengagement).

Attention per window (docs/attention.md): `absent` when the face was never found; `unknown` (no
ratios) when fewer than half of the face frames could be judged (face measurable, screen
direction known); otherwise the shares of the judged frames on screen and with eyes closed, and
the most frequent judged verdict as the state (ties go to the earlier of on_screen,
looking_away, eyes_closed). A closure counts from its first frame once it is confirmed within the
open window (`FrameFeatures.closed_since_ms`): its first 0.4 s waited as a possible blink.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engagement.core.records import EXPRESSION_LABELS, FEATURE_NAMES, FrameFeatures, WindowFeatures
from engagement.temporal.fatigue import FatigueHistory, SecondCounts, smile


@dataclass
class _Accumulator:
    values: list[tuple[float, ...]] = field(default_factory=list)
    expressions: list[tuple[float, ...]] = field(default_factory=list)
    blinks: int = 0
    verdicts: list[tuple[float, str]] = field(default_factory=list)  # (t_ms, attention) per face frame
    blendshapes: list[tuple[float | None, ...]] = field(default_factory=list)
    eyes: SecondCounts = field(default_factory=SecondCounts)
    yawn: bool = False


class WindowAggregator:
    """Collects `FrameFeatures` and emits `WindowFeatures` for each completed window.

    Call `add(t_ms, features)` for every analysed frame (also those with no face, so the
    aggregator knows the frame was looked at), in increasing time order; it returns the
    windows that the new frame completed. `present`: tracks known to be there without a face
    (a camera-off gallery tile), whose windows are then `absent` from that second on. `flush()` returns the last, partial window.
    """

    def __init__(self, window_ms: int = 1000):
        self.window_ms = window_ms
        self._current: int | None = None  # index of the open window
        self._frames = 0  # frames analysed in the open window
        self._acc: dict[int, _Accumulator] = {}
        self._known: dict[int, int] = {}  # track id -> first window index
        self._unmeasurable: set[int] = set()  # tracks whose faceless frames this window say nothing
        self._fatigue: dict[int, FatigueHistory] = {}  # track id -> its last minute of eye counts

    def add(
        self, t_ms: float, features: list[FrameFeatures], present: Sequence[int] = (), unmeasurable: Sequence[int] = ()
    ) -> list[WindowFeatures]:
        index = int(t_ms // self.window_ms)
        done: list[WindowFeatures] = []
        if self._current is not None and index < self._current:
            raise ValueError(f"frame at {t_ms} ms is older than the open window {self._current}")
        if self._current is not None and index > self._current:
            done = self._close()
        self._current = index
        self._frames += 1
        for track_id in present:  # there, without a face (camera off): absent from this second on
            self._known.setdefault(track_id, index)
        self._unmeasurable.update(unmeasurable)  # ... or unknown, where no face could be seen
        for f in features:
            self._known.setdefault(f.track_id, index)
            acc = self._acc.setdefault(f.track_id, _Accumulator())
            acc.values.append(f.values)
            acc.blinks += int(f.blink)
            if f.expression is not None:
                acc.expressions.append(f.expression)
            if f.closed_since_ms is not None:
                _count_closed_since(acc.verdicts, f.closed_since_ms)
            acc.verdicts.append((f.t_ms, f.attention or "unknown"))
            if f.blendshapes is not None:
                acc.blendshapes.append(f.blendshapes)
            _count_eyes(acc, f)
        return done

    def forget(self, track_id: int) -> None:
        """Stop emitting windows for a track (e.g. consent withdrawn)."""
        self._known.pop(track_id, None)
        self._acc.pop(track_id, None)
        self._fatigue.pop(track_id, None)

    def flush(self) -> list[WindowFeatures]:
        if self._current is None or self._frames == 0:
            return []
        return self._close()

    def _close(self) -> list[WindowFeatures]:
        second = self._current
        assert second is not None
        out = []
        for track_id in sorted(self._known):
            acc = self._acc.get(track_id, _Accumulator())
            history = self._fatigue.setdefault(track_id, FatigueHistory(self.window_ms))
            acc.eyes.present = bool(acc.values)
            fatigue = history.add(acc.eyes)
            if acc.values:
                fatigue.update(yawn=int(acc.yawn), long_closures=acc.eyes.long_closures)
            out.append(
                summarise(
                    track_id,
                    second,
                    self._frames,
                    acc.values,
                    acc.blinks,
                    acc.expressions,
                    Counter(v for _, v in acc.verdicts),
                    blendshapes=acc.blendshapes,
                    unmeasurable=track_id in self._unmeasurable,
                    fatigue=fatigue,
                )
            )
        self._acc = {}
        self._unmeasurable = set()
        self._frames = 0
        return out


def _count_eyes(acc: _Accumulator, f: FrameFeatures) -> None:
    """Add one face frame's eye reading and yawn verdict to its window (temporal/fatigue.py)."""
    if f.eyes_shut is not None:
        acc.eyes.read += 1
        acc.eyes.shut += int(f.eyes_shut)
    if f.ended_closure_ms is not None:
        acc.eyes.add_closure(f.ended_closure_ms)
    acc.yawn = acc.yawn or f.yawn


def _count_closed_since(verdicts: list[tuple[float, str]], since_ms: float) -> None:
    """Relabel this window's frames from `since_ms` on as eyes_closed: a closure just confirmed
    began there, and its first frames kept the verdict from before it while they could still have
    been a blink. Frames of an earlier, already emitted window keep their verdict (causal)."""
    for i in range(len(verdicts) - 1, -1, -1):
        t, verdict = verdicts[i]
        if t < since_ms or verdict == "eyes_closed":
            break  # earlier frames precede the closure, or were relabelled already
        verdicts[i] = (t, "eyes_closed")


def _finite_stats(column: np.ndarray) -> tuple[float | None, float | None]:
    column = column[np.isfinite(column)]
    if column.size == 0:
        return None, None
    return float(column.mean()), float(column.std())


def summarise(
    track_id: int,
    second: int,
    n_frames: int,
    values: list[tuple[float, ...]],
    blinks: int,
    expressions: list[tuple[float, ...]],
    attention: Counter | None = None,
    *,
    blendshapes: list[tuple[float | None, ...]] | None = None,
    unmeasurable: bool = False,
    fatigue: dict[str, float | int | None] | None = None,
) -> WindowFeatures:
    """Mean and (population) std per feature over one window; None where nothing was measured.

    `attention` counts the face frames' verdicts (a frame not judged counts as unknown).
    `blendshapes`: the face frames' scores; their per-second mean per blendshape, None for one
    no frame measured (the profile withheld it, or the landmarker gave none). `unmeasurable`:
    a second without a face is `unknown`, not `absent` (the face was too small to be seen).
    `fatigue`: the window's fatigue fields (temporal/fatigue.py) but `smile`, made here.
    """
    fatigue = fatigue or {}
    if not values:
        empty = (None,) * len(FEATURE_NAMES)
        state = "unknown" if unmeasurable else "absent"
        return WindowFeatures(
            track_id, second, n_frames, 0, 0, empty, empty, None, attention=state,
            perclos=fatigue.get("perclos"), blink_rate=fatigue.get("blink_rate"), blink_ms=fatigue.get("blink_ms"),
        )  # fmt: skip
    matrix = np.asarray(values, dtype=np.float64)
    stats = [_finite_stats(matrix[:, j]) for j in range(matrix.shape[1])]
    expression = None
    if expressions:
        mean = np.asarray(expressions, dtype=np.float64).mean(axis=0)
        expression = tuple(float(p) for p in mean)
        assert len(expression) == len(EXPRESSION_LABELS)
    means = blendshape_means(blendshapes or [])
    return WindowFeatures(
        track_id=track_id,
        second=second,
        n_frames=max(n_frames, len(values)),
        n_face=len(values),
        blinks=blinks,
        mean=tuple(m for m, _ in stats),
        std=tuple(s for _, s in stats),
        expression=expression,
        **attention_summary(attention or Counter({"unknown": len(values)})),
        blendshapes=means,
        smile=smile(expression, means),
        **{"yawn": 0, "long_closures": 0, **fatigue},
    )


def blendshape_means(scores: list[tuple[float | None, ...]]) -> tuple[float | None, ...] | None:
    if not scores:
        return None
    matrix = np.array([[math.nan if v is None else v for v in row] for row in scores], dtype=np.float64)
    return tuple(_finite_stats(matrix[:, j])[0] for j in range(matrix.shape[1]))


def attention_summary(verdicts: Counter) -> dict[str, float | str | None]:
    """on_screen_ratio, eyes_closed_ratio and attention of a window with a face, from the count of
    each frame verdict. A window is judged when at least half its face frames were; otherwise it
    is `unknown` with no ratios."""
    judged = verdicts["on_screen"] + verdicts["looking_away"] + verdicts["eyes_closed"]
    if judged == 0 or judged < verdicts["unknown"]:
        return {"on_screen_ratio": None, "eyes_closed_ratio": None, "attention": "unknown"}
    # max() keeps the first of equal counts, so ties go to the earlier state.
    state = max(("on_screen", "looking_away", "eyes_closed"), key=lambda name: verdicts[name])
    return {
        "on_screen_ratio": verdicts["on_screen"] / judged,
        "eyes_closed_ratio": verdicts["eyes_closed"] / judged,
        "attention": state,
    }


def pooled(means: list[float], stds: list[float], counts: list[int]) -> tuple[float, float]:
    """Exact mean and population std of the union of groups given each group's mean/std/count."""
    n = float(sum(counts))
    if n == 0:
        return math.nan, math.nan
    mean = sum(m * c for m, c in zip(means, counts)) / n
    second_moment = sum((s * s + m * m) * c for m, s, c in zip(means, stds, counts)) / n
    return mean, math.sqrt(max(0.0, second_moment - mean * mean))

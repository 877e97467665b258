"""Class timeline (aggregate with a minimum group size) and attention-drop alerts."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engagement.temporal.records import Alert, ClassPoint, EngagementEstimate


def class_point(second: int, estimates: Iterable[EngagementEstimate], k_min: int = 3) -> ClassPoint:
    """Mean score over present tracks with a score; suppressed (score None) when fewer than k_min.

    `estimates` must already be limited to consenting tracks. Absent/unknown tracks count as
    tracked but never pull the mean down: missing is missing.
    """
    if k_min < 1:
        raise ValueError("k_min must be at least 1")
    estimates = list(estimates)
    scores = [e.score for e in estimates if e.state == "present" and e.score is not None]
    n = len(scores)
    suppressed = n < k_min
    score = None if suppressed else float(sum(scores) / n)
    return ClassPoint(second=second, n_present=n, n_tracked=len(estimates), score=score, suppressed=suppressed)


@dataclass(frozen=True)
class DropRule:
    """When a fall of the class score becomes an `attention_drop` alert.

    The score is first smoothed with a trailing mean over `smooth_s` seconds (at least half of
    them with a score). A drop starts when the smoothed score is `min_drop` below its highest
    value of the last `lookback_s` seconds and counts only if it stays that low for `sustain_s`
    seconds; it ends when the score climbs back above peak - min_drop (or the session ends).
    """

    min_drop: float = 0.12
    sustain_s: int = 120
    smooth_s: int = 60
    lookback_s: int = 600


def smooth(series: Sequence[tuple[int, float | None]], window_s: int) -> list[tuple[int, float]]:
    """Trailing mean over `window_s` seconds of the non-missing values; needs half coverage."""
    out: list[tuple[int, float]] = []
    buf: deque[tuple[int, float]] = deque()
    total = 0.0
    need = max(1, window_s // 2)
    for second, value in series:
        if value is not None:
            buf.append((second, value))
            total += value
        while buf and buf[0][0] <= second - window_s:
            total -= buf.popleft()[1]
        if value is not None and len(buf) >= need:
            out.append((second, total / len(buf)))
    return out


def detect_drops(series: Sequence[tuple[int, float | None]], rule: DropRule | None = None) -> list[Alert]:
    """Sustained falls of a (second, score|None) series, in time order, as alerts."""
    rule = rule or DropRule()
    alerts: list[Alert] = []
    peaks: deque[tuple[int, float]] = deque()  # decreasing values: running max over the lookback
    drop: dict | None = None

    def close(d: dict) -> None:
        if d["last_below"] - d["below_since"] >= rule.sustain_s:
            alerts.append(Alert("attention_drop", d["start"], d["last_below"], round(d["peak"] - d["trough"], 4)))

    for second, value in smooth(series, rule.smooth_s):
        if drop is not None:
            if value <= drop["peak"] - rule.min_drop:
                drop["last_below"] = second
                drop["trough"] = min(drop["trough"], value)
                continue
            close(drop)
            drop = None
            peaks.clear()  # a new drop is measured from after the recovery
        while peaks and peaks[0][0] < second - rule.lookback_s:
            peaks.popleft()
        while peaks and peaks[-1][1] <= value:
            peaks.pop()
        peaks.append((second, value))
        peak_second, peak = peaks[0]
        if peak - value >= rule.min_drop:
            drop = {"start": peak_second, "peak": peak, "trough": value, "below_since": second, "last_below": second}
    if drop is not None:
        close(drop)
    return alerts

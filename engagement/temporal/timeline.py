"""Class timeline (aggregate with a minimum group size) and its alerts.

Per second, over the consenting participants: the share of present participants on screen
(the facilitator's first number), how many cameras are off or faces lost, and the mean
engagement score. Every figure is NULL when fewer than k participants stand behind it, so no
one person can be singled out. Alerts: a sustained fall of the on-screen share below the
session's own recent level (`on_screen_drop`), a sustained rise of the share of cameras off
(`cameras_off_rise`), a sustained fall of the score (`attention_drop`), and tiredness spreading
through the class (`fatigue_rising`: yawns or heavy eyes, FatigueRule).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engagement.core.records import WindowFeatures
from engagement.temporal.outputs import Alert, ClassPoint, EngagementEstimate

# The minimum group size: a class figure needs at least this many participants behind it.
K_MIN = 3
# PERCLOS (share of the last minute with the eyes below the closed level) from which a
# participant counts as having heavy eyes: 0.15, the drowsiness threshold common in driver
# studies since Wierwille et al. (1994); awake people blinking normally sit near 0.02-0.05.
PERCLOS_RAISED = 0.15


def class_point(
    second: int,
    estimates: Iterable[EngagementEstimate],
    k_min: int = K_MIN,
    windows: Iterable[WindowFeatures] = (),
    yawn_starts: int = 0,
) -> ClassPoint:
    """Mean score over present tracks with a score; suppressed (score None) when fewer than k_min.
    With the second's `windows`: the on-screen share and the cameras-off count, each None when
    fewer than k_min participants stand behind it.

    `estimates` and `windows` must already be limited to consenting tracks. Absent/unknown tracks
    count as tracked but never pull the mean down: missing is missing. The on-screen share is the
    mean `on_screen_ratio` of the participants whose attention could be judged this second (the
    share of them on screen at an instant of the second); absent and unmeasurable ones are not in
    it. The cameras-off count is over all tracked participants, so it needs k_min of those.
    `yawn_starts`: how many of the windows' participants began a yawn this second (the caller
    knows their previous second); fatigue figures: `fatigue_figures`.
    """
    if k_min < 1:
        raise ValueError("k_min must be at least 1")
    estimates = list(estimates)
    scores = [e.score for e in estimates if e.state == "present" and e.score is not None]
    n = len(scores)
    suppressed = n < k_min
    score = None if suppressed else float(sum(scores) / n)
    windows = list(windows)
    ratios = [w.on_screen_ratio for w in windows if w.on_screen_ratio is not None]
    return ClassPoint(
        second=second,
        n_present=n,
        n_tracked=len(estimates),
        score=score,
        suppressed=suppressed,
        n_judged=len(ratios),
        on_screen_share=float(sum(ratios) / len(ratios)) if len(ratios) >= k_min else None,
        n_absent=sum(w.attention == "absent" for w in windows) if len(windows) >= k_min else None,
        **fatigue_figures(windows, k_min, yawn_starts),
    )


def _share(values: list[bool], k_min: int) -> float | None:
    return sum(values) / len(values) if len(values) >= k_min else None


def fatigue_figures(windows: list[WindowFeatures], k_min: int, yawn_starts: int) -> dict:
    """n_seen, n_yawns, perclos_share and smile_share of one second. Each needs k_min
    participants measured for it: a face for the yawns, a PERCLOS figure, a smile reading."""
    seen = [w for w in windows if w.n_face > 0]
    return {
        "n_seen": len(seen),
        "n_yawns": yawn_starts if len(seen) >= k_min else None,
        "perclos_share": _share([w.perclos >= PERCLOS_RAISED for w in windows if w.perclos is not None], k_min),
        "smile_share": _share([w.smile == 1 for w in seen if w.smile is not None], k_min),
    }


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


PLATEAU_TOLERANCE = 1e-9


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


@dataclass(frozen=True)
class FatigueRule:
    """When tiredness becomes a `fatigue_rising` alert (docs/attention.md, "Fatigue").

    Each second looks back `window_s` seconds. The class is tiring when its yawns in that window
    come to at least `yawns_per_hour` per participant-hour (and number at least `min_yawns`, so
    one yawn in a small class is not a trend), or when at least `perclos_share` of the
    participants with a PERCLOS figure have heavy eyes (PERCLOS_RAISED) on average over the
    window. Held for `sustain_s` seconds, it is an alert; its magnitude is the larger of the two
    figures over its threshold at the alert's peak (1.0 = just at the threshold).

    3 yawns in 5 minutes among 12 people is 3 per participant-hour; awake adults yawn a few times
    an hour at most, most of them on waking and before sleep.
    """

    window_s: int = 300
    yawns_per_hour: float = 3.0
    min_yawns: int = 2
    perclos_share: float = 0.25
    sustain_s: int = 60


# (second, yawns, yawns per participant-hour, share with heavy eyes)
FatigueRow = tuple[int, int | None, float | None, float | None]


def fatigue_series(points: Sequence[ClassPoint], window_s: int = 300) -> list[FatigueRow]:
    """Per second: (second, yawns, yawns per participant-hour, mean share with heavy eyes) over
    the trailing `window_s` seconds; None where fewer than half of its seconds had a figure
    (each a class figure already held back below k)."""
    out = []
    yawns: deque[tuple[int, int, int]] = deque()  # second, yawns, participants seen
    heavy: deque[tuple[int, float]] = deque()
    need = max(1, window_s // 2)
    for p in points:
        if p.n_yawns is not None:
            yawns.append((p.second, p.n_yawns, p.n_seen))
        if p.perclos_share is not None:
            heavy.append((p.second, p.perclos_share))
        while yawns and yawns[0][0] <= p.second - window_s:
            yawns.popleft()
        while heavy and heavy[0][0] <= p.second - window_s:
            heavy.popleft()
        count = sum(y[1] for y in yawns) if len(yawns) >= need else None
        hours = sum(y[2] for y in yawns) / 3600.0
        rate = count / hours if count is not None and hours > 0 else None
        share = sum(h[1] for h in heavy) / len(heavy) if len(heavy) >= need else None
        out.append((p.second, count, rate, share))
    return out


def fatigue_alerts(points: Sequence[ClassPoint], rule: FatigueRule | None = None) -> list[Alert]:
    """`fatigue_rising` alerts of a class timeline, in time order (FatigueRule)."""
    rule = rule or FatigueRule()
    alerts: list[Alert] = []
    run: list[int] = []
    peak = 0.0

    def close() -> None:
        if run and run[-1] - run[0] >= rule.sustain_s:
            alerts.append(Alert("fatigue_rising", run[0], run[-1], round(peak, 4)))

    for second, count, rate, share in fatigue_series(points, rule.window_s):
        yawning = rate is not None and count is not None and count >= rule.min_yawns and rate >= rule.yawns_per_hour
        heavy = share is not None and share >= rule.perclos_share
        if yawning or heavy:
            run.append(second)
            peak = max(peak, (rate or 0.0) / rule.yawns_per_hour, (share or 0.0) / rule.perclos_share)
            continue
        close()
        run, peak = [], 0.0
    close()
    return alerts


@dataclass(frozen=True)
class AlertRules:
    """The rules of the three alert kinds. The attention signals move faster and further than the
    score (a share of people, 0-1): a fall of 0.2 held for a minute, smoothed over 30 s."""

    score: DropRule = field(default_factory=DropRule)
    on_screen: DropRule = field(default_factory=lambda: DropRule(min_drop=0.2, sustain_s=60, smooth_s=30))
    cameras_off: DropRule = field(default_factory=lambda: DropRule(min_drop=0.2, sustain_s=60, smooth_s=30))
    fatigue: FatigueRule = field(default_factory=lambda: FatigueRule())


def class_alerts(points: Sequence[ClassPoint], rules: AlertRules | None = None) -> list[Alert]:
    """All alerts of a session's class timeline, in time order.

    `cameras_off_rise` watches the share of tracked participants whose camera is off or face lost;
    its magnitude is the rise of that share.
    """
    rules = rules or AlertRules()
    score = [(p.second, p.score) for p in points]
    share = [(p.second, p.on_screen_share) for p in points]
    # A rise of the cameras-off share is a fall of its negative.
    off = [(p.second, None if p.n_absent is None else -p.n_absent / p.n_tracked) for p in points]
    alerts = (
        detect_drops(score, rules.score)
        + detect_drops(share, rules.on_screen, kind="on_screen_drop")
        + detect_drops(off, rules.cameras_off, kind="cameras_off_rise")
        + fatigue_alerts(points, rules.fatigue)
    )
    return sorted(alerts, key=lambda a: (a.start_second, a.kind))


def detect_drops(
    series: Sequence[tuple[int, float | None]], rule: DropRule | None = None, kind: str = "attention_drop"
) -> list[Alert]:
    """Sustained falls of a (second, value|None) series, in time order, as alerts of `kind`."""
    rule = rule or DropRule()
    alerts: list[Alert] = []
    peaks: deque[tuple[int, float]] = deque()  # decreasing values: running max over the lookback
    drop: dict | None = None

    def close(d: dict) -> None:
        if d["last_below"] - d["below_since"] >= rule.sustain_s:
            alerts.append(Alert(kind, d["start"], d["last_below"], round(d["peak"] - d["trough"], 4)))

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
        # A plateau's peak is its last second (rounding in the running mean must not pick an
        # early second of a flat level as "the" peak).
        while peaks and peaks[-1][1] <= value + PLATEAU_TOLERANCE:
            peaks.pop()
        peaks.append((second, value))
        peak_second, peak = peaks[0]
        if peak - value >= rule.min_drop:
            drop = {"start": peak_second, "peak": peak, "trough": value, "below_since": second, "last_below": second}
    if drop is not None:
        close(drop)
    return alerts

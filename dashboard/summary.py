"""The facilitator's answer at a glance: whether the class's attention dropped at all, and if it
did, when it was lowest, during which agenda item, and what to try next time.

A drop is notable only when the measure, smoothed over `SMOOTH_S` (30 s, as for alerts), stayed
at least `DROP_POINTS` (10 percentage points of the on-screen share, 0.10 of the score) below the
session's own median for at least `DROP_MIN_S` (a minute) (`notable`). A class on screen 99 % of the time has a lowest minute too; naming it and advising a
break told the facilitator something that was not there. Without a notable drop the sentence
says so and suggests nothing.

The lowest span is the window of `window_s` seconds (a tenth of the session, between 1 and 10
minutes) whose mean on-screen share (the engagement score for runs without attention signals)
is the lowest; seconds hidden by the minimum group size k do not count. The suggestion follows
three rules, in this order:

1. break      - cameras off / faces lost in the span are 30 % or more (people are stepping away),
                or the span starts 50 minutes or more into the session (fatigue);
2. discussion - the measure stayed below the session's median for 10 minutes or more around the
                span (a long sag within one activity: change the format, let people talk);
3. quiz       - otherwise (a short dip: a quick question or quiz brings attention back).

Fatigue (`fatigue_sentence`) is a sentence of its own, after that one: it speaks only of a
`fatigue_rising` alert (timeline.FatigueRule, docs/attention.md) and says what the class figures
behind it were over the alert's five minutes: how many yawns among how many participants, and the
share with heavy eyes. Live and still going, it speaks of the last five minutes and says that now
is the time for a short break; afterwards, when it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from dashboard.clock import Clock
from engagement.core.i18n import translate
from engagement.temporal.outputs import ClassPoint
from engagement.temporal.timeline import FatigueRule, fatigue_alerts, fatigue_series

BREAK_OFF_SHARE = 0.30
BREAK_AFTER_S = 50 * 60
DISCUSSION_STRETCH_S = 10 * 60
DROP_POINTS = 0.10  # how far below the session median the smoothed measure must fall ...
DROP_MIN_S = 60  # ... and for how long, to count as a drop
SMOOTH_S = 30  # trailing mean first, so one noisy second neither makes nor breaks a drop


@dataclass(frozen=True)
class LowestSpan:
    start: int  # first second of the span
    end: int  # last second of the span
    measure: str  # "on_screen_share" or "score"
    value: float  # the measure's mean over the span
    on_screen_share: float | None
    off_share: float | None
    score: float | None
    stretch_s: int  # how long the measure stayed below the session median around the span
    level: float  # the session median of the measure
    drop_s: int  # the longest time the smoothed measure stayed `DROP_POINTS` or more below `level`


def window_for(length_s: int) -> int:
    return int(min(600, max(60, length_s // 10)))


def lowest_span(tl: pd.DataFrame, bucket: int, length_s: int, measure: str) -> LowestSpan | None:
    """The lowest window of a bucketed class timeline (rows t, on_screen_share, off_share, score)."""
    if tl.empty or measure not in tl or tl[measure].notna().sum() == 0:
        return None
    data = tl.sort_values("t").reset_index(drop=True)
    # The window never outgrows the session: a 30 s session is one window, not "no window".
    size = max(1, min(round(window_for(length_s) / max(1, bucket)), len(data)))
    series = data[measure]
    rolling = series.rolling(size, min_periods=math.ceil(size / 2)).mean()
    if rolling.notna().sum() == 0:
        # Shown seconds too scattered to fill half a window: still a span, never "no second
        # reached k" beside a chart that draws them (`summary.none` means what it says).
        rolling = series.rolling(size, min_periods=1).mean()
    last = int(rolling.idxmin())
    first = max(0, last - size + 1)
    rows = data.iloc[first : last + 1]

    def mean(column: str) -> float | None:
        if column not in rows or rows[column].notna().sum() == 0:
            return None
        return float(rows[column].mean())

    median = float(series.median())
    below = (series < median).to_numpy()
    lo, hi = first, last
    while lo > 0 and below[lo - 1]:
        lo -= 1
    while hi < len(data) - 1 and below[hi + 1]:
        hi += 1
    stretch = int(data["t"].iloc[hi] - data["t"].iloc[lo] + bucket) if below[first : last + 1].any() else 0
    return LowestSpan(
        start=int(data["t"].iloc[first]),
        end=min(int(data["t"].iloc[last]) + bucket - 1, max(length_s - 1, 0)),
        measure=measure,
        value=float(rolling.iloc[last]),
        on_screen_share=mean("on_screen_share"),
        off_share=mean("off_share"),
        score=mean("score"),
        stretch_s=stretch,
        level=median,
        drop_s=_longest_drop(series, median, bucket),
    )


def _longest_drop(series: pd.Series, level: float, bucket: int) -> int:
    """Seconds of the longest run of buckets whose trailing `SMOOTH_S` mean is `DROP_POINTS` or
    more below `level`; a bucket hidden by k breaks the run (missing is not low)."""
    smooth = series.rolling(max(1, round(SMOOTH_S / max(1, bucket))), min_periods=1).mean()
    low = ((smooth <= level - DROP_POINTS + 1e-9) & series.notna()).to_numpy()  # 1e-9: float rounding
    longest = run = 0
    for flag in low:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return longest * max(1, bucket)


def notable(span: LowestSpan) -> bool:
    """Whether the class's measure fell meaningfully below its own level (module docstring)."""
    return span.drop_s >= DROP_MIN_S


def suggestion(span: LowestSpan) -> str:
    """'break', 'discussion' or 'quiz' (the rules in the module docstring)."""
    if (span.off_share is not None and span.off_share >= BREAK_OFF_SHARE) or span.start >= BREAK_AFTER_S:
        return "break"
    if span.stretch_s >= DISCUSSION_STRETCH_S:
        return "discussion"
    return "quiz"


def sentence(span: LowestSpan | None, item: str | None, clock: Clock, lang: str) -> str:
    """The summary line in `lang`, suggestion included (the page shows it first)."""
    if span is None:
        return translate("summary.none", lang)

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value:.0%}"

    if not notable(span):
        key = "summary.no_drop_on_screen" if span.measure == "on_screen_share" else "summary.no_drop_score"
        level = pct(span.level) if span.measure == "on_screen_share" else f"{span.level:.2f}"
        return translate(key, lang, level=level)
    during = translate("summary.during", lang, title=item) if item else ""
    key = "summary.lowest_on_screen" if span.measure == "on_screen_share" else "summary.lowest_score"
    score = "–" if span.score is None else f"{span.score:.2f}"
    line = translate(key, lang, span=clock.span(span.start, span.end), during=during,
                     on_screen=pct(span.on_screen_share), off=pct(span.off_share), score=score)
    advice = translate(f"summary.suggest.{suggestion(span)}", lang)
    return f"{line} {advice}"


def fatigue_sentence(points: list[ClassPoint], clock: Clock, lang: str, *, live: bool,
                     rule: FatigueRule | None = None) -> str | None:
    """The fatigue line for the latest `fatigue_rising` alert, or None without one. `live`: the
    analysis is still running, so an alert reaching the last point is happening now."""
    rule = rule or FatigueRule()
    alerts = fatigue_alerts(points, rule)
    if not alerts:
        return None
    alert = alerts[-1]
    series = {second: (count, share) for second, count, _, share in fatigue_series(points, rule.window_s)}
    count, share = series[alert.end_second]
    window = [p.n_seen for p in points if alert.end_second - rule.window_s < p.second <= alert.end_second]
    people = round(sum(window) / len(window)) if window else 0
    heavy = ""
    if share is not None and share >= rule.perclos_share:
        heavy = translate("summary.fatigue_heavy", lang, share=f"{share:.0%}")
    values = {"yawns": count or 0, "people": people, "heavy": heavy, "minutes": rule.window_s // 60}
    if live and alert.end_second >= points[-1].second:
        return translate("summary.fatigue_now", lang, **values)
    return translate("summary.fatigue_then", lang, span=clock.span(alert.start_second, alert.end_second), **values)


def fatigue_frame(points: list[ClassPoint], bucket: int, rule: FatigueRule | None = None) -> pd.DataFrame:
    """The fatigue lane's rows (t, yawn_rate, heavy_share, smile_share), one per `bucket`
    seconds: the trailing five-minute figures the alert reads, at each bucket's last second."""
    rule = rule or FatigueRule()
    smiles = {p.second: p.smile_share for p in points}
    rows = [
        {"t": (second // bucket) * bucket, "yawn_rate": rate, "heavy_share": share, "smile_share": smiles[second]}
        for second, _, rate, share in fatigue_series(points, rule.window_s)
    ]
    columns = ["t", "yawn_rate", "heavy_share", "smile_share"]
    frame = pd.DataFrame(rows, columns=columns).astype({"yawn_rate": float, "heavy_share": float, "smile_share": float})
    return frame.groupby("t", as_index=False).last() if not frame.empty else frame

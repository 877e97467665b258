"""The facilitator's answer at a glance: when the class's attention was lowest, during which
agenda item, and what to try next time.

The lowest span is the window of `window_s` seconds (a tenth of the session, between 1 and 10
minutes) whose mean on-screen share (the engagement score for runs without attention signals)
is the lowest; seconds hidden by the minimum group size k do not count. The suggestion follows
three rules, in this order:

1. break      - cameras off / faces lost in the span are 30 % or more (people are stepping away),
                or the span starts 50 minutes or more into the session (fatigue);
2. discussion - the measure stayed below the session's median for 10 minutes or more around the
                span (a long sag within one activity: change the format, let people talk);
3. quiz       - otherwise (a short dip: a quick question or quiz brings attention back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from dashboard.clock import Clock
from engagement.core.i18n import translate

BREAK_OFF_SHARE = 0.30
BREAK_AFTER_S = 50 * 60
DISCUSSION_STRETCH_S = 10 * 60


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


def window_for(length_s: int) -> int:
    return int(min(600, max(60, length_s // 10)))


def lowest_span(tl: pd.DataFrame, bucket: int, length_s: int, measure: str) -> LowestSpan | None:
    """The lowest window of a bucketed class timeline (rows t, on_screen_share, off_share, score)."""
    if tl.empty or measure not in tl or tl[measure].notna().sum() == 0:
        return None
    data = tl.sort_values("t").reset_index(drop=True)
    size = max(1, round(window_for(length_s) / max(1, bucket)))
    series = data[measure]
    rolling = series.rolling(size, min_periods=math.ceil(size / 2)).mean()
    if rolling.notna().sum() == 0:
        return None
    last = int(rolling.idxmin())
    first = max(0, last - size + 1)
    rows = data.iloc[first : last + 1]

    def mean(column: str) -> float | None:
        if column not in rows or rows[column].notna().sum() == 0:
            return None
        return float(rows[column].mean())

    median = series.median()
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
    )


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

    during = translate("summary.during", lang, title=item) if item else ""
    key = "summary.lowest_on_screen" if span.measure == "on_screen_share" else "summary.lowest_score"
    score = "–" if span.score is None else f"{span.score:.2f}"
    line = translate(key, lang, span=clock.span(span.start, span.end), during=during,
                     on_screen=pct(span.on_screen_share), off=pct(span.off_share), score=score)
    advice = translate(f"summary.suggest.{suggestion(span)}", lang)
    return f"{line} {advice}"

"""Altair charts of the dashboard. Every axis title and legend goes through the catalogue (`t`).

Time on the x axis is in minutes from the session start: facilitators think in "twenty minutes
in", not in seconds. Data arrive already aggregated from `dashboard.queries`.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.i18n import t

SCORE_SCALE = alt.Scale(domain=[0, 1])
LEVEL_ORDER = ("level3", "level2", "level1", "level0", "unknown", "absent")
LEVEL_COLOURS = ("#1a9850", "#91cf60", "#fdae61", "#d73027", "#bdbdbd", "#737373")


def _minutes(df: pd.DataFrame, col: str, out: str) -> pd.DataFrame:
    df = df.copy()
    df[out] = df[col].astype(float) / 60.0
    return df


def timeline(tl: pd.DataFrame, agenda: pd.DataFrame, alerts: pd.DataFrame, length_s: int) -> alt.LayerChart:
    """Class score over time with agenda segments as bands and drop alerts as red spans."""
    x_title, y_title = t("chart.minutes"), t("chart.class_score")
    data = _minutes(tl, "t", "minute")
    layers = []
    if not agenda.empty:
        seg = agenda.copy()
        seg["end_second"] = seg["end_second"].fillna(length_s).astype(float)
        seg = _minutes(_minutes(seg, "start_second", "x0"), "end_second", "x1")
        seg["band"] = [i % 2 for i in range(len(seg))]
        bands = (
            alt.Chart(seg)
            .mark_rect(opacity=0.35)
            .encode(
                x=alt.X("x0:Q", title=x_title),
                x2="x1:Q",
                color=alt.Color("band:N", scale=alt.Scale(range=["#e8eef7", "#f7f3e8"]), legend=None),
                tooltip=[alt.Tooltip("title:N", title=t("chart.agenda_item"))],
            )
        )
        labels = (
            alt.Chart(seg)
            .mark_text(align="left", baseline="top", dx=3, dy=3, fontSize=11, color="#4a5568")
            .encode(x="x0:Q", y=alt.value(0), text="title:N")
        )
        layers += [bands, labels]
    if not alerts.empty:
        spans = _minutes(_minutes(alerts, "start_second", "x0"), "end_second", "x1")
        layers.append(
            alt.Chart(spans)
            .mark_rect(color="#d73027", opacity=0.18)
            .encode(
                x="x0:Q",
                x2="x1:Q",
                tooltip=[
                    alt.Tooltip("from:N", title=t("alerts.from")),
                    alt.Tooltip("to:N", title=t("alerts.to")),
                    alt.Tooltip("magnitude:Q", title=t("alerts.magnitude"), format=".2f"),
                ],
            )
            .transform_calculate(
                **{
                    "from": "floor(datum.start_second/60) + ':' + (datum.start_second % 60 < 10 ? '0' : '') + (datum.start_second % 60)",
                    "to": "floor(datum.end_second/60) + ':' + (datum.end_second % 60 < 10 ? '0' : '') + (datum.end_second % 60)",
                }
            )
        )
    line = (
        alt.Chart(data)
        .mark_line(color="#2b6cb0", strokeWidth=2)
        .encode(
            x=alt.X("minute:Q", title=x_title),
            y=alt.Y("score:Q", title=y_title, scale=SCORE_SCALE),
            tooltip=[
                alt.Tooltip("minute:Q", title=t("chart.minutes"), format=".1f"),
                alt.Tooltip("score:Q", title=y_title, format=".2f"),
                alt.Tooltip("n_present:Q", title=t("chart.present"), format=".0f"),
            ],
        )
    )
    layers.append(line)
    return alt.layer(*layers).properties(height=320).interactive(bind_y=False)


def presence(tl: pd.DataFrame) -> alt.Chart:
    """Share of tracked participants present (face visible) over time."""
    data = _minutes(tl, "t", "minute")
    return (
        alt.Chart(data)
        .mark_area(color="#68d391", opacity=0.6, line={"color": "#2f855a"})
        .encode(
            x=alt.X("minute:Q", title=t("chart.minutes")),
            y=alt.Y("present_share:Q", title=t("chart.present_share"), axis=alt.Axis(format="%"), scale=SCORE_SCALE),
            tooltip=[
                alt.Tooltip("minute:Q", title=t("chart.minutes"), format=".1f"),
                alt.Tooltip("present_share:Q", title=t("chart.present_share"), format=".0%"),
            ],
        )
        .properties(height=160)
    )


def distribution(dist: pd.DataFrame) -> alt.Chart:
    """Share of participant-seconds per attention level (plus absent/unknown)."""
    data = dist.copy()
    data["label"] = [t(f"level.{c}") for c in data["category"]]
    order = [t(f"level.{c}") for c in LEVEL_ORDER]
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort=order, title=None),
            x=alt.X("share:Q", title=t("chart.share_of_time"), axis=alt.Axis(format="%")),
            color=alt.Color("label:N", scale=alt.Scale(domain=order, range=list(LEVEL_COLOURS)), legend=None),
            tooltip=[
                alt.Tooltip("label:N", title=t("chart.level")),
                alt.Tooltip("share:Q", title=t("chart.share_of_time"), format=".1%"),
            ],
        )
        .properties(height=180)
    )


def lanes(df: pd.DataFrame) -> alt.Chart:
    """One row per anonymous track, colour = mean score per time bucket (gaps = absent)."""
    data = _minutes(df, "t", "minute")
    return (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=alt.X("minute:O", title=t("chart.minutes"), axis=alt.Axis(labelOverlap=True)),
            y=alt.Y("label:N", title=t("chart.participant_track"), sort=None),
            color=alt.Color("score:Q", title=t("chart.score"), scale=alt.Scale(scheme="redyellowgreen", domain=[0, 1])),
            tooltip=[
                alt.Tooltip("label:N", title=t("chart.participant_track")),
                alt.Tooltip("minute:Q", title=t("chart.minutes"), format=".0f"),
                alt.Tooltip("score:Q", title=t("chart.score"), format=".2f"),
            ],
        )
        .properties(height=max(120, 14 * data["label"].nunique()))
    )


def trends(df: pd.DataFrame) -> alt.Chart:
    """Mean class score per session over calendar time, one colour per cohort."""
    data = df.copy()
    data["cohort"] = data["cohort"].fillna(t("common.none"))
    base = alt.Chart(data).encode(
        x=alt.X("started_at:T", title=t("chart.date")),
        y=alt.Y("score:Q", title=t("chart.mean_score"), scale=SCORE_SCALE),
        color=alt.Color("cohort:N", title=t("chart.cohort")),
    )
    return (
        base.mark_line(opacity=0.5)
        + base.mark_circle(size=60).encode(
            tooltip=[
                alt.Tooltip("name:N", title=t("chart.session")),
                alt.Tooltip("started_at:T", title=t("chart.date")),
                alt.Tooltip("score:Q", title=t("chart.mean_score"), format=".2f"),
                alt.Tooltip("present_share:Q", title=t("chart.present_share"), format=".0%"),
            ]
        )
    ).properties(height=300)


def histogram(df: pd.DataFrame) -> alt.Chart:
    """Seconds of class score per score bin."""
    return (
        alt.Chart(df)
        .mark_bar(color="#4c78a8")
        .encode(
            x=alt.X("low:Q", bin="binned", title=t("chart.class_score"), scale=SCORE_SCALE),
            x2="high:Q",
            y=alt.Y("n:Q", title=t("chart.seconds")),
            tooltip=[alt.Tooltip("low:Q", title=t("chart.class_score"), format=".2f"), alt.Tooltip("n:Q", title=t("chart.seconds"))],
        )
        .properties(height=220)
    )


def agenda_bars(df: pd.DataFrame) -> alt.Chart:
    """Mean class score per agenda item."""
    return (
        alt.Chart(df)
        .mark_bar(color="#2b6cb0")
        .encode(
            y=alt.Y("title:N", title=None, sort="-x", axis=alt.Axis(labelOverlap=False, labelLimit=220)),
            x=alt.X("score:Q", title=t("chart.mean_score"), scale=SCORE_SCALE),
            tooltip=[
                alt.Tooltip("title:N", title=t("chart.agenda_item")),
                alt.Tooltip("score:Q", title=t("chart.mean_score"), format=".2f"),
            ],
        )
        .properties(height=max(140, 34 * len(df)))
    )

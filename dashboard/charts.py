"""Altair charts of the dashboard. Every axis title and legend goes through the catalogue (`t`).

Time on the x axis is wall-clock time when the session's start is known, else time since the
start as m:ss (`dashboard.clock`); dates are day-month with Indonesian (or English) month
names. Shares of people are percentages everywhere. Data arrive aggregated from
`dashboard.queries`; figures hidden by the minimum group size k arrive as gaps.
"""

from __future__ import annotations

import json
from datetime import timezone

import altair as alt
import pandas as pd

from dashboard.clock import Clock
from dashboard.page_text import t

SCORE_SCALE = alt.Scale(domain=[0, 1])
ON_SCREEN = "#1F6F78"  # the theme's primary: the facilitator's first number
CAMERAS_OFF = "#8A6D3B"
SCORE = "#4C6A92"
ALERT = "#C0392B"
# Agenda items are neutral grey bands with a number on top (the titles are listed under the
# chart: on a phone six titles on one axis covered each other); alerts are the only red, drawn as
# a dashed outline with a solid strip along the bottom and a legend entry (pink agenda bands and
# pale red alert areas were told apart by nobody).
AGENDA_BANDS = ["#EEF0F1", "#DDE1E3"]
ALERT_STRIP = 0.04  # of the y axis (0-1 for shares and the score)
LEGEND_PX = 30  # Streamlit's height is the whole chart's: the legend's row comes on top of it
# Sessions side by side (at most four): four hues apart, not neighbouring blues.
COMPARE_COLOURS = ["#1F6F78", "#E0A458", "#A2574F", "#7B5EA7"]
STATE_ORDER = ("on_screen", "looking_away", "eyes_closed", "absent", "unknown")
STATE_COLOURS = ("#1F6F78", "#E0A458", "#A2574F", "#8C969B", "#D5DBDD")
LEVEL_ORDER = ("level3", "level2", "level1", "level0", "unknown", "absent")
LEVEL_COLOURS = ("#1a9850", "#91cf60", "#fdae61", "#d73027", "#bdbdbd", "#737373")


def _timed(df: pd.DataFrame, clock: Clock, col: str = "t", out: str = "x", bucket: int | None = None) -> pd.DataFrame:
    """Add the x datetime (and x2 = end of the bucket) and a text label of each point's time."""
    data = df.copy()
    data[out] = clock.axis_values(data[col])
    if bucket is not None:
        data[out + "2"] = clock.axis_values(data[col] + bucket)
    data["when"] = [clock.label(v) for v in data[col]]
    return data


def _x(clock: Clock, field: str = "x", title: bool = True) -> alt.X:
    # The whole session, also while a live run has filled only part of it.
    ends = clock.axis_values(pd.Series([clock.first_s, max(clock.length_s, clock.first_s + 1)]))
    domain = [_datetime(v) for v in ends]
    return alt.X(
        f"{field}:T",
        title=(t("chart.clock") if clock.is_clock else t("chart.elapsed")) if title else None,
        scale=alt.Scale(type="utc", domain=domain),
        axis=alt.Axis(format=clock.axis_format(), labelOverlap=True, titlePadding=8),
    )


def _datetime(value: pd.Timestamp) -> alt.DateTime:
    """A time for a scale domain or tick list. Vega-Lite reads DateTime objects reliably there;
    plain epoch milliseconds were drawn as a single point in the browser."""
    return alt.DateTime(
        year=value.year, month=value.month, date=value.day, hours=value.hour, minutes=value.minute,
        seconds=value.second, utc=True,
    )


def agenda_numbers(agenda: pd.DataFrame) -> list[str]:
    """The label of each agenda item on the timeline, in start order: its number."""
    return [str(i + 1) for i in range(len(agenda))]


def agenda_key(agenda: pd.DataFrame) -> str:
    """The numbers' key, shown under the chart: "1 Pembukaan · 2 Materi inti"."""
    return " · ".join(_numbered(agenda))


def _numbered(agenda: pd.DataFrame) -> list[str]:
    return [f"{n} {title}" for n, title in zip(agenda_numbers(agenda), agenda["title"])]


def _agenda_layers(agenda: pd.DataFrame, clock: Clock) -> list:
    if agenda.empty:
        return []
    seg = agenda.copy()
    seg["end_second"] = seg["end_second"].fillna(clock.length_s).astype(float)
    seg = _timed(_timed(seg, clock, "start_second", "x0"), clock, "end_second", "x1")
    seg["band"] = [i % 2 for i in range(len(seg))]
    seg["number"] = agenda_numbers(seg)
    seg["item"] = _numbered(seg)
    bands = (
        alt.Chart(seg)
        .mark_rect()
        .encode(
            x=_x(clock, "x0"),
            x2="x1:T",
            color=alt.Color("band:N", scale=alt.Scale(range=AGENDA_BANDS), legend=None),
            tooltip=[alt.Tooltip("item:N", title=t("chart.agenda_item"))],
        )
    )
    labels = (
        alt.Chart(seg)
        .mark_text(align="left", baseline="top", dx=3, dy=3, fontSize=11, fontWeight="bold", color="#3B4A50")
        .encode(x="x0:T", y=alt.value(0), text="number:N")
    )
    return [bands, labels]


def _alert_layer(alerts: pd.DataFrame, clock: Clock) -> list:
    if alerts.empty:
        return []
    spans = alerts.copy()
    spans["kind_label"] = [t(f"alert.{k}") for k in spans["kind"]]
    spans["from"] = [clock.label(s) for s in spans["start_second"]]
    spans["to"] = [clock.label(e) for e in spans["end_second"]]
    spans["legend"] = t("chart.alert_legend")
    spans = _timed(_timed(spans, clock, "start_second", "x0"), clock, "end_second", "x1")
    tooltip = [
        alt.Tooltip("kind_label:N", title=t("alerts.kind")),
        alt.Tooltip("from:N", title=t("alerts.from")),
        alt.Tooltip("to:N", title=t("alerts.to")),
    ]
    area = (
        alt.Chart(spans)
        .mark_rect(color=ALERT, opacity=0.1, stroke=ALERT, strokeDash=[4, 3], strokeWidth=1)
        .encode(x=_x(clock, "x0"), x2="x1:T", tooltip=tooltip)
    )
    strip = (
        alt.Chart(spans)
        .mark_rect()
        .encode(
            x=_x(clock, "x0"),
            x2="x1:T",
            y=alt.datum(0),
            y2=alt.datum(ALERT_STRIP),
            color=alt.Color("legend:N", scale=alt.Scale(range=[ALERT]), legend=alt.Legend(orient="bottom", title=None)),
            tooltip=tooltip,
        )
    )
    return [area, strip]


def timeline(
    tl: pd.DataFrame,
    clock: Clock,
    field: str,
    *,
    agenda: pd.DataFrame | None = None,
    alerts: pd.DataFrame | None = None,
    band: pd.DataFrame | None = None,
    height: int = 280,
) -> alt.LayerChart:
    """One class measure over time: `on_screen_share` (percent, the headline) or `score` (0-1,
    with its 95 % band), agenda items as numbered grey bands and alerts as red spans behind it."""
    percent = field != "score"
    y_title = t("chart.on_screen_share") if field == "on_screen_share" else t("chart.class_score")
    colour = ON_SCREEN if percent else SCORE
    fmt = ".0%" if percent else ".2f"
    data = _timed(tl, clock)
    bands = _agenda_layers(agenda if agenda is not None else pd.DataFrame(), clock)
    # The numbers over the alert areas, so an alert never hides an item's number.
    marked = _alert_layer(alerts if alerts is not None else pd.DataFrame(), clock)
    layers = bands[:1] + marked + bands[1:]
    y_axis = alt.Axis(format="%") if percent else alt.Axis()
    if band is not None and not band.empty:
        # On the timeline's own points, so seconds hidden by k are gaps, not bridged by the area.
        shaded = _timed(tl[["t"]].merge(band, on="t", how="left"), clock)
        layers.append(
            alt.Chart(shaded)
            .mark_area(color=colour, opacity=0.2)
            .encode(
                x=_x(clock),
                y=alt.Y("lo:Q", title=y_title, scale=SCORE_SCALE),
                y2="hi:Q",
                tooltip=[
                    alt.Tooltip("when:N", title=t("chart.time")),
                    alt.Tooltip("lo:Q", title=t("chart.band_low"), format=".2f"),
                    alt.Tooltip("hi:Q", title=t("chart.band_high"), format=".2f"),
                    alt.Tooltip("people:Q", title=t("chart.people"), format=".0f"),
                ],
            )
        )
    layers.append(
        alt.Chart(data)
        .mark_line(color=colour, strokeWidth=2)
        .encode(
            x=_x(clock),
            y=alt.Y(f"{field}:Q", title=y_title, scale=SCORE_SCALE, axis=y_axis),
            tooltip=[
                alt.Tooltip("when:N", title=t("chart.time")),
                alt.Tooltip(f"{field}:Q", title=y_title, format=fmt),
            ],
        )
    )
    # Colour scales apart: shared, the alert legend's one colour came from the agenda's greys.
    return alt.layer(*layers).resolve_scale(color="independent").properties(height=height + (LEGEND_PX if marked else 0))


def presence(tl: pd.DataFrame, clock: Clock) -> alt.Chart:
    """Share of tracked participants whose camera is off or face lost, over time."""
    data = _timed(tl, clock)
    return (
        alt.Chart(data)
        .mark_area(color=CAMERAS_OFF, opacity=0.45, line={"color": CAMERAS_OFF})
        .encode(
            x=_x(clock),
            y=alt.Y("off_share:Q", title=t("chart.cameras_off"), axis=alt.Axis(format="%"), scale=SCORE_SCALE),
            tooltip=[
                alt.Tooltip("when:N", title=t("chart.time")),
                alt.Tooltip("off_share:Q", title=t("chart.cameras_off"), format=".0%"),
            ],
        )
        .properties(height=200)
    )


FATIGUE = "#7B5EA7"


def fatigue_lane(df: pd.DataFrame, clock: Clock, yawn_alert: float, heavy_alert: float) -> alt.VConcatChart:
    """Yawns per participant-hour (trailing 5 min) above the share of participants with heavy
    eyes (and smiling, where measured), each with its alert threshold dashed."""
    data = _timed(df, clock)

    def lane(field: str, title: str, fmt: str, threshold: float | None, scale=None) -> alt.LayerChart:
        axis = alt.Axis(format="%") if fmt == ".0%" else alt.Axis()
        line = (
            alt.Chart(data)
            .mark_line(color=FATIGUE, point=False)
            .encode(
                x=_x(clock, title=False),
                y=alt.Y(f"{field}:Q", title=title, axis=axis, scale=scale or alt.Scale(zero=True)),
                tooltip=[
                    alt.Tooltip("when:N", title=t("chart.time")),
                    alt.Tooltip(f"{field}:Q", title=title, format=fmt),
                ],
            )
        )
        layers = [line]
        if threshold is not None:
            rule = alt.Chart(pd.DataFrame({"y": [threshold]})).mark_rule(color=ALERT, strokeDash=[4, 4])
            layers.append(rule.encode(y="y:Q"))
        return alt.layer(*layers).properties(height=110)

    lanes = [lane("yawn_rate", t("chart.yawn_rate"), ".1f", yawn_alert),
             lane("heavy_share", t("chart.heavy_eyes"), ".0%", heavy_alert, SCORE_SCALE)]
    if data["smile_share"].notna().any():  # only where the profile measures expressions
        lanes.append(lane("smile_share", t("chart.smiling"), ".0%", None, SCORE_SCALE))
    return alt.vconcat(*lanes)


def _translated(values, prefix: str, order) -> tuple[list[str], list[str]]:
    """The shown label of each value, and of each category in legend order."""
    return [t(f"{prefix}.{v}") for v in values], [t(f"{prefix}.{c}") for c in order]


def distribution(dist: pd.DataFrame, kind: str) -> alt.Chart:
    """Share of participant-seconds per attention state (`kind` "state") or engagement level."""
    order, colours, prefix = (STATE_ORDER, STATE_COLOURS, "state") if kind == "state" else (LEVEL_ORDER, LEVEL_COLOURS, "level")
    data = dist.copy()
    data["label"], labels = _translated(data["category"], prefix, order)
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort=labels, title=None, axis=alt.Axis(labelLimit=220)),
            # The whole 0-100 % in quarters: a scale fitted to the longest bar ticked every 2 % and
            # made a 10 % state look like most of the time.
            x=alt.X("share:Q", title=t("chart.share_of_time"), scale=alt.Scale(domain=[0, 1]),
                    axis=alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1])),
            color=alt.Color("label:N", scale=alt.Scale(domain=labels, range=list(colours)), legend=None),
            tooltip=[
                alt.Tooltip("label:N", title=t("chart.state")),
                alt.Tooltip("share:Q", title=t("chart.share_of_time"), format=".1%"),
            ],
        )
        .properties(height=180)
    )


def lanes(df: pd.DataFrame, clock: Clock, bucket: int) -> alt.Chart:
    """One row per anonymous track, one bar per `bucket` seconds coloured by attention state."""
    tracks = list(dict.fromkeys(df["label"]))
    data = _timed(df.dropna(subset=["t"]), clock, bucket=bucket)
    data["state_label"], labels = _translated(data["state"], "state", STATE_ORDER)
    return (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=_x(clock),
            x2="x2:T",
            # Every track keeps its row, also one without a single analysed second.
            y=alt.Y("label:N", title=t("chart.participant_track"), sort=tracks, scale=alt.Scale(domain=tracks),
                    axis=alt.Axis(titlePadding=10, labelLimit=120)),
            color=alt.Color("state_label:N", title=t("chart.state"), scale=alt.Scale(domain=labels, range=list(STATE_COLOURS)),
                            legend=alt.Legend(orient="bottom")),
            tooltip=[
                alt.Tooltip("label:N", title=t("chart.participant_track")),
                alt.Tooltip("when:N", title=t("chart.time")),
                alt.Tooltip("state_label:N", title=t("chart.state")),
            ],
        )
        .properties(height=max(160, 26 * len(tracks)))
    )


# -- researcher ---------------------------------------------------------------------------------


def _months() -> list[str]:
    return t("date.months").split(",")


def _date_axis(days: pd.Series, title_key: str = "chart.date") -> alt.X:
    """Calendar dates as '6 Jan' in the page's language, ticks on whole days only: the days of
    the sessions (`days`, their start times) when they are few, else about ten spread evenly."""
    months = json.dumps(_months())
    unique = sorted(pd.Series(days).dropna().dt.normalize().unique())
    # Whole days from the first session's to the last one's, so every session day has its label.
    domain = [_datetime(pd.Timestamp(unique[0])), _datetime(pd.Timestamp(unique[-1]) + pd.Timedelta(days=1))]
    if len(unique) > MAX_DAY_TICKS:
        step = (len(unique) - 1) / (MAX_DAY_TICKS - 1)
        unique = [unique[round(i * step)] for i in range(MAX_DAY_TICKS)]
    # At noon: a day's label sits under that day's sessions, never at a midnight off the axis.
    ticks = [_datetime(pd.Timestamp(d) + pd.Timedelta(hours=12)) for d in unique]
    return alt.X(
        "day:T",
        title=t(title_key),
        scale=alt.Scale(type="utc", domain=domain),
        axis=alt.Axis(
            values=ticks,
            labelExpr=f"utcdate(datum.value) + ' ' + {months}[utcmonth(datum.value)]",
            tickMinStep=86_400_000,  # one day: sessions days apart never get hourly ticks
            labelOverlap=True,
        ),
    )


MAX_DAY_TICKS = 10


def dated(df: pd.DataFrame, column: str = "local_start") -> pd.DataFrame:
    """Add `day` (the local start time labelled UTC, for `_date_axis`) and its text `day_text`."""
    data = df.copy()
    starts = pd.to_datetime(data[column])
    data["day"] = starts.dt.tz_localize("UTC") if starts.dt.tz is None else starts
    months = _months()
    data["day_text"] = [f"{d.day} {months[d.month - 1]} {d.year} {d:%H:%M}" for d in starts]
    return data


def _short_title(field: str) -> str:
    return t("kpi.on_screen") if field == "on_screen_share" else t("kpi.mean_score")


def _measure(field: str) -> tuple[str, alt.Axis, str]:
    """Title, axis and number format of a researcher measure (on-screen share in %, score 0–1)."""
    percent = field != "score"
    return _short_title(field), alt.Axis(format="%") if percent else alt.Axis(), ".0%" if percent else ".2f"


def _value_tooltips(field: str, title: str, fmt: str) -> list:
    """The measure and its 95 % interval, for a tooltip."""
    return [
        alt.Tooltip(f"{field}:Q", title=title, format=fmt),
        alt.Tooltip(f"{field}_lo:Q", title=t("chart.band_low"), format=fmt),
        alt.Tooltip(f"{field}_hi:Q", title=t("chart.band_high"), format=fmt),
    ]


def trends(df: pd.DataFrame, field: str) -> alt.LayerChart:
    """One point per session over calendar days with its 95 % interval; colour = cohort."""
    title, axis, fmt = _measure(field)
    data = dated(df)
    data["cohort_label"] = [c if isinstance(c, str) else t("common.none") for c in data["cohort"]]
    base = alt.Chart(data).encode(x=_date_axis(data["day"]), color=alt.Color("cohort_label:N", title=t("chart.cohort")))
    rules = base.mark_rule(opacity=0.6).encode(y=alt.Y(f"{field}_lo:Q", title=title, scale=SCORE_SCALE, axis=axis), y2=f"{field}_hi:Q")
    points = base.mark_circle(size=60, opacity=0.9).encode(
        y=alt.Y(f"{field}:Q", title=title, scale=SCORE_SCALE, axis=axis),
        tooltip=[
            alt.Tooltip("name:N", title=t("chart.session")),
            alt.Tooltip("day_text:N", title=t("chart.date")),
            *_value_tooltips(field, title, fmt),
            alt.Tooltip("people:Q", title=t("chart.people"), format=".0f"),
            alt.Tooltip("off_share:Q", title=t("chart.cameras_off"), format=".0%"),
        ],
    )
    return alt.layer(rules, points).properties(height=300)


def agenda_trends(df: pd.DataFrame, field: str) -> alt.LayerChart:
    """Per agenda item (colour) its value in each session over calendar days, with 95 % bands."""
    title, axis, fmt = _measure(field)
    data = dated(df)
    base = alt.Chart(data).encode(
        x=_date_axis(data["day"]),
        color=alt.Color("title:N", title=t("chart.agenda_item"), legend=alt.Legend(orient="bottom", labelLimit=240)),
    )
    band = base.mark_area(opacity=0.12).encode(y=alt.Y(f"{field}_lo:Q", title=title, scale=SCORE_SCALE, axis=axis), y2=f"{field}_hi:Q")
    line = base.mark_line(point=True).encode(
        y=alt.Y(f"{field}:Q", title=title, scale=SCORE_SCALE, axis=axis),
        tooltip=[
            alt.Tooltip("title:N", title=t("chart.agenda_item")),
            alt.Tooltip("name:N", title=t("chart.session")),
            alt.Tooltip("day_text:N", title=t("chart.date")),
            *_value_tooltips(field, title, fmt),
            alt.Tooltip("people:Q", title=t("chart.people"), format=".0f"),
        ],
    )
    return alt.layer(band, line).properties(height=300)


def compare(df: pd.DataFrame, field: str, length_s: int) -> alt.Chart:
    """Sessions side by side on one elapsed-time axis (m:ss / h:mm:ss), one colour each."""
    title, axis, fmt = _measure(field)
    clock = Clock(None, timezone.utc, length_s)  # elapsed time: sessions started at different hours
    data = _timed(df, clock)
    return (
        alt.Chart(data)
        .mark_line(strokeWidth=1.8)
        .encode(
            x=_x(clock),
            y=alt.Y(f"{field}:Q", title=title, scale=SCORE_SCALE, axis=axis),
            color=alt.Color("name:N", title=t("chart.session"), scale=alt.Scale(range=COMPARE_COLOURS),
                            legend=alt.Legend(orient="bottom", labelLimit=0, columns=2)),  # names never cut off
            tooltip=[
                alt.Tooltip("name:N", title=t("chart.session")),
                alt.Tooltip("when:N", title=t("chart.time")),
                alt.Tooltip(f"{field}:Q", title=title, format=fmt),
            ],
        )
        .properties(height=300)
    )


def histogram(df: pd.DataFrame) -> alt.Chart:
    """Seconds of class score per score bin."""
    return (
        alt.Chart(df)
        .mark_bar(color=SCORE)
        .encode(
            x=alt.X("low:Q", bin="binned", title=t("chart.class_score"), scale=SCORE_SCALE),
            x2="high:Q",
            y=alt.Y("n:Q", title=t("chart.seconds")),
            tooltip=[alt.Tooltip("low:Q", title=t("chart.class_score"), format=".2f"),
                     alt.Tooltip("n:Q", title=t("chart.seconds"), format=".0f")],
        )
        .properties(height=220)
    )


def agenda_bars(df: pd.DataFrame, field: str) -> alt.LayerChart:
    """Per agenda title the mean over sessions with its 95 % interval across sessions."""
    percent = field != "score"
    title, axis, fmt = _measure(field)
    base = alt.Chart(df).encode(y=alt.Y("title:N", title=None, sort="-x", axis=alt.Axis(labelOverlap=False, labelLimit=220)))
    bars = base.mark_bar(color=ON_SCREEN if percent else SCORE, opacity=0.85).encode(
        x=alt.X(f"{field}:Q", title=title, scale=SCORE_SCALE, axis=axis),
        tooltip=[
            alt.Tooltip("title:N", title=t("chart.agenda_item")),
            *_value_tooltips(field, title, fmt),
            alt.Tooltip("sessions:Q", title=t("kpi.sessions"), format=".0f"),
            alt.Tooltip("people:Q", title=t("chart.people"), format=".0f"),
        ],
    )
    whiskers = base.mark_rule(color="#1D2A2E").encode(x=f"{field}_lo:Q", x2=f"{field}_hi:Q")
    return alt.layer(bars, whiskers).properties(height=max(140, 34 * len(df)))

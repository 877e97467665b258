"""Researcher page: trends across sessions, distributions, audited downloads with schema and manifest."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from dashboard import charts, queries, services, ui
from dashboard.i18n import t

who = ui.require("researcher")
store = ui.store()
st.title(t("researcher.title"))

# Cross-session aggregates change only when an analysis finishes: cache briefly per filter set.
CACHE_S = 60


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def _options(url: str) -> dict:
    return queries.filter_options(ui.store())


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def _data(url: str, f: queries.Filters) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    s = ui.store()
    return queries.trends(s, f), queries.score_histogram(s, f), queries.agenda_item_scores(s, f)


opts = _options(ui.db_url())
if opts["first"] is None:
    ui.empty_state("researcher.no_sessions", "facilitator.no_sessions_hint")
    st.stop()

with st.container(border=True):
    c1, c2, c3 = st.columns([2, 2, 3])
    span = c1.date_input(
        t("researcher.dates"),
        value=(opts["first"], opts["last"]),
        min_value=opts["first"],
        max_value=opts["last"],
        key="researcher_dates",
    )
    cohorts = c2.multiselect(t("researcher.cohorts"), opts["cohorts"], placeholder=t("researcher.all"), key="researcher_cohorts")
    titles = c3.multiselect(t("researcher.agenda_items"), opts["titles"], placeholder=t("researcher.all"), key="researcher_titles")

lo: date | None = span[0] if isinstance(span, (list, tuple)) and len(span) > 0 else None
hi: date | None = span[1] if isinstance(span, (list, tuple)) and len(span) > 1 else lo
filters = queries.Filters(date_from=lo, date_to=hi, cohorts=tuple(cohorts), agenda_titles=tuple(titles))
trend, hist, items = _data(ui.db_url(), filters)

if trend.empty:
    ui.empty_state("researcher.no_match")
    st.stop()

k1, k2, k3 = st.columns(3)
k1.metric(t("kpi.sessions"), len(trend))
k2.metric(t("kpi.mean_score"), ui.num(trend["score"].mean()))
k3.metric(t("kpi.present_share"), ui.pct(trend["present_share"].mean()))

st.subheader(t("researcher.trend"))
st.altair_chart(charts.trends(trend), width="stretch")

left, right = st.columns(2)
with left:
    st.subheader(t("researcher.histogram"))
    if hist.empty:
        ui.empty_state("researcher.no_scores")
    else:
        st.altair_chart(charts.histogram(hist), width="stretch")
with right:
    st.subheader(t("researcher.by_agenda"))
    if items.empty:
        ui.empty_state("researcher.no_agenda")
    else:
        st.altair_chart(charts.agenda_bars(items), width="stretch")

with st.expander(t("researcher.table")):
    st.dataframe(
        pd.DataFrame(
            {
                t("chart.session"): trend["name"],
                t("chart.cohort"): [ui.text(c) for c in trend["cohort"]],
                t("chart.date"): trend["started_at"].dt.strftime("%Y-%m-%d"),
                t("kpi.mean_score"): [ui.num(v, 3) for v in trend["score"]],
                t("kpi.present_share"): [ui.pct(v) for v in trend["present_share"]],
                t("chart.seconds"): trend["seconds"],
            }
        ),
        hide_index=True,
        width="stretch",
    )

# -- downloads --------------------------------------------------------------------------------
st.subheader(t("researcher.download"))
st.caption(t("researcher.download_help"))
names = trend["name"].tolist()
# Each session is ~288k participant-seconds (40 people x 2 h): a browser download is capped at a
# handful of sessions; `engagement export` on the command line has no cap.
MAX_DOWNLOAD_SESSIONS = 10
chosen = st.multiselect(
    t("researcher.download_sessions", n=MAX_DOWNLOAD_SESSIONS),
    names,
    default=names[-MAX_DOWNLOAD_SESSIONS:],  # the newest ones (trends come oldest first)
    max_selections=MAX_DOWNLOAD_SESSIONS,
    placeholder=t("researcher.pick_sessions"),
    key="researcher_download_sessions",
)
fmt = st.radio(t("researcher.format"), ("csv", "parquet"), format_func=lambda f: t(f"format.{f}"), horizontal=True)
actor = who.actor
picked = list(chosen)


# Not "application/zip": Streamlit 1.60's gzip middleware never sends the response head for the
# content types it skips compressing (zip, images, audio, video) under starlette >= 1.5, so the
# download fails with HTTP 500. A generic binary type takes the working path; the browser still
# saves the file under its .zip name (the response says attachment; filename=...).
ZIP_MIME = "application/octet-stream"


def _bundle() -> bytes:
    # Runs when the button is clicked (deferred), so the zip is built and audited only then.
    return services.export_bundle(ui.store(), picked, fmt, actor)


st.download_button(
    t("researcher.download_button", n=len(picked)),
    data=_bundle,
    file_name=f"engagement-export-{fmt}.zip",
    mime=ZIP_MIME,
    icon=":material/download:",
    type="primary",
    on_click="ignore",
    disabled=not picked,
)

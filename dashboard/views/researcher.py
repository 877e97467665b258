"""Researcher page: trends across sessions, distributions, audited downloads with schema and manifest."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from dashboard import charts, clock, queries, services, stats, ui
from dashboard.page_text import current_lang, t
from engagement.app.agenda import AgendaInputError
from engagement.core.errors import EngagementError
from engagement.core.i18n import fmt_seconds

who = ui.require("researcher")
store = ui.store()
st.title(t("researcher.title"))

# Cross-session aggregates change only when an analysis finishes: cache briefly per filter set.
CACHE_S = 60
COMPARE_MAX = 4
tz = clock.local_tz()


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def _options(url: str, tz) -> dict:
    return queries.filter_options(ui.store(), tz)


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def _data(url: str, f: queries.Filters) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    s = ui.store()
    trend, items = queries.researcher_figures(s, f)  # one pass over the seconds for both
    return trend, queries.score_histogram(s, f), items


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def _persons(url: str, f: queries.Filters, runs: pd.DataFrame, field: str) -> pd.DataFrame:
    return queries.person_means(ui.store(), f, runs, field)


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def _timelines(url: str, run_ids: tuple[int, ...], bucket: int) -> pd.DataFrame:
    s = ui.store()
    return pd.concat([queries.class_timeline(s, r, bucket).assign(run_id=r) for r in run_ids], ignore_index=True)


opts = _options(ui.db_url(), tz)
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
        format="DD/MM/YYYY",
        key="researcher_dates",
    )
    cohorts = c2.multiselect(t("researcher.cohorts"), opts["cohorts"], placeholder=t("researcher.all"),
                             key="researcher_cohorts", **ui.NO_SELECT_ALL)
    titles = c3.multiselect(t("researcher.agenda_items"), opts["titles"], placeholder=t("researcher.all"),
                            key="researcher_titles", **ui.NO_SELECT_ALL)
    field = st.radio(t("researcher.measure"), ("on_screen_share", "score"), format_func=lambda f: t(f"measure.{f}"),
                     horizontal=True, key="researcher_measure")

lo: date | None = span[0] if isinstance(span, (list, tuple)) and len(span) > 0 else None
hi: date | None = span[1] if isinstance(span, (list, tuple)) and len(span) > 1 else lo
filters = queries.Filters(date_from=lo, date_to=hi, cohorts=tuple(cohorts), agenda_titles=tuple(titles), tz=tz)
trend, hist, items = _data(ui.db_url(), filters)

if trend.empty:
    ui.empty_state("researcher.no_match")
    st.stop()

persons = _persons(ui.db_url(), filters, trend[["run_id", "seconds"]], field)
local_start = trend["started_at"].dt.tz_convert(tz).dt.tz_localize(None)
trend = stats.with_interval(trend.assign(local_start=local_start), persons, ["run_id"], field)
k1, k2, k3, k4, k5 = st.columns(5)
k1.metric(t("kpi.sessions"), len(trend))
k2.metric(t("chart.people"), int(trend["people"].sum()))
k3.metric(t("kpi.on_screen"), ui.pct(trend["on_screen_share"].mean()))
k4.metric(t("kpi.cameras_off"), ui.pct(trend["off_share"].mean()))
k5.metric(t("kpi.mean_score"), ui.num(trend["score"].mean()))

st.subheader(t(f"researcher.trend_{field}"))
if trend[field].notna().any():
    ui.chart(charts.trends(trend, field))
    st.caption(t("researcher.interval_help"))
else:
    ui.empty_state("researcher.no_values")

st.subheader(t("researcher.by_agenda"))
if items.empty:
    ui.empty_state("researcher.no_agenda")
else:
    items = stats.with_interval(items, persons, ["run_id", "title"], field).dropna(subset=[field])
    if items.empty:  # every agenda second hidden by k, or no attention signals in these runs
        ui.empty_state("researcher.no_values")
    else:
        items["local_start"] = items["started_at"].dt.tz_convert(tz).dt.tz_localize(None)
        left, right = st.columns([3, 2])
        with left:
            ui.chart(charts.agenda_trends(items, field))
        with right:
            ui.chart(charts.agenda_bars(stats.across_sessions(items, field), field))
        st.caption(t("researcher.by_agenda_help"))

def _title_mapping() -> None:
    """Near-identical agenda titles counted as one item ("Studi kasus" and "Studi kasus pelayanan
    publik"), per cohort; every change is audited."""
    with st.expander(t("researcher.map_titles"), icon=":material/merge:"):
        st.caption(t("researcher.map_titles_help"))
        known = queries.agenda_titles(store)
        if known.empty:
            ui.empty_state("researcher.no_agenda")
            return
        c1, c2, c3 = st.columns([2, 3, 3])
        cohort = c1.selectbox(t("chart.cohort"), sorted(set(known["cohort"])), key="map_cohort",
                              format_func=lambda c: c or t("researcher.no_cohort"))
        mine = known[known["cohort"] == cohort]
        chosen = c2.multiselect(t("researcher.map_from"), mine["title"].tolist(), key="map_from",
                                placeholder=t("researcher.pick_titles"), **ui.NO_SELECT_ALL)
        target = c3.text_input(t("researcher.map_to"), value=chosen[0] if chosen else "", key=f"map_to_{len(chosen)}")
        if st.button(t("researcher.map_button"), disabled=not chosen, key="map_button"):
            try:
                done = services.map_agenda_titles(store, cohort, chosen, target, who.actor)
            except AgendaInputError as exc:
                st.error(t("agenda.invalid", detail=exc.text(current_lang())))
            else:
                _options.clear()
                _data.clear()
                st.success(t("researcher.mapped", n=len(done), to=target.strip()))
                known = queries.agenda_titles(store)
        mapped = known[known["mapped_to"].notna()]
        if not mapped.empty:
            st.dataframe(pd.DataFrame({
                t("chart.cohort"): [c or t("researcher.no_cohort") for c in mapped["cohort"]],
                t("researcher.map_from"): mapped["title"],
                t("researcher.map_to"): mapped["mapped_to"],
            }), hide_index=True, width="stretch")


_title_mapping()

# -- sessions side by side ----------------------------------------------------------------------
st.subheader(t("researcher.compare"))
names = trend["name"].tolist()
compared = st.multiselect(
    t("researcher.compare_pick", n=COMPARE_MAX),
    names,
    default=names[-2:],
    max_selections=COMPARE_MAX,
    placeholder=t("researcher.pick_sessions"),
    key="researcher_compare",
    **ui.NO_SELECT_ALL,
)
if compared:
    chosen = trend[trend["name"].isin(compared)]
    longest = int(chosen["length"].max())
    lines = _timelines(ui.db_url(), tuple(int(r) for r in chosen["run_id"]), queries.bucket_for(longest, 360))
    lines = lines.merge(chosen[["run_id", "name"]], on="run_id")
    ui.chart(charts.compare(lines, field, longest))
    side = chosen.set_index("name").reindex(compared)
    st.dataframe(
        pd.DataFrame(
            {
                t("chart.date"): [ui.text(clock.local_text(v, tz)) for v in side["started_at"]],
                t("chart.cohort"): [ui.text(c) for c in side["cohort"]],
                t("chart.people"): [str(int(v)) for v in side["people"]],
                t("kpi.on_screen"): [ui.pct(v) for v in side["on_screen_share"]],
                t("kpi.cameras_off"): [ui.pct(v) for v in side["off_share"]],
                t("kpi.mean_score"): [ui.num(v) for v in side["score"]],
                t("kpi.length"): [fmt_seconds(v) for v in side["length"]],
            },
            index=compared,
        ).T,
        width="stretch",
    )

st.subheader(t("researcher.histogram"))
if hist.empty:
    ui.empty_state("researcher.no_scores")
else:
    ui.chart(charts.histogram(hist))
    # Said outright: it is the model's score whichever measure is picked above (unexplained, it
    # read as a histogram of the share on screen).
    st.caption(t("researcher.histogram_help"))

with st.expander(t("researcher.table")):
    st.dataframe(
        pd.DataFrame(
            {
                t("chart.session"): trend["name"],
                t("chart.cohort"): [ui.text(c) for c in trend["cohort"]],
                t("chart.date"): [ui.text(clock.local_text(v, tz)) for v in trend["started_at"]],
                t("chart.people"): trend["people"],
                t("kpi.on_screen"): [ui.pct(v) for v in trend["on_screen_share"]],
                t("kpi.cameras_off"): [ui.pct(v) for v in trend["off_share"]],
                t("kpi.mean_score"): [ui.num(v) for v in trend["score"]],
                t("researcher.interval"): [ui.interval(a, b, field) for a, b in zip(trend[f"{field}_lo"], trend[f"{field}_hi"])],
                t("kpi.length"): [fmt_seconds(v) for v in trend["length"]],
            }
        ),
        hide_index=True,
        width="stretch",
    )

# -- downloads --------------------------------------------------------------------------------
st.subheader(t("researcher.download"))
st.caption(t("researcher.download_help"))
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
    **ui.NO_SELECT_ALL,
)
def _consent_preview(names: list[str]) -> None:
    """Before the download, per session: whose data it will hold. A session without research
    consent gives a file with a header only; the manifest said why, but only after the download."""
    rows = []
    for name in names:
        try:
            counts = services.research_preview(ui.store(), name)
        except EngagementError:
            counts = None  # no complete run: the download itself says so
        rows.append((name, counts))
    empty = [name for name, c in rows if c is not None and c["research"] == 0]
    if empty:
        st.warning(t("researcher.no_research_consent", sessions=", ".join(empty)), icon=":material/info:")
    st.dataframe(
        pd.DataFrame({
            t("chart.session"): [name for name, _ in rows],
            t("researcher.export_kept"): [ui.MISSING if c is None else str(c["research"]) for _, c in rows],
            t("researcher.export_left_out"): [ui.MISSING if c is None else str(c["no_research_consent"] + c["no_active_consent"])
                                              for _, c in rows],
        }),
        hide_index=True,
        width="stretch",
    )


if chosen:
    _consent_preview(list(chosen))
fmt = st.radio(t("researcher.format"), ("csv", "parquet"), format_func=lambda f: t(f"format.{f}"), horizontal=True)
actor = who.actor
picked = list(chosen)


# Not "application/zip": the gzip middleware of Streamlit 1.60 and 1.61 (the dependency floor)
# never sends the response head for the content types it skips compressing (zip, images, audio,
# video) under starlette >= 1.5, so the download fails with HTTP 500. A generic binary type takes
# the working path; the browser still saves the file under its .zip name (the response says
# attachment; filename=...).
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

"""Facilitator page: one session's class timeline against its agenda, drops, presence, summary."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, replace
from datetime import timedelta, tzinfo

import pandas as pd
import streamlit as st

from dashboard import agenda_editor, alerting, auth, charts, clock, queries, report, services, summary, ui
from dashboard.page_text import current_lang, t
from engagement.core.i18n import fmt_seconds, translate
from engagement.core.store import Store
from engagement.core.time import as_utc, utcnow
from engagement.temporal.timeline import FatigueRule

who = ui.require("facilitator")
store = ui.store()
st.title(t("facilitator.title"))
tz = clock.local_tz()
STALE_AFTER_S = 120  # the analysis writes a heartbeat every few seconds while it runs
RECENT_S = 600  # the live view's "last 10 minutes"
ONGOING_S = 5  # an alert whose last second is this close to the newest one is still going on
LANE_BARS = 600  # at most this many bars per participant lane: one per second up to 10 minutes

sessions = queries.list_sessions(store)
if sessions.empty:
    ui.empty_state("facilitator.no_sessions", "facilitator.no_sessions_hint")
    st.stop()


def _label(row: pd.Series, lang: str) -> str:
    """A session as the picker lists it, in `lang`: bound when the page runs, because Streamlit
    may format the picked option again outside the page's run, where the language is unknown."""
    status = translate(f"status.{row.status}" if isinstance(row.status, str) else "status.none", lang)
    when = ui.text(clock.local_text(row.started_at, tz))
    return translate("facilitator.session_option", lang, name=row["name"], date=when, cohort=ui.text(row.cohort),
                     status=status)


options = sessions.index.tolist()
# `engagement dashboard --session NAME` (and --demo) opens on that session; ?session=NAME too.
wanted = st.query_params.get("session") or os.environ.get("ENGAGEMENT_DASHBOARD_SESSION")
matches = [i for i in options if sessions.loc[i, "name"] == wanted]
pick = st.selectbox(
    t("facilitator.pick_session"),
    options,
    index=options.index(matches[0]) if matches else 0,
    format_func=lambda i, lang=current_lang(): _label(sessions.loc[i], lang),
    key="facilitator_session",
)
session = sessions.loc[pick].to_dict()
session_id = int(session["id"])

if session["run_id"] is None or session["run_id"] != session["run_id"]:
    ui.empty_state("facilitator.no_run", "facilitator.no_run_hint", name=session["name"])
    st.stop()
run_id = int(session["run_id"])
live = session["status"] == "running"

if live:
    c1, c2 = st.columns([3, 2])
    c1.radio(t("live.view"), ("recent", "all"), format_func=lambda v: t(f"live.view_{v}"), horizontal=True,
             key=f"live_view_{run_id}")
    c2.toggle(t("live.sound"), key="alert_sound", help=t("live.sound_help"))


@dataclass(frozen=True)
class _Run:
    """The run this page shows, handed to each part of the overview (no module globals)."""

    store: Store
    session: dict
    session_id: int
    run_id: int
    live: bool
    tz: tzinfo
    actor: str


def _overview(run: _Run) -> None:
    """Everything that changes while a live analysis writes; re-run on a timer when live."""
    info = queries.run_info(run.store, run.run_id) or {}
    length = int(info.get("length") or 0)
    if run.live:
        _live_status(info, length)
    bucket = queries.bucket_for(length)
    tl = queries.class_timeline(run.store, run.run_id, bucket)
    if tl.empty:
        _no_timeline(run, info)
        return
    stats = queries.session_stats(run.store, run.run_id)
    agenda = queries.agenda_within(queries.agenda(run.store, run.session_id), length)
    whole = clock.Clock.for_session(run.session.get("clock_start"), length, run.tz)
    points = queries.timeline_points(run.store, run.run_id)
    if run.live:
        alerts = _live_now(run, points, agenda, whole)
    else:
        alerts = queries.alerts(run.store, run.run_id)
    # The headline is the share of present participants on screen; runs analysed before the
    # attention signals existed have only the engagement score.
    field = "on_screen_share" if stats["attention"] else "score"
    headline = _headline(tl, bucket, length, field, agenda, whole)
    tired = summary.fatigue_sentence(points, whole, current_lang(), live=run.live)
    if tired:
        st.warning(tired, icon=":material/bedtime:")
        headline = f"{headline} {tired}"
    _figures(stats, alerts, length)
    _timelines(run, tl, bucket, length, field, stats, agenda, alerts, whole)
    _fatigue(points, bucket, whole)
    _estimate(stats)
    _distribution(run, stats)
    scores = _alerts_and_agenda(run, alerts, agenda, field, whole)
    html = report.session_summary_html(current_lang(), run.session, stats, tl, scores, agenda, alerts, whole, headline,
                                       field)
    st.download_button(
        t("facilitator.download_summary"),
        data=html.encode("utf-8"),
        file_name=f"{run.session['name']}-summary.html",
        mime="text/html",
        icon=":material/download:",
        on_click=lambda: services.audit(run.store, services.REPORT_DOWNLOAD, run.actor,
                                        {"session": run.session["name"], "run_id": run.run_id}),
    )


def _live_status(info: dict, length: int) -> None:
    if info.get("status") != "running":
        st.rerun(scope="app")  # the analysis finished (or stopped): redraw the page without the timer
    st.info(t("facilitator.live", seconds=fmt_seconds(length)), icon=":material/radio_button_checked:")
    beat = info.get("heartbeat_at")
    if beat is not None:
        quiet = (utcnow() - as_utc(beat)).total_seconds()  # as_utc: a value read through a query of its own
        if quiet > STALE_AFTER_S:
            # A crashed analysis leaves its run 'running'; say so instead of waiting forever.
            st.warning(t("facilitator.stale", minutes=int(quiet // 60)))


def _headline(tl: pd.DataFrame, bucket: int, length: int, field: str, agenda: pd.DataFrame,
              whole: clock.Clock) -> str:
    """The summary sentence, shown first; returned for the downloadable summary."""
    span = summary.lowest_span(tl, bucket, length, field)
    item = queries.agenda_at(agenda, (span.start + span.end) / 2) if span and summary.notable(span) else None
    headline = summary.sentence(span, item, whole, current_lang())
    st.info(headline, icon=":material/lightbulb:")
    return headline


def _figures(stats: dict, alerts: pd.DataFrame, length: int) -> None:
    """The headline figures: what was measured directly. The model's estimate is not among them:
    on held-out data it is barely better than a constant (its card), so it sits with the
    researcher's measures below (`_estimate`)."""
    c1, c2, c3, c4 = st.columns(4)
    # Each figure says what it means (a bare "0.66" told a facilitator nothing).
    c1.metric(t("kpi.on_screen"), ui.pct(stats["on_screen_share"]), help=t("kpi.on_screen_help"))
    c2.metric(t("kpi.cameras_off"), ui.pct(stats["off_share"]), help=t("kpi.cameras_off_help"))
    c3.metric(t("kpi.alerts"), len(alerts))
    c4.metric(t("kpi.length"), fmt_seconds(length))


def _timelines(run: _Run, tl: pd.DataFrame, bucket: int, length: int, field: str, stats: dict,
               agenda: pd.DataFrame, alerts: pd.DataFrame, whole: clock.Clock) -> None:
    """The class timeline against the agenda, presence, and (for attention runs) the estimate."""
    recent = run.live and st.session_state.get(f"live_view_{run.run_id}", "recent") == "recent"
    if recent:
        since = max(0, length - RECENT_S)
        view_bucket, view = 1, replace(whole, first_s=since)
        view_tl = queries.class_timeline(run.store, run.run_id, 1, since=since)
    else:
        since, view_bucket, view, view_tl = None, bucket, whole, tl

    st.subheader(t("facilitator.timeline_on_screen") if field == "on_screen_share" else t("facilitator.timeline"))
    band = queries.score_band(run.store, run.run_id, view_bucket, since)
    ui.chart(charts.timeline(view_tl, view, field, agenda=agenda, alerts=alerts, band=band if field == "score" else None))
    if not agenda.empty:
        st.caption(t("facilitator.agenda_key", items=charts.agenda_key(agenda)))
    st.caption(t("facilitator.timeline_help", bucket=view_bucket))
    if stats["suppressed_share"]:
        st.caption(t("facilitator.suppressed", share=ui.pct(stats["suppressed_share"])))
    if agenda.empty:
        st.caption(t("facilitator.no_agenda_hint"))
    st.subheader(t("facilitator.presence"))
    ui.chart(charts.presence(view_tl, view))
    if field != "score":
        st.subheader(t("facilitator.estimate"))
        ui.chart(charts.timeline(view_tl, view, "score", band=band, height=200))
        st.caption(t("facilitator.estimate_help"))


def _fatigue(points: list, bucket: int, whole: clock.Clock) -> None:
    """The fatigue lane (yawns, heavy eyes, smiles where measured), under the timelines."""
    frame = summary.fatigue_frame(points, bucket)
    if frame.empty or frame[["yawn_rate", "heavy_share"]].isna().all().all():
        return  # no fatigue figure: an older run, or fewer than k participants measured
    rule = FatigueRule()
    st.subheader(t("facilitator.fatigue"))
    ui.chart(charts.fatigue_lane(frame, whole, rule.yawns_per_hour, rule.perclos_share))
    st.caption(t("facilitator.fatigue_help"))


def _estimate(stats: dict) -> None:
    """The model's mean score among the researcher's measures, with its measured held-out error."""
    with st.expander(t("facilitator.researcher_measures"), icon=":material/science:"):
        st.metric(t("kpi.mean_score"), ui.num(stats["mean_score"]), help=t("kpi.mean_score_help"))
        st.caption(t("estimate.measured_error"))


def _distribution(run: _Run, stats: dict) -> None:
    st.subheader(t("facilitator.distribution"))
    dist, kind = queries.attention_distribution(run.store, run.run_id), "state"
    if dist.empty and not stats["attention"]:
        dist, kind = queries.level_distribution(run.store, run.run_id), "level"
    if dist.empty:
        ui.empty_state("facilitator.no_distribution")
    else:
        ui.chart(charts.distribution(dist, kind))
        st.caption(t("facilitator.distribution_help"))


def _alerts_and_agenda(run: _Run, alerts: pd.DataFrame, agenda: pd.DataFrame, field: str,
                       whole: clock.Clock) -> pd.DataFrame:
    """The alert table and the ranked agenda; returns the agenda's scores for the download."""
    st.subheader(t("facilitator.alerts"))
    if alerts.empty:
        st.success(t("facilitator.no_alerts"))
    else:
        st.dataframe(_alert_table(alerts, agenda, whole), hide_index=True, width="stretch")
    if agenda.empty:
        return pd.DataFrame(columns=["start_second", "end_second", "title", "on_screen_share", "off_share", "score"])
    st.subheader(t("facilitator.agenda_scores"))
    scores = queries.agenda_scores(run.store, run.session_id, run.run_id)
    st.dataframe(_agenda_table(scores, field, whole), hide_index=True, width="stretch")
    st.caption(t("facilitator.agenda_help"))
    return scores


def _change(kind: str, magnitude: float) -> str:
    """An alert's size in points: percentage points for the shares, and the 0-1 score's drop on
    the same 0-100 scale (a column mixing "61 poin" and "0.52" read as two units); for fatigue
    how far past its threshold the class went (1.0 = at it)."""
    if kind == "fatigue_rising":
        return t("unit.times_threshold", times=f"{magnitude:.1f}")
    return f"{magnitude * 100:.0f} {t('unit.points')}"


def _alert_table(alerts: pd.DataFrame, agenda: pd.DataFrame, when: clock.Clock) -> pd.DataFrame:
    """When and during what first: a phone shows about two columns before the table scrolls."""
    return pd.DataFrame(
        {
            t("alerts.from"): [when.label(s) for s in alerts["start_second"]],
            t("alerts.agenda_item"): [ui.text(queries.agenda_at(agenda, s)) for s in alerts["start_second"]],
            t("alerts.kind"): [t(f"alert.{k}") for k in alerts["kind"]],
            t("alerts.duration"): [ui.duration(e - s + 1) for s, e in zip(alerts["start_second"], alerts["end_second"])],
            t("alerts.magnitude"): [_change(k, m) for k, m in zip(alerts["kind"], alerts["magnitude"])],
            t("alerts.to"): [when.label(s) for s in alerts["end_second"]],
        }
    )


# Background of an agenda row by its place among the session's items: lowest third, middle,
# highest third (text stays #1D2A2E on all three: contrast above 11:1).
RANK_COLOURS = ("#F6D5CF", "#F8EFD9", "#D3EAE4")


def _agenda_table(scores: pd.DataFrame, field: str, when: clock.Clock):
    """Agenda items best first by the headline measure, coloured by where they rank; the title and
    the measure first, so a phone shows them before the table scrolls."""
    ranked = scores.sort_values(field, ascending=False, na_position="last").reset_index(drop=True)
    known = ranked[field].notna()
    n = int(known.sum())
    table = pd.DataFrame(
        {
            t("agenda.rank"): [str(i + 1) if k else ui.MISSING for i, k in enumerate(known)],
            t("agenda.title"): ranked["title"],
            t("kpi.on_screen"): [ui.pct(v) for v in ranked["on_screen_share"]],
            t("agenda.start"): [when.label(s) for s in ranked["start_second"]],
            t("kpi.cameras_off"): [ui.pct(v) for v in ranked["off_share"]],
            t("kpi.mean_score"): [ui.num(v) for v in ranked["score"]],
        }
    )

    def colour(row: pd.Series) -> list[str]:
        i = row.name
        if not known.iloc[i] or n < 2:
            return [""] * len(row)
        third = min(2, int(3 * (n - 1 - i) / n))  # 0 = lowest third
        return [f"background-color: {RANK_COLOURS[third]}; color: #1D2A2E"] * len(row)

    return table.style.apply(colour, axis=1)


# The live "now" panel is read from across the room: its figures four times the usual size.
NOW_CSS = "<style>.st-key-live_now [data-testid='stMetricValue']{font-size:4.5rem;line-height:1.1}</style>"


def _live_now(run: _Run, points: list, agenda: pd.DataFrame, when: clock.Clock) -> pd.DataFrame:
    """The live view's top: what is being learned, the large "now" panel, and the alerts (drops
    and a sudden cameras-off rise in one table, so the counter and the banners agree)."""
    jump = alerting.cameras_off_jump(points)
    alerts = alerting.with_jump(alerting.live_alerts(points), points, jump)
    if alerting.learning(points):
        st.info(t("live.learning"), icon=":material/hourglass_top:")
    now = alerting.now_figures(points)
    if now is not None:
        st.html(NOW_CSS)
        with st.container(key="live_now", border=True):
            a, b, c = st.columns([2, 3, 1])
            change = None if now.change is None else f"{now.change * 100:+.0f} {t('unit.points')}"
            a.metric(t("live.now_share"), ui.pct(now.share), delta=change, help=t("live.now_share_help"))
            b.metric(t("live.now_item"), ui.text(queries.agenda_at(agenda, now.second)))
            c.metric(t("live.now_present"), str(now.present))
    _announce(run, alerts, points, agenda, when, jump)
    return alerts


def _announce(run: _Run, alerts: pd.DataFrame, points: list, agenda: pd.DataFrame, when: clock.Clock,
              jump: alerting.Jump | None) -> None:
    """A toast for each new alert, a banner while one lasts, and the chime when asked for."""
    run_id = run.run_id
    seen: set[str] = st.session_state.setdefault(f"alerts_seen_{run_id}", set())
    fresh = alerting.unseen(alerts, seen)
    last = points[-1].second if points else 0
    for row in fresh.itertuples():
        st.toast(_alert_text(row, agenda, when, jump), icon=":material/notifications_active:")
        seen.add(alerting.alert_key(row.kind, row.start_second))
    for row in alerts[alerts["end_second"] >= last - ONGOING_S].itertuples():
        icon = ":material/videocam_off:" if row.kind == alerting.JUMP_KIND else ":material/notifications_active:"
        st.warning(_alert_text(row, agenda, when, jump), icon=icon)
    if st.session_state.get("alert_sound") and not fresh.empty:
        st.html(alerting.chime_html(f"{run_id}-{last}"))



def _alert_text(row, agenda: pd.DataFrame, when: clock.Clock, jump: alerting.Jump | None = None) -> str:
    if row.kind == alerting.JUMP_KIND and jump is not None:
        return t("live.cameras_off_jump", now=ui.pct(jump.now), before=ui.pct(jump.before))
    item = queries.agenda_at(agenda, row.start_second)
    return t("live.alert", kind=t(f"alert.{row.kind}"), since=when.label(row.start_second), item=ui.text(item))


def _no_timeline(run: _Run, info: dict) -> None:
    """Why a run has no class timeline, and what to do about it."""
    if run.live:
        ui.empty_state("facilitator.no_timeline")
        return
    denied = services.denied_tracks(run.store, run.run_id) if not info.get("tracks") else 0
    if denied:
        # Faces were seen, but nobody had recorded consent: nothing was analysed (default deny).
        ui.empty_state("facilitator.no_consent", "facilitator.no_consent_hint", n=denied,
                       name=shlex.quote(run.session["name"]))
    else:
        ui.empty_state("facilitator.no_faces")


RUN = _Run(store, session, session_id, run_id, live, tz, who.actor)
EDITED_CLOCK = clock.Clock.for_session(session.get("clock_start"), int((queries.run_info(store, run_id) or {}).get("length") or 0), tz)
AGENDA = agenda_editor.Target(store, session_id, session["name"], EDITED_CLOCK, agenda_editor.span_of(EDITED_CLOCK, live), who.actor)


def _mark_form() -> None:
    """During class: mark a moment ("kuis dimulai") as a one-minute agenda item at the current second."""
    with st.form("live_mark", clear_on_submit=True, border=False):
        a, b = st.columns([3, 1], vertical_alignment="bottom")
        title = a.text_input(t("live.mark_title"))
        if b.form_submit_button(t("live.mark"), icon=":material/flag:", help=t("live.mark_help")):
            second = max(0, int((queries.run_info(store, run_id) or {}).get("length") or 0) - 1)  # the newest second
            agenda_editor.mark_now(AGENDA, second, title)
            st.rerun()
    note = st.session_state.pop("live_mark_note", None)
    if note:
        st.success(note, icon=":material/flag:")


if live:
    _mark_form()
    # Only the overview refreshes; the agenda editor below keeps what the user is typing.
    st.fragment(run_every=timedelta(seconds=5))(lambda: ui.section(lambda: _overview(RUN)))()
else:
    ui.section(lambda: _overview(RUN))

def _lane_by_name(run_id: int, cohort: str | None) -> None:
    """Which lane is the participant whose display name the facilitator types (names are never
    listed). Each new name typed is one audited lookup; a rerun with the same name is not."""
    typed = st.text_input(t("lanes.find_name"), key=f"lane_name_{run_id}", help=t("lanes.find_name_help"))
    if not typed.strip():
        return
    asked = (run_id, typed)
    if st.session_state.get("lane_name_asked", (None, None))[0] != asked:
        st.session_state["lane_name_asked"] = (asked, services.lane_of_display_name(store, run_id, cohort, typed, who.actor))
    label = st.session_state["lane_name_asked"][1]
    if label:
        st.success(t("lanes.name_found", label=label))
    else:
        st.info(t("lanes.name_not_found"))


# -- individual lanes: role and the run's compliance profile must both allow; audited ------------
st.divider()
st.subheader(t("lanes.title"))
if not auth.can_view_individuals(who.role):
    st.caption(t("lanes.role_forbids"))
elif not services.individual_views_allowed(session.get("profile")):
    st.caption(t("lanes.profile_forbids", profile=session.get("profile") or "–"))
else:
    st.caption(t("lanes.warning"))
    show = st.toggle(t("lanes.show"), key=f"lanes_{run_id}")
    if show:
        opened = st.session_state.setdefault("lanes_audited", [])
        if run_id not in opened:
            # Audit once per opening, before any individual data is sent to the browser.
            services.audit(
                store, services.INDIVIDUAL_VIEW, who.actor,
                {"session": session["name"], "run_id": run_id, "view": "lanes"},
            )
            opened.append(run_id)
        info = queries.run_info(store, run_id) or {}
        length = int(info.get("length") or 0)
        lane_bucket = queries.bucket_for(length, LANE_BARS)
        lanes = queries.individual_lanes(store, run_id, lane_bucket)
        if lanes.empty:
            ui.empty_state("facilitator.no_estimates")
        else:
            ui.chart(charts.lanes(lanes, clock.Clock.for_session(session.get("clock_start"), length, tz), lane_bucket))
            st.caption(t("lanes.help", bucket=lane_bucket))
            _lane_by_name(run_id, session.get("cohort"))
    else:
        st.session_state["lanes_audited"] = [r for r in st.session_state.get("lanes_audited", []) if r != run_id]

# -- agenda editor ----------------------------------------------------------------------------
st.divider()
with st.expander(t("agenda.edit"), icon=":material/event_note:"):
    agenda_editor.render(AGENDA)

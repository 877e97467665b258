"""Facilitator page: one session's class timeline against its agenda, drops, presence, summary."""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from dashboard import auth, charts, queries, report, services, ui
from dashboard.i18n import current_lang, fmt_seconds, t
from engagement.errors import EngagementError

who = ui.require("facilitator")
store = ui.store()
st.title(t("facilitator.title"))

sessions = queries.list_sessions(store)
if sessions.empty:
    ui.empty_state("facilitator.no_sessions", "facilitator.no_sessions_hint")
    st.stop()


def _label(row: pd.Series) -> str:
    status = t(f"status.{row.status}") if isinstance(row.status, str) else t("status.none")
    when = ui.text(row.started_at)[:16]
    return t("facilitator.session_option", name=row["name"], date=when, cohort=ui.text(row.cohort), status=status)


options = sessions.index.tolist()
# `engagement dashboard --session NAME` (and --demo) opens on that session; ?session=NAME too.
wanted = st.query_params.get("session") or os.environ.get("ENGAGEMENT_DASHBOARD_SESSION")
matches = [i for i in options if sessions.loc[i, "name"] == wanted]
pick = st.selectbox(
    t("facilitator.pick_session"),
    options,
    index=options.index(matches[0]) if matches else 0,
    format_func=lambda i: _label(sessions.loc[i]),
    key="facilitator_session",
)
session = sessions.loc[pick].to_dict()
session_id = int(session["id"])

if session["run_id"] is None or session["run_id"] != session["run_id"]:
    ui.empty_state("facilitator.no_run", "facilitator.no_run_hint", name=session["name"])
    st.stop()
run_id = int(session["run_id"])
live = session["status"] == "running"
STALE_AFTER_S = 120  # the analysis writes a heartbeat every few seconds while it runs


def _overview() -> None:
    """Everything that changes while a live analysis writes; re-run on a timer when live."""
    info = queries.run_info(store, run_id) or {}
    length = int(info.get("length") or 0)
    if live and info.get("status") != "running":
        st.rerun(scope="app")  # the analysis finished (or stopped): redraw the page without the timer
    if live:
        st.info(t("facilitator.live", seconds=fmt_seconds(length)), icon=":material/radio_button_checked:")
        beat = info.get("heartbeat_at")
        if beat is not None:
            beat = beat if beat.tzinfo else beat.replace(tzinfo=timezone.utc)  # SQLite drops the zone
            quiet = (datetime.now(timezone.utc) - beat).total_seconds()
            if quiet > STALE_AFTER_S:
                # A crashed analysis leaves its run 'running'; say so instead of waiting forever.
                st.warning(t("facilitator.stale", minutes=int(quiet // 60)))
    bucket = queries.bucket_for(length)
    tl = queries.class_timeline(store, run_id, bucket)
    if tl.empty:
        _no_timeline(info)
        return
    stats = queries.session_stats(store, run_id)
    agenda = queries.agenda(store, session_id)
    alerts = queries.alerts(store, run_id)

    c1, c2, c3, c4 = st.columns(4)
    c1.metric(t("kpi.mean_score"), ui.num(stats["mean_score"]))
    c2.metric(t("kpi.present_share"), ui.pct(stats["present_share"]))
    c3.metric(t("kpi.alerts"), stats["alerts"])
    c4.metric(t("kpi.length"), fmt_seconds(length))

    st.subheader(t("facilitator.timeline"))
    st.altair_chart(charts.timeline(tl, agenda, alerts, length), width="stretch")
    st.caption(t("facilitator.timeline_help", bucket=bucket))
    if stats["suppressed_share"]:
        st.caption(t("facilitator.suppressed", share=ui.pct(stats["suppressed_share"])))
    if agenda.empty:
        st.caption(t("facilitator.no_agenda_hint"))

    dist = queries.attention_distribution(store, run_id)
    left, right = st.columns(2)
    with left:
        st.subheader(t("facilitator.distribution"))
        if dist.empty:
            ui.empty_state("facilitator.no_estimates")
        else:
            st.altair_chart(charts.distribution(dist), width="stretch")
    with right:
        st.subheader(t("facilitator.presence"))
        st.altair_chart(charts.presence(tl), width="stretch")

    st.subheader(t("facilitator.alerts"))
    if alerts.empty:
        st.success(t("facilitator.no_alerts"))
    else:
        table = pd.DataFrame(
            {
                t("alerts.from"): [fmt_seconds(s) for s in alerts["start_second"]],
                t("alerts.to"): [fmt_seconds(s) for s in alerts["end_second"]],
                t("alerts.duration"): [fmt_seconds(e - s + 1) for s, e in zip(alerts["start_second"], alerts["end_second"])],
                t("alerts.agenda_item"): [_agenda_at(agenda, s) for s in alerts["start_second"]],
                t("alerts.magnitude"): [ui.num(v) for v in alerts["magnitude"]],
            }
        )
        st.dataframe(table, hide_index=True, width="stretch")

    if not agenda.empty:
        st.subheader(t("facilitator.agenda_scores"))
        scores = queries.agenda_scores(store, session_id, run_id)
        st.dataframe(
            pd.DataFrame(
                {
                    t("agenda.start"): [fmt_seconds(s) for s in scores["start_second"]],
                    t("agenda.title"): scores["title"],
                    t("kpi.mean_score"): [ui.num(v) for v in scores["score"]],
                    t("kpi.present_share"): [ui.pct(v) for v in scores["present_share"]],
                }
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        scores = pd.DataFrame(columns=["start_second", "end_second", "title", "score", "present_share"])

    html = report.session_summary_html(current_lang(), session, stats, tl, scores, agenda, alerts, dist, length)
    st.download_button(
        t("facilitator.download_summary"),
        data=html.encode("utf-8"),
        file_name=f"{session['name']}-summary.html",
        mime="text/html",
        icon=":material/download:",
        on_click=_audit_summary,
    )


def _no_timeline(info: dict) -> None:
    """Why a run has no class timeline, and what to do about it."""
    if live:
        ui.empty_state("facilitator.no_timeline")
        return
    denied = services.denied_tracks(store, run_id) if not info.get("tracks") else 0
    if denied:
        # Faces were seen, but nobody had recorded consent: nothing was analysed (default deny).
        ui.empty_state("facilitator.no_consent", "facilitator.no_consent_hint", n=denied, name=shlex.quote(session["name"]))
    else:
        ui.empty_state("facilitator.no_faces")


def _agenda_at(agenda: pd.DataFrame, second: int) -> str:
    hit = agenda[(agenda["start_second"] <= second)]
    return "" if hit.empty else str(hit.iloc[-1]["title"])


def _audit_summary() -> None:
    services.audit(store, services.REPORT_DOWNLOAD, who.actor, {"session": session["name"], "run_id": run_id})


if live:
    # Only the overview refreshes; the agenda editor below keeps what the user is typing.
    st.fragment(run_every=timedelta(seconds=5))(lambda: ui.section(_overview))()
else:
    ui.section(_overview)

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
        lane_bucket = max(60, queries.bucket_for(int(info.get("length") or 0), 240))
        lanes = queries.individual_lanes(store, run_id, lane_bucket)
        if lanes.empty:
            ui.empty_state("facilitator.no_estimates")
        else:
            st.altair_chart(charts.lanes(lanes), width="stretch")
    else:
        st.session_state["lanes_audited"] = [r for r in st.session_state.get("lanes_audited", []) if r != run_id]

# -- agenda editor ----------------------------------------------------------------------------
st.divider()
with st.expander(t("agenda.edit"), icon=":material/event_note:"):
    agenda_now = queries.agenda(store, session_id)
    if agenda_now.empty:
        st.caption(t("agenda.empty"))
    else:
        st.dataframe(
            pd.DataFrame({t("agenda.start"): [fmt_seconds(s) for s in agenda_now["start_second"]], t("agenda.title"): agenda_now["title"]}),
            hide_index=True,
            width="stretch",
        )
    with st.form("agenda_add", clear_on_submit=True):
        a, b = st.columns([1, 3])
        start_text = a.text_input(t("agenda.start"), placeholder=t("agenda.start_placeholder"))
        title_text = b.text_input(t("agenda.title"))
        if st.form_submit_button(t("agenda.add")):
            try:
                queries.add_agenda_item(store, session_id, queries.parse_offset(start_text), title_text)
                services.audit(store, services.AGENDA_CHANGED, who.actor, {"session": session["name"], "change": "add"})
                st.rerun()
            except EngagementError as exc:
                st.error(t("agenda.invalid", detail=str(exc)))
    upload = st.file_uploader(t("agenda.import"), type=["csv", "txt"], help=t("agenda.import_help"))
    if upload is not None and st.button(t("agenda.import_apply")):
        try:
            rows = queries.parse_agenda_csv(upload.getvalue())
            queries.replace_agenda(store, session_id, rows)
            services.audit(store, services.AGENDA_CHANGED, who.actor, {"session": session["name"], "change": "import", "items": len(rows)})
            st.success(t("agenda.imported", n=len(rows)))
        except EngagementError as exc:
            st.error(t("agenda.invalid", detail=str(exc)))
    if not agenda_now.empty:
        item_labels = {
            int(i): f"{fmt_seconds(int(start))} {title}"
            for i, start, title in zip(agenda_now["id"], agenda_now["start_second"], agenda_now["title"])
        }
        remove = st.selectbox(
            t("agenda.remove_pick"),
            list(item_labels),
            format_func=lambda i: item_labels.get(i, ""),
            key=f"agenda_remove_{session_id}",  # per session: another session's items are not options
        )
        if st.button(t("agenda.remove")):
            queries.delete_agenda_item(store, int(remove))
            services.audit(store, services.AGENDA_CHANGED, who.actor, {"session": session["name"], "change": "remove"})
            st.rerun()

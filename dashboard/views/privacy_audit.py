"""Privacy officer: the hash-chained audit log, its verification, filters and a CSV export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auditview, clock, queries, services, ui
from dashboard.page_text import t
from privacy.audit import AuditAction

who = ui.require("privacy_audit")
store = ui.store()
st.title(t("audit.title"))
st.caption(t("audit.help"))
tz = clock.local_tz()
SHOWN = 1000  # entries on screen; the CSV holds every matching entry

outcome = services.audit_verify(store)
if outcome.ok:
    st.success(t("audit.intact", n=outcome.entries), icon=":material/verified:")
else:
    st.error(t("audit.tampered", n=len(outcome.problems)), icon=":material/gpp_bad:")
    for problem in outcome.problems:
        st.markdown(f"- {problem}")

if not outcome.entries:
    ui.empty_state("audit.empty")
    st.stop()

with st.container(border=True):
    c1, c2, c3 = st.columns([2, 2, 2])
    actors = c1.multiselect(t("audit.actor"), queries.audit_actors(store), placeholder=t("researcher.all"),
                            key="audit_actors", **ui.NO_SELECT_ALL)
    actions = c2.multiselect(t("audit.actions"), [a.value for a in AuditAction], format_func=lambda a: ui.term("action", a),
                             placeholder=t("researcher.all"), key="audit_actions", **ui.NO_SELECT_ALL)
    span = c3.date_input(t("audit.dates"), value=(), format="DD/MM/YYYY", key="audit_dates")
days = list(span) if isinstance(span, (list, tuple)) else [span]
f = queries.AuditFilter(
    actors=tuple(actors),
    actions=tuple(actions),
    date_from=days[0] if days else None,
    date_to=days[-1] if days else None,
)
shown = queries.audit_log(store, f, tz, limit=SHOWN)
if shown.empty:
    ui.empty_state("audit.no_match")
    st.stop()

st.dataframe(
    pd.DataFrame(
        {
            t("audit.seq"): shown["seq"],
            t("audit.at"): [clock.local_text(v, tz, seconds=True) for v in shown["at"]],
            t("audit.action"): [ui.term("action", a) for a in shown["action"]],
            t("audit.actor"): shown["actor"],
            t("audit.details"): [auditview.details_text(d, tz) for d in shown["details"]],
            t("audit.hash"): [h[:12] for h in shown["hash"]],
        }
    ),
    hide_index=True,
    width="stretch",
    column_config={t("audit.details"): st.column_config.TextColumn(width="large")},
)
st.caption(t("audit.shown", n=len(shown), total=outcome.entries))
actor = who.actor


def _csv() -> bytes:
    # Built and audited when the officer clicks (deferred), with every matching entry.
    entries = queries.audit_log(ui.store(), f, tz, limit=None)
    data = auditview.audit_csv(entries, tz)
    services.audit(ui.store(), services.EXPORT, actor, {"what": "audit_log", "entries": len(entries), "via": "dashboard"})
    return data


st.download_button(
    t("audit.download"),
    data=_csv,
    file_name="audit-log.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",
)

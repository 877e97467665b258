"""Privacy officer: the hash-chained audit log and its verification."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import services, ui
from dashboard.i18n import t

who = ui.require("privacy_audit")
store = ui.store()
st.title(t("audit.title"))
st.caption(t("audit.help"))

try:
    outcome = services.audit_verify(store)
    entries = services.audit_entries(store, limit=1000)
except services.Unavailable:
    ui.empty_state("privacy.unavailable")
    st.stop()

if outcome.ok:
    st.success(t("audit.intact", n=outcome.entries), icon=":material/verified:")
else:
    st.error(t("audit.tampered", n=len(outcome.problems)), icon=":material/gpp_bad:")
    for problem in outcome.problems:
        st.markdown(f"- {problem}")

if not entries:
    ui.empty_state("audit.empty")
    st.stop()

df = pd.DataFrame(entries)
actions = sorted(df["action"].unique().tolist())
pick = st.multiselect(t("audit.actions"), actions, format_func=lambda a: t(f"action.{a}"), placeholder=t("researcher.all"))
shown = df[df["action"].isin(pick)] if pick else df
shown = shown.sort_values("seq", ascending=False)
st.dataframe(
    pd.DataFrame(
        {
            t("audit.seq"): shown["seq"],
            t("audit.at"): shown["at"],
            t("audit.action"): [t(f"action.{a}") for a in shown["action"]],
            t("audit.actor"): shown["actor"],
            t("audit.details"): [json.dumps(d, ensure_ascii=False, sort_keys=True) for d in shown["details"]],
            t("audit.hash"): [h[:12] for h in shown["hash"]],
        }
    ),
    hide_index=True,
    width="stretch",
)
st.caption(t("audit.shown", n=len(shown), total=outcome.entries))

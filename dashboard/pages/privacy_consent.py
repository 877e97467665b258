"""Privacy officer: consent records (pseudonyms only) and a per-cohort overview."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import services, ui
from dashboard.i18n import t

who = ui.require("privacy_consent")
store = ui.store()
st.title(t("consent.title"))
st.caption(t("consent.help"))

try:
    records = pd.DataFrame(services.consent_records(store))
except services.Unavailable:
    ui.empty_state("privacy.unavailable")
    st.stop()

if records.empty:
    ui.empty_state("consent.empty", "consent.empty_hint")
    st.stop()

records["status"] = [t("consent.withdrawn") if w else t("consent.active") for w in records["withdrawn_at"].notna()]
k1, k2, k3 = st.columns(3)
k1.metric(t("consent.records"), len(records))
k2.metric(t("consent.active"), int(records["withdrawn_at"].isna().sum()))
k3.metric(t("consent.withdrawn"), int(records["withdrawn_at"].notna().sum()))

# An attestation has no cohort: group it under a dash rather than dropping it from the counts.
summary = records.fillna({"cohort": ui.MISSING}).groupby(["cohort", "scope", "status"], as_index=False).size()
st.subheader(t("consent.by_cohort"))
st.dataframe(
    summary.rename(columns={"cohort": t("chart.cohort"), "scope": t("consent.scope"), "status": t("consent.status"), "size": t("consent.count")}),
    hide_index=True,
    width="stretch",
)

st.subheader(t("consent.records"))
cohorts = sorted(records["cohort"].dropna().unique().tolist())
pick = st.multiselect(t("researcher.cohorts"), cohorts, placeholder=t("researcher.all"))
shown = records[records["cohort"].isin(pick)] if pick else records
columns = {
    "kind": t("consent.kind"),
    "cohort": t("chart.cohort"),
    "participant": t("consent.participant"),
    "session": t("chart.session"),
    "scope": t("consent.scope"),
    "notice_version": t("consent.notice"),
    "language": t("app.language"),
    "granted_at": t("consent.granted_at"),
    "withdrawn_at": t("consent.withdrawn_at"),
}
st.dataframe(ui.readable(shown[[c for c in columns if c in shown.columns]]).rename(columns=columns), hide_index=True, width="stretch")

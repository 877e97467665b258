"""Privacy officer: the retention policy (view, edit with a reason), purge dry-run and run, receipts."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import queries, services, ui
from dashboard.i18n import t
from engagement.errors import EngagementError

who = ui.require("privacy_retention")
store = ui.store()
st.title(t("retention.title"))

try:
    policy = services.load_policy()
except services.Unavailable:
    ui.empty_state("privacy.unavailable")
    st.stop()

periods = services.policy_periods(policy)
st.subheader(t("retention.current"))
st.dataframe(
    pd.DataFrame(
        {
            t("retention.tier"): [t("tier.raw_frames")] + [t(f"tier.{k}") for k in periods],
            t("retention.period"): [t("retention.never")] + list(periods.values()),
        }
    ),
    hide_index=True,
    width="stretch",
)
st.caption(t("retention.profile", profile=policy.profile, source=policy.source))

with st.expander(t("retention.edit"), icon=":material/edit:"):
    st.caption(t("retention.edit_help"))
    with st.form("policy_edit"):
        new_periods = {tier: st.text_input(t(f"tier.{tier}"), value=value) for tier, value in periods.items()}
        profile = st.selectbox(t("retention.profile_pick"), ("id-pdp", "eu-ai-act"), index=0 if policy.profile == "id-pdp" else 1)
        reason = st.text_area(t("retention.reason"))
        if st.form_submit_button(t("retention.save"), type="primary"):
            if not reason.strip():
                st.error(t("retention.reason_required"))
            else:
                try:
                    services.save_policy(store, new_periods, profile, reason, who.actor)
                    st.success(t("retention.saved"))
                except EngagementError as exc:
                    st.error(t("error.action", detail=str(exc)))

st.subheader(t("purge.title"))
st.caption(t("purge.help"))
c1, c2 = st.columns(2)
if c1.button(t("purge.dry_run"), icon=":material/preview:"):
    st.session_state["purge_preview"] = services.purge(store, dry_run=True, actor=who.actor)
confirm = c2.checkbox(t("purge.confirm"))
if c2.button(t("purge.run"), type="primary", disabled=not confirm, icon=":material/delete_sweep:"):
    st.session_state["purge_done"] = services.purge(store, dry_run=False, actor=who.actor)
    st.session_state.pop("purge_preview", None)

for key, title_key in (("purge_preview", "purge.preview_result"), ("purge_done", "purge.done_result")):
    receipt = st.session_state.get(key)
    if receipt:
        counts = receipt.get("counts", {})
        st.markdown(t(title_key, total=sum(counts.values())))
        st.dataframe(
            pd.DataFrame({t("purge.table"): list(counts), t("purge.rows"): list(counts.values())}),
            hide_index=True,
            width="stretch",
        )

st.subheader(t("purge.receipts"))
receipts = queries.purge_receipts(store)
if receipts is None or receipts.empty:
    st.caption(t("purge.no_receipts"))
else:
    receipts["total"] = [sum(json.loads(c or "{}").values()) for c in receipts["counts_json"]]
    st.dataframe(
        receipts[["id", "kind", "at", "trigger", "subject", "total"]].rename(
            columns={
                "id": t("purge.receipt_id"),
                "kind": t("consent.kind"),
                "at": t("purge.at"),
                "trigger": t("purge.trigger"),
                "subject": t("consent.participant"),
                "total": t("purge.rows"),
            }
        ),
        hide_index=True,
        width="stretch",
    )

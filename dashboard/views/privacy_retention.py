"""Privacy officer: the retention policy (view, edit with a reason), purge dry-run and run, receipts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import clock, queries, services, ui
from dashboard.page_text import current_lang, t
from engagement.core.errors import EngagementError
from engagement.core.i18n import translate
from privacy import retention
from privacy.errors import PolicyError
from privacy.profiles import PROFILES

who = ui.require("privacy_retention")
store = ui.store()
st.title(t("retention.title"))
tz = clock.local_tz()

policy = services.load_policy()
periods = services.policy_periods(policy)
st.subheader(t("retention.current"))
st.dataframe(
    pd.DataFrame(
        {
            t("retention.tier"): [t("tier.raw_frames")] + [t(f"tier.{k}") for k in periods],
            t("retention.period"): [t("retention.never")] + [ui.period_text(v) for v in periods.values()],
        }
    ),
    hide_index=True,
    width="stretch",
)
# The policy file by name only: the server's path to it is not the officer's business.
source = t("retention.source_defaults") if policy.source == "defaults" else Path(policy.source).name
st.caption(t("retention.profile", profile=ui.term("profile", policy.profile), source=source))



def _bad_periods(periods: dict[str, str]) -> str | None:
    """The first period the policy would refuse, said in the page's language (the privacy
    module's own message is English and names the server's policy file)."""
    for tier, value in periods.items():
        try:
            retention.parse_period(value.strip(), tier, "")
        except PolicyError:
            return t("retention.bad_period", tier=t(f"tier.{tier}"), value=value.strip())
    return None


with st.expander(t("retention.edit"), icon=":material/edit:"):
    st.caption(t("retention.edit_help"))
    with st.form("policy_edit"):
        new_periods = {tier: st.text_input(t(f"tier.{tier}"), value=value) for tier, value in periods.items()}
        names = sorted(PROFILES)
        profile = st.selectbox(t("retention.profile_pick"), names, index=names.index(policy.profile),
                               # Bound to the page's language: Streamlit may format the pick again outside the run.
                               format_func=lambda p, lang=current_lang(): translate(f"profile.{p}", lang))
        reason = st.text_area(t("retention.reason"))
        if st.form_submit_button(t("retention.save"), type="primary"):
            bad = _bad_periods(new_periods)
            if bad:
                st.error(bad)
            elif not reason.strip():
                st.error(t("retention.reason_required"))
            else:
                try:
                    saved = services.save_policy(store, new_periods, profile, reason, who.actor)
                except EngagementError as exc:
                    st.error(t("error.action", detail=str(exc)))
                else:
                    if saved is None:
                        st.info(t("retention.unchanged"))
                    else:
                        st.session_state["retention_saved"] = True
                        st.rerun()  # the table above and the purge preview below follow the new policy
if st.session_state.pop("retention_saved", False):
    st.success(t("retention.saved"))

st.subheader(t("purge.title"))
st.caption(t("purge.help"))
c1, c2 = st.columns(2)
if c1.button(t("purge.dry_run"), icon=":material/preview:"):
    st.session_state["purge_preview"] = services.purge(store, dry_run=True, actor=who.actor)
confirm = c2.checkbox(t("purge.confirm"))
if c2.button(t("purge.run"), type="primary", disabled=not confirm, icon=":material/delete_sweep:"):
    st.session_state["purge_done"] = services.purge(store, dry_run=False, actor=who.actor)
    st.session_state.pop("purge_preview", None)

def _by_session(rows: list) -> None:
    """The preview per session and table: whose data the purge would take, not only how much."""
    st.markdown(t("purge.by_session"))
    if not rows:
        st.caption(t("purge.by_session_none"))
        return
    frame = pd.DataFrame(rows, columns=["session", "table", "rows"])
    table = frame.pivot_table(index="session", columns="table", values="rows", aggfunc="sum", fill_value=0)
    table = table.rename(columns=ui.count_label).reset_index().rename(columns={"session": t("chart.session")})
    st.dataframe(table, hide_index=True, width="stretch")


preview = st.session_state.get("purge_preview")
if preview and preview.get("policy_hash") != policy.hash:
    # The policy changed since the preview was made: count again under the one in force (a dry
    # run writes nothing), so the officer never reads numbers of a policy that no longer holds.
    preview = st.session_state["purge_preview"] = services.purge(store, dry_run=True, actor=who.actor)
for receipt, title_key in ((preview, "purge.preview_result"), (st.session_state.get("purge_done"), "purge.done_result")):
    if receipt:
        counts = receipt.get("counts", {})
        st.markdown(t(title_key, total=sum(counts.values())))
        st.dataframe(ui.counts_table(counts), hide_index=True, width="stretch")
        if receipt.get("by_session") is not None:
            _by_session(receipt["by_session"])

st.subheader(t("purge.receipts"))
receipts = queries.purge_receipts(store)
if receipts.empty:
    st.caption(t("purge.no_receipts"))
else:
    st.dataframe(
        ui.readable(
            pd.DataFrame(
                {
                    t("purge.receipt_id"): receipts["id"],
                    t("consent.kind"): [ui.term("receipt", k) for k in receipts["kind"]],
                    t("purge.at"): [clock.local_text(v, tz) for v in receipts["at"]],
                    t("purge.trigger"): [ui.term("trigger", k) for k in receipts["trigger"]],
                    t("consent.participant"): receipts["subject"],
                    t("purge.rows"): [sum(json.loads(c or "{}").values()) for c in receipts["counts_json"]],
                }
            )
        ),
        hide_index=True,
        width="stretch",
    )

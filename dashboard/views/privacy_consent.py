"""Privacy officer: consent records, the consent actions of the command line (grant, attest,
withdraw; each with a reason, audited) and a per-participant lookup by identity + cohort."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import clock, queries, services, ui
from dashboard.page_text import t
from engagement.core.errors import EngagementError
from privacy.consent import LANGUAGES as NOTICE_LANGUAGES
from privacy.consent import SCOPES

who = ui.require("privacy_consent")
store = ui.store()
st.title(t("consent.title"))
st.caption(t("consent.help"))
tz = clock.local_tz()
FLASH = "consent_flash"  # an action's outcome, shown after the rerun that refreshes the tables


def records_table(records: pd.DataFrame) -> pd.DataFrame:
    """Consent records as a reader sees them: words for kinds and scopes, local times."""
    columns = {
        t("consent.kind"): [ui.term("consent_kind", k) for k in records["kind"]],
        t("chart.cohort"): records["cohort"],
        t("consent.participant"): records["participant"],
        t("chart.session"): records["session"],
        t("consent.scope"): [ui.term("scope", s) for s in records["scope"]],
        t("consent.notice"): records["notice_version"],
        t("consent.notice_language"): [ui.term("lang", lang) for lang in records["language"]],
        t("consent.granted_at"): [clock.local_text(v, tz) for v in records["granted_at"]],
        t("consent.withdrawn_at"): [clock.local_text(v, tz) for v in records["withdrawn_at"]],
    }
    return ui.readable(pd.DataFrame(columns))


records = pd.DataFrame(services.consent_records(store))
if records.empty:
    ui.empty_state("consent.empty", "consent.empty_hint")
else:
    records["status"] = [t("consent.withdrawn") if w else t("consent.active") for w in records["withdrawn_at"].notna()]
    k1, k2, k3 = st.columns(3)
    k1.metric(t("consent.records"), len(records))
    k2.metric(t("consent.active"), int(records["withdrawn_at"].isna().sum()))
    k3.metric(t("consent.withdrawn"), int(records["withdrawn_at"].notna().sum()))

    # An attestation has no cohort: group it under a dash rather than dropping it from the counts.
    readable = records.fillna({"cohort": ui.MISSING}).assign(scope=[ui.term("scope", s) for s in records["scope"]])
    summary = readable.groupby(["cohort", "scope", "status"], as_index=False).size()
    st.subheader(t("consent.by_cohort"))
    st.dataframe(
        summary.rename(columns={"cohort": t("chart.cohort"), "scope": t("consent.scope"), "status": t("consent.status"),
                                "size": t("consent.count")}),
        hide_index=True,
        width="stretch",
    )

    st.subheader(t("consent.records"))
    cohorts = sorted(records["cohort"].dropna().unique().tolist())
    pick = st.multiselect(t("researcher.cohorts"), cohorts, placeholder=t("researcher.all"), **ui.NO_SELECT_ALL)
    shown = records[records["cohort"].isin(pick)] if pick else records
    st.dataframe(records_table(shown), hide_index=True, width="stretch")

# -- actions ------------------------------------------------------------------------------------
st.divider()
st.subheader(t("consent.actions"))
st.caption(t("consent.actions_help"))
# The outcome beside the forms, not at the page's top out of view; and the tab stays where the
# officer was (a keyed tab set keeps its choice across the rerun that follows each submit).
if st.session_state.get(FLASH):
    st.success(st.session_state.pop(FLASH), icon=":material/check_circle:")
tab_lookup, tab_grant, tab_attest, tab_withdraw = st.tabs(
    [t("consent.tab_lookup"), t("consent.tab_grant"), t("consent.tab_attest"), t("consent.tab_withdraw")],
    key="consent_tab", on_change="rerun",
)


def _notice_fields(form: str) -> tuple[list[str], str, str, str]:
    scopes = st.multiselect(t("consent.scope"), SCOPES, default=[SCOPES[0]], format_func=lambda s: t(f"scope.{s}"),
                            key=f"{form}_scopes", **ui.NO_SELECT_ALL)
    a, b = st.columns(2)
    notice = a.text_input(t("consent.notice"), placeholder="2026-1", key=f"{form}_notice")
    language = b.selectbox(t("consent.notice_language"), NOTICE_LANGUAGES, format_func=lambda c: t(f"lang.{c}"),
                           key=f"{form}_language")
    evidence = st.text_input(t("consent.evidence"), help=t("consent.evidence_help"), key=f"{form}_evidence")
    return scopes, notice, language, evidence


def done(message: str) -> None:
    st.session_state[FLASH] = message
    st.rerun()


def _refusal(exc: EngagementError) -> None:
    """A refused action as one line in the page's language where we know the cause."""
    known = {
        services.ReasonMissing: "consent.need_reason",
        services.CohortMissing: "consent.need_cohort",
        services.SubjectMissing: "requests.need_participant",
    }
    for kind, key in known.items():
        if isinstance(exc, kind):
            st.error(t(key))
            return
    st.error(t("error.action", detail=str(exc)))


with tab_lookup:
    with st.form("consent_lookup"):
        a, b = st.columns([3, 2])
        person = a.text_input(t("requests.participant"), help=t("requests.participant_help"), key="lookup_person")
        cohort = b.text_input(t("consent.cohort_required"), key="lookup_cohort")
        go = st.form_submit_button(t("consent.lookup"))
    if go:
        try:
            found = services.participant_lookup(store, person, cohort, who.actor)
        except services.NotFound:
            st.info(t("consent.not_found"), icon=":material/search_off:")
        except EngagementError as exc:
            _refusal(exc)
        else:
            data = found["data"]
            st.markdown(t("consent.lookup_result", participant=found["participant"]))
            c1, c2, c3 = st.columns(3)
            c1.metric(t("consent.held_sessions"), len(data["sessions"]))
            c2.metric(t("consent.held_tracks"), data["tracks"])
            c3.metric(t("consent.held_seconds"), data["feature_seconds"])
            if data["sessions"]:
                st.caption(t("consent.held_in", sessions=", ".join(data["sessions"])))
            if found["consents"]:
                st.dataframe(records_table(pd.DataFrame(found["consents"])), hide_index=True, width="stretch")
            else:
                st.caption(t("consent.no_records_for_person"))

with tab_grant:
    with st.form("consent_grant", clear_on_submit=False):
        a, b = st.columns([3, 2])
        identity = a.text_input(t("consent.identity"), help=t("requests.participant_help"), key="grant_identity")
        cohort = b.text_input(t("consent.cohort_required"), key="grant_cohort")
        scopes, notice, language, evidence = _notice_fields("grant")
        reason = st.text_area(t("consent.reason"), key="grant_reason")
        go = st.form_submit_button(t("consent.grant"), type="primary")
    if go:
        try:
            granted = services.consent_grant(store, identity, cohort, scopes, notice, language, evidence, reason, who.actor)
            done(t("consent.granted", participant=granted[0].participant, n=len(granted)))
        except EngagementError as exc:
            _refusal(exc)

sessions = queries.list_sessions(store)
session_names = sessions["name"].tolist()
def _attest_form() -> None:
    """A facilitator's attestation, for an analysed session or one not held yet: the command line
    allows attesting before class, so the form takes a new session name (and its cohort) too. A
    second attestation for a session that already has one is recorded only after a warning."""
    with st.form("consent_attest"):
        a, b = st.columns([3, 2])
        picked = a.selectbox(t("chart.session"), session_names, index=None, placeholder=t("consent.pick_or_new"),
                             key="attest_session")
        new_name = a.text_input(t("consent.new_session"), help=t("consent.new_session_help"), key="attest_new_session")
        cohort = b.text_input(t("consent.cohort_optional"), help=t("consent.cohort_new_session_help"), key="attest_cohort")
        facilitator = b.text_input(t("consent.facilitator"), help=t("consent.facilitator_help"), key="attest_facilitator")
        scopes, notice, language, evidence = _notice_fields("attest")
        reason = st.text_area(t("consent.reason"), key="attest_reason")
        go = st.form_submit_button(t("consent.attest"), type="primary")
    if not go:
        return
    session = new_name.strip() or picked
    if not session:
        st.error(t("consent.need_session"))
        return
    if services.has_attestation(store, session) and st.session_state.get("attest_again") != session:
        # Warn once; submitting again for the same session records the second attestation.
        st.session_state["attest_again"] = session
        st.warning(t("consent.attest_duplicate", session=session))
        return
    try:
        attested = services.consent_attest(store, session, facilitator, cohort, scopes, notice, language, evidence,
                                           reason, who.actor)
    except EngagementError as exc:
        _refusal(exc)
        return
    st.session_state.pop("attest_again", None)
    done(t("consent.attested", session=session, n=len(attested)))


with tab_attest:
    _attest_form()

with tab_withdraw:
    st.caption(t("consent.withdraw_help"))
    kind = st.radio(t("consent.withdraw_what"), ("participant", "attestation"), format_func=lambda k: t(f"consent.withdraw_{k}"),
                    horizontal=True, key="withdraw_kind")
    with st.form("consent_withdraw"):
        if kind == "participant":
            a, b = st.columns([3, 2])
            person = a.text_input(t("requests.participant"), help=t("requests.participant_help"), key="withdraw_person")
            cohort = b.text_input(t("requests.cohort"), key="withdraw_cohort")
            scopes = st.multiselect(t("consent.scope"), SCOPES, format_func=lambda s: t(f"scope.{s}"),
                                    placeholder=t("consent.all_scopes"), key="withdraw_scopes", **ui.NO_SELECT_ALL)
        else:
            session = st.selectbox(t("chart.session"), session_names, key="withdraw_session")
        reason = st.text_area(t("consent.reason"), key="withdraw_reason")
        confirm = st.checkbox(t("consent.confirm_withdraw"), key="withdraw_confirm")
        go = st.form_submit_button(t("consent.withdraw"), type="primary")
    if go:
        try:
            if not confirm:
                st.error(t("consent.need_confirm"))
            elif kind == "participant":
                result = services.consent_withdraw(store, person, cohort, scopes, reason, who.actor)
                done(t("consent.withdrawn_done", n=len(result.withdrawn), purged=sum(result.purged.values())))
            elif session:
                result = services.consent_withdraw_attestation(store, session, reason, who.actor)
                done(t("consent.withdrawn_done", n=len(result.withdrawn), purged=sum(result.purged.values())))
        except services.NotFound:
            st.info(t("consent.not_found"), icon=":material/search_off:")
        except EngagementError as exc:
            _refusal(exc)

"""Privacy officer: data-subject requests (access, erasure) and the DPIA report."""

from __future__ import annotations

import streamlit as st

from dashboard import services, ui
from dashboard.page_text import current_lang, t
from engagement.core.errors import EngagementError
from engagement.core.i18n import LANGUAGES

who = ui.require("privacy_requests")
store = ui.store()
st.title(t("requests.title"))
st.caption(t("requests.help"))

with st.form("subject_request"):
    a, b = st.columns([3, 2])
    participant = a.text_input(t("requests.participant"), help=t("requests.participant_help"), key="request_participant")
    cohort = b.text_input(t("requests.cohort"), key="request_cohort")
    kind = st.radio(t("requests.kind"), ("access", "erasure"), format_func=lambda k: t(f"requests.{k}"), horizontal=True,
                    key="request_kind")
    confirm = st.checkbox(t("requests.confirm_erasure"), key="request_confirm")
    go = st.form_submit_button(t("requests.submit"), type="primary")

if go:
    st.session_state.pop("subject_access", None)
    text, group = participant.strip(), cohort.strip()
    if not text:
        st.error(t("requests.need_participant"))
    elif not group and not services.is_pseudonym(text):
        st.error(t("requests.need_cohort"))  # an identity means nothing without its cohort's key
    elif kind == "erasure" and not confirm:
        st.error(t("requests.need_confirm"))
    else:
        try:
            if kind == "access":
                data = services.subject_access(store, text, group, who.actor)
                st.session_state["subject_access"] = services.subject_json(data)
                if data.get("summary", {}).get("tracks", 0) or data.get("consents"):
                    st.success(t("requests.access_done", n=data.get("summary", {}).get("tracks", 0)))
                else:
                    # Said the same way whether the person never took part or the cohort is wrong.
                    st.info(t("requests.not_found"), icon=":material/search_off:")
            else:
                result = services.subject_erasure(store, text, group, who.actor)
                counts = result["counts"]
                st.success(t("requests.erasure_done", n=sum(counts.values())))
                st.dataframe(ui.counts_table(counts), hide_index=True, width="stretch")
        except services.NotFound:
            st.info(t("requests.not_found"), icon=":material/search_off:")
        except EngagementError as exc:
            st.error(t("error.action", detail=str(exc)))

if st.session_state.get("subject_access"):
    st.download_button(
        t("requests.download_access"),
        data=st.session_state["subject_access"].encode("utf-8"),
        file_name="subject-access.json",
        mime="application/json",
        icon=":material/download:",
    )

st.divider()
st.subheader(t("dpia.title"))
st.caption(t("dpia.help"))
c1, c2 = st.columns(2)
lang = c1.selectbox(t("dpia.language"), LANGUAGES, index=LANGUAGES.index(current_lang()), format_func=lambda c: t(f"lang.{c}"))
fmt = c2.selectbox(t("dpia.format"), ("html", "md"), format_func=lambda f: t(f"format.{f}"))
actor = who.actor


def _dpia() -> bytes:
    # Deferred: generated (and audited) when the officer clicks, not on every page view.
    return services.dpia(ui.store(), lang, fmt, actor)


st.download_button(
    t("dpia.download"),
    data=_dpia,
    file_name=f"dpia-{lang}.{fmt}",
    mime="text/html" if fmt == "html" else "text/markdown",
    icon=":material/description:",
    on_click="ignore",
)

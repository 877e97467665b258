"""Dashboard entry point: page setup, language, sign-in, and the pages each role may open.

Run through `engagement dashboard` (which turns telemetry off and binds to 127.0.0.1), or for
development `streamlit run dashboard/app.py` with ENGAGEMENT_DB set.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from dashboard import services, ui
from dashboard.page_text import t
from engagement.core.errors import EngagementError
from engagement.core.i18n import LANGUAGES

HERE = Path(__file__).resolve().parent

# Our own icon, shipped in the package: a ":material/...:" page icon makes every browser fetch it
# from the internet. Streamlit inlines an SVG file as a data: URL.
st.set_page_config(page_title=t("app.title"), page_icon=str(HERE / "icon.svg"), layout="wide")
# Streamlit writes "Press Enter to apply" / "to submit form" under a text field being typed in,
# in English whatever the page's language, and has no setting for it: hidden. Every form here
# has its own labelled button, and a lone field applies when it loses focus as well.
st.html("<style>[data-testid='InputInstructions']{display:none}</style>")

# Language first: the sign-in page itself is translated. Indonesian unless the user picks.
st.session_state.setdefault("lang", "id")
st.sidebar.selectbox(
    t("app.language"),
    LANGUAGES,
    key="lang",
    format_func=lambda code: t(f"lang.{code}"),
)

try:
    store = ui.store()
except EngagementError as exc:
    st.error(t("error.db", detail=str(exc)))
    st.stop()

who = ui.sign_out_if_idle(store, ui.user())


def _page(stem: str, title_key: str, icon: str) -> st.Page:
    return st.Page(HERE / "views" / f"{stem}.py", title=t(title_key), icon=icon)


if who is None:
    nav = st.navigation([_page("sign_in", "nav.sign_in", ":material/login:")], position="hidden")
else:
    # (section key, [(page stem, title key, icon)]): only pages the role may open are registered,
    # so the others have no URL at all for this user.
    layout = [
        ("nav.section.teaching", [("facilitator", "nav.facilitator", ":material/co_present:")]),
        ("nav.section.research", [("researcher", "nav.researcher", ":material/query_stats:")]),
        (
            "nav.section.privacy",
            [
                ("privacy_consent", "nav.privacy_consent", ":material/fact_check:"),
                ("privacy_retention", "nav.privacy_retention", ":material/auto_delete:"),
                ("privacy_audit", "nav.privacy_audit", ":material/verified_user:"),
                ("privacy_requests", "nav.privacy_requests", ":material/person_search:"),
            ],
        ),
        ("nav.section.admin", [("users", "nav.users", ":material/manage_accounts:")]),
    ]
    visible = {}
    for section_key, entries in layout:
        pages = [_page(stem, title, icon) for stem, title, icon in entries if ui.allowed(stem, who.role)]
        if pages:
            visible[t(section_key)] = pages
    nav = st.navigation(visible)

    ui.idle_watch()
    st.sidebar.caption(t("auth.signed_in_as", name=who.name, role=t(f"role.{who.role}")))
    if st.sidebar.button(t("auth.sign_out"), icon=":material/logout:"):
        try:
            services.audit(store, services.SIGN_OUT, who.actor, {"role": who.role})
        finally:
            st.session_state.pop("user", None)
        st.rerun()

try:
    nav.run()
except ScriptControlException:
    raise  # st.rerun / st.stop are control flow, not errors
except EngagementError as exc:
    # Errors a user can act on (database locked, bad CSV) as one line, never a stack trace.
    st.error(t("error.action", detail=str(exc)))
except Exception:  # noqa: BLE001 - last line of defence: log for the operator, calm message for the user
    ui.log.exception("dashboard page failed")
    st.error(t("error.unexpected"))

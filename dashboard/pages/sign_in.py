"""Sign-in page: the only page before a user is signed in. Attempts are audited."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, services, ui
from dashboard.i18n import t

store = ui.store()
st.title(t("app.title"))
st.caption(t("app.tagline"))

if not auth.has_users(store):
    # First start: nobody can sign in yet; say exactly how to create the first account.
    ui.empty_state("auth.no_users", "auth.no_users_hint")
    st.stop()

with st.form("sign_in"):
    st.subheader(t("auth.sign_in"))
    name = st.text_input(t("auth.user_name"), key="sign_in_name")
    password = st.text_input(t("auth.password"), type="password", key="sign_in_password")
    submitted = st.form_submit_button(t("auth.sign_in"), type="primary")

if submitted:
    account = auth.authenticate(store, name.strip(), password)
    if account is None:
        services.audit(store, services.SIGN_IN_FAILED, f"dashboard:{name.strip()[:64] or '?'}", {})
        st.error(t("auth.failed"))
    else:
        services.audit(store, services.SIGN_IN, f"dashboard:{account.name}", {"role": account.role})
        st.session_state["user"] = {"name": account.name, "role": account.role}
        st.rerun()

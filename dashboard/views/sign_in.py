"""Sign-in page: the only page before a user is signed in. Attempts are throttled and audited."""

from __future__ import annotations

import math

import streamlit as st

from dashboard import auth, ui
from dashboard.page_text import t

store = ui.store()
st.title(t("app.title"))
st.caption(t("app.tagline"))

idle = st.session_state.pop("signed_out_idle", None)
if idle:
    st.info(t("auth.signed_out_idle", minutes=idle))

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
    result = auth.sign_in(store, ui.sign_in_throttle(), name, password, ui.client_address(), demo=ui.demo_mode())
    if result.user is not None:
        st.session_state["user"] = {"name": result.user.name, "role": result.user.role}
        st.rerun()
    elif result.wait_s > 0:
        st.error(t("auth.locked", minutes=max(1, math.ceil(result.wait_s / 60))))
    else:
        st.error(t("auth.failed"))

"""Admin: dashboard accounts (create, disable). Passwords are stored only as salted scrypt hashes."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auth, clock, services, ui
from dashboard.page_text import t
from engagement.core.errors import EngagementError

who = ui.require("users")
store = ui.store()
st.title(t("users.title"))

accounts = pd.DataFrame(auth.list_users(store))
if not accounts.empty:
    st.dataframe(
        pd.DataFrame(
            {
                t("auth.user_name"): accounts["name"],
                t("users.role"): [t(f"role.{r}") for r in accounts["role"]],
                t("users.created"): [ui.text(clock.local_text(v)) for v in accounts["created_at"]],
                t("users.status"): [t("users.disabled") if d else t("users.enabled") for d in accounts["disabled"]],
            }
        ),
        hide_index=True,
        width="stretch",
    )

st.subheader(t("users.add"))
with st.form("user_add", clear_on_submit=True):
    name = st.text_input(t("auth.user_name"))
    role = st.selectbox(t("users.role"), auth.ROLES, format_func=lambda r: t(f"role.{r}"))
    password = st.text_input(t("auth.password"), type="password", help=t("users.password_help", n=auth.MIN_PASSWORD))
    if st.form_submit_button(t("users.add"), type="primary"):
        try:
            created = auth.create_user(store, name.strip(), role, password)
            services.audit(store, services.USER_CREATED, who.actor, {"account": created.name, "role": created.role})
            st.success(t("users.created_ok", name=created.name))
            st.rerun()
        except EngagementError as exc:
            st.error(t("error.action", detail=str(exc)))

if not accounts.empty:
    st.subheader(t("users.disable"))
    others = [n for n in accounts["name"] if n != who.name]  # never lock yourself out
    if others:
        target = st.selectbox(t("auth.user_name"), others, key="users_target")
        c1, c2 = st.columns(2)
        if c1.button(t("users.disable_button")):
            auth.set_disabled(store, target, True)
            services.audit(store, services.USER_CHANGED, who.actor, {"account": target, "disabled": True})
            st.rerun()
        if c2.button(t("users.enable_button")):
            auth.set_disabled(store, target, False)
            services.audit(store, services.USER_CHANGED, who.actor, {"account": target, "disabled": False})
            st.rerun()

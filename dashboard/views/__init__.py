"""Dashboard pages, one file per page; `dashboard.app` registers them with st.navigation by role."""

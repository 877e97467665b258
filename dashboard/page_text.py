"""A page's text in the signed-in session's language: the dashboard's view of the project's
message catalogue (`engagement.core.i18n`).

Pages call `t("key", name=value)`; the language comes from the signed-in browser session
(`st.session_state["lang"]`, Indonesian by default). Code that runs outside Streamlit (the
downloadable HTML summary) passes `lang` explicitly to `translate`.
"""

from __future__ import annotations

from engagement.core.i18n import DEFAULT_LANG, LANGUAGES, translate


def current_lang() -> str:
    """The language picked in this browser session (Streamlit), else the default."""
    try:
        import streamlit as st

        lang = st.session_state.get("lang", DEFAULT_LANG)
    except Exception:  # outside a Streamlit run there is no session state
        return DEFAULT_LANG
    return lang if lang in LANGUAGES else DEFAULT_LANG


def t(key: str, **values: object) -> str:
    """The text for `key` in the current session's language."""
    return translate(key, current_lang(), **values)

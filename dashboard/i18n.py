"""One message catalogue for every user-facing label: Bahasa Indonesia first, English second.

Pages call `t("key", name=value)`; the language comes from the signed-in browser session
(`st.session_state["lang"]`, Indonesian by default). Code that runs outside Streamlit (the
downloadable HTML summary, the CLI) passes `lang` explicitly to `translate`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES: tuple[str, ...] = ("id", "en")
DEFAULT_LANG = "id"
_LOCALES = Path(__file__).resolve().parent / "locales"


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    """The messages of one language, key -> text with `{name}` placeholders."""
    with open(_LOCALES / f"{lang}.json", encoding="utf-8") as fh:
        return json.load(fh)


def translate(key: str, lang: str = DEFAULT_LANG, **values: object) -> str:
    """The text for `key` in `lang`; falls back to Indonesian, then to the key itself, so a
    missing translation shows as a visible key rather than an error page."""
    text = catalogue(lang if lang in LANGUAGES else DEFAULT_LANG).get(key)
    if text is None:
        text = catalogue(DEFAULT_LANG).get(key, key)
    if values:
        try:
            return text.format(**values)
        except (KeyError, IndexError, ValueError):
            return text
    return text


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


def fmt_seconds(second: int | float | None) -> str:
    """A session offset as h:mm:ss / m:ss (language-neutral)."""
    if second is None:
        return "–"
    s = int(second)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"

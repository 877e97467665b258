"""The one message catalogue of the project: Bahasa Indonesia first, English second.

The dashboard, the DPIA document and the command line all read `locales/<lang>.json` through
`translate`. Code in a Streamlit page uses `dashboard.page_text.t`, which picks the signed-in
session's language; everything else passes `lang` explicitly or takes `cli_lang()`.
"""

from __future__ import annotations

import json
import os
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
    missing translation shows as a visible key rather than an error."""
    text = catalogue(lang if lang in LANGUAGES else DEFAULT_LANG).get(key)
    if text is None:
        text = catalogue(DEFAULT_LANG).get(key, key)
    if values:
        try:
            return text.format(**values)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def cli_lang() -> str:
    """The command line's language: ENGAGEMENT_LANG if set (id | en), else English.

    English stays the default on the command line because scripts and the acceptance checks
    parse its output; an operator who wants Indonesian sets ENGAGEMENT_LANG=id.
    """
    lang = os.environ.get("ENGAGEMENT_LANG", "en").strip().lower()
    return lang if lang in LANGUAGES else "en"


def fmt_seconds(second: int | float | None) -> str:
    """A session offset as h:mm:ss / m:ss (language-neutral)."""
    if second is None:
        return "–"
    s = int(second)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"

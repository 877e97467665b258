"""Every page, as each role lands on it, in both languages: no word of the other language outside
a small allow-list, no raw column name, no number with more than two decimals, no "None"/"nan".

The words of "the other language" are those its catalogue uses and this one never does, so the
check grows with the catalogue. Data (session names, agenda titles, user names) is the users'
own and not checked for language; it is still checked for missing values and long decimals.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from dashboard_support import PAGES, ROLE_USERS, app, chart_specs, elements, make_db, no_failure, shown_text

from engagement.core.i18n import catalogue

ROLE_PAGES = [
    ("facilitator", "facilitator"),
    ("researcher", "researcher"),
    ("privacy_officer", "privacy_consent"),
    ("privacy_officer", "privacy_retention"),
    ("privacy_officer", "privacy_audit"),
    ("privacy_officer", "privacy_requests"),
    ("admin", "users"),
]
# The users' own names and the generator's session names ("sesi-001") are data, not UI words.
ALLOWED_WORDS = {name.lower() for name in ROLE_USERS.values()} | {"sesi"}
# The temporal model's held-out errors, quoted from its card to three decimals on purpose.
ALLOWED_NUMBERS = {"0.092", "0.095", "0,092", "0,095"}
WORD = r"[A-Za-zÀ-ÿ]{3,}"
# Common words of each language, foreign to the other whatever the catalogues hold: an English
# sentence slipped into the Indonesian catalogue would otherwise count as Indonesian.
COMMON = {
    "en": {"the", "and", "with", "for", "not", "this", "that", "every", "has", "are", "you", "your", "from",
           "session", "share", "people", "select", "upload", "file", "cannot", "none", "done", "kind", "locked"},
    "id": {"dan", "yang", "dari", "untuk", "dengan", "tidak", "ini", "itu", "sesi", "peserta", "selesai", "atau",
           "belum", "sudah", "jenis", "dikunci"},
}


def _words(texts) -> set[str]:
    return {w.lower() for text in texts for w in re.findall(WORD, text)}


def _only_in(lang: str) -> set[str]:
    other = "en" if lang == "id" else "id"
    return (_words(catalogue(lang).values()) - _words(catalogue(other).values())) | COMMON[lang]


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    # One per test: the audit log's anchor lives in the per-test data folder (conftest).
    return make_db(tmp_path, monkeypatch)


def _page(role: str, page: str, lang: str):
    # Straight to the page on the first run: a second run would format translated options
    # outside the page, in the default language (an AppTest limit, not the server's).
    at = app(role, lang)
    at.switch_page(str(PAGES / f"{page}.py"))
    at.run()
    no_failure(at)
    return at


def _ui_text(at) -> list[str]:
    """What the page itself says (not the users' data): messages, headings, labels, help, column
    names, chart titles."""
    texts = []
    for kind in ("caption", "info", "warning", "success", "error", "title", "subheader", "markdown"):
        texts += [str(e.value) for e in getattr(at, kind)]
    texts += [str(c) for df in at.dataframe for c in df.value.columns]
    for e in elements(at):
        texts += [v for v in (getattr(e, a, None) for a in ("label", "help", "placeholder")) if isinstance(v, str)]
    for spec in chart_specs(at):
        texts += re.findall(r'"title": "([^"]*)"', json.dumps(spec))
    return texts


@pytest.mark.parametrize("lang", ["id", "en"])
@pytest.mark.parametrize(("role", "page"), ROLE_PAGES)
def test_every_page_speaks_one_language_with_readable_numbers(db_url, role, page, lang):
    at = _page(role, page, lang)
    ui = _without_agenda_titles(_ui_text(at), db_url)
    assert at.title and len(ui) > 5 and not at.error  # the page itself, not an empty or failed state
    everything = shown_text(at) + ui
    foreign = _only_in("en" if lang == "id" else "id") - ALLOWED_WORDS
    assert not sorted(_words(ui) & foreign)
    assert not [s for s in everything if re.search(r"\b(None|nan|NaN|NaT)\b", s)]
    long_decimals = {m for s in everything for m in re.findall(r"\d[.,]\d{3,}", s)} - ALLOWED_NUMBERS
    assert not long_decimals
    assert not [s for s in ui if re.search(r"\b[a-z]+_[a-z_]+\b", s)]  # a raw column or key name
    assert not _streamlit_english(at)


def _streamlit_english(at) -> list[str]:
    """Widgets whose own words Streamlit draws in English whatever the page's language: a file
    uploader ("Drag and drop file here", "Limit 200MB per file", "Browse files") and a
    multiselect with its "Select all" entry on. AppTest never draws them, so the widgets are
    checked instead of the words."""
    found = []
    for e in elements(at):
        kind = getattr(e, "type", "")
        if kind == "file_uploader":
            found.append(f"file uploader {e.proto.label!r}")
        if kind == "multiselect" and getattr(e.proto, "select_all", 0) != 0:
            found.append(f"multiselect {e.proto.label!r} offers 'Select all'")
    return found


def _without_agenda_titles(texts: list[str], db_url: str) -> list[str]:
    """The texts with the agenda's titles taken out: the users' own words (the timeline's key,
    "Agenda: 1 Pembukaan · 2 Materi inti", names them inside a sentence of the UI's language)."""
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as con:
        titles = sorted({r[0] for r in con.execute("SELECT title FROM agenda_items")}, key=len, reverse=True)
    for title in titles:
        texts = [text.replace(title, "") for text in texts]
    return texts


def _tooltips(node) -> list[dict]:
    """Every tooltip field of a chart specification, in its layers and facets too."""
    found = []
    if isinstance(node, dict):
        tip = node.get("encoding", {}).get("tooltip") if isinstance(node.get("encoding"), dict) else None
        found += tip if isinstance(tip, list) else [tip] if isinstance(tip, dict) else []
        for value in node.values():
            found += _tooltips(value)
    elif isinstance(node, list):
        for value in node:
            found += _tooltips(value)
    return found


@pytest.mark.parametrize(("role", "page"), [("facilitator", "facilitator"), ("researcher", "researcher")])
def test_every_tooltip_is_named_in_words_and_formatted(db_url, role, page):
    at = _page(role, page, "id")
    tips = [tip for spec in chart_specs(at) for tip in _tooltips(spec)]
    assert tips
    for tip in tips:
        assert tip.get("title") and not re.search(r"\b[a-z]+_[a-z_]+\b", tip["title"]), tip  # never a column name
        if tip.get("type") == "quantitative":
            assert re.fullmatch(r"\.\d[f%]", tip.get("format", "")) and int(tip["format"][1]) <= 2, tip


@pytest.mark.parametrize(("lang", "decimal"), [("id", ","), ("en", None)])
def test_chart_numbers_are_written_as_the_language_writes_them(db_url, lang, decimal):
    at = _page("facilitator", "facilitator", lang)
    specs = chart_specs(at)
    assert specs and all(spec.get("config", {}).get("locale", {}).get("number", {}).get("decimal") == decimal
                         for spec in specs)

"""The DPIA's texts come from the one catalogue, complete in both languages."""

from __future__ import annotations

import re

import pytest

from engagement.core.i18n import LANGUAGES, catalogue, translate
from engagement.core.store import Store
from privacy.dpia import render_dpia
from privacy.profiles import PROFILES
from privacy.retention import load_policy


def _dpia_keys(lang: str) -> set[str]:
    return {k for k in catalogue(lang) if k.startswith(("dpia.doc.", "dpia.profile."))}


def _markdown(folder, profile: str, lang: str) -> str:
    store = Store.open(f"sqlite:///{folder / 'dpia.db'}")
    try:
        return render_dpia(store, load_policy(), PROFILES[profile], lang, "md")
    finally:
        store.close()


def test_every_dpia_key_exists_in_both_languages():
    keys = {lang: _dpia_keys(lang) for lang in LANGUAGES}
    assert keys["id"] == keys["en"] and len(keys["id"]) > 50
    for name in PROFILES:
        assert {f"dpia.profile.{name}.title", f"dpia.profile.{name}.legal_basis"} <= keys["en"]


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_document_shows_no_raw_keys(isolated_data_dir, lang, profile):
    md = _markdown(isolated_data_dir, profile, lang)
    assert not re.search(r"dpia\.(doc|profile)\.", md)
    # Lists are numbered keys: every safeguard and risk of the catalogue is in the document.
    items = [v for k, v in catalogue(lang).items() if re.fullmatch(r"dpia\.doc\.(safeguard|risk)_\d+", k)]
    assert len(items) == 11 and all(f"- {text}" in md for text in items)
    # The fatigue signals are described under every profile; smiles, an expression, only where allowed.
    assert translate("dpia.doc.cat_fatigue", lang) in md
    smile = "dpia.doc.cat_smile" if PROFILES[profile].expression_allowed else "dpia.doc.cat_no_smile"
    assert translate(smile, lang) in md


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_document_names_the_51_blendshape_columns_every_export_holds(isolated_data_dir, lang, profile):
    md = _markdown(isolated_data_dir, profile, lang)
    assert "51" in md and "bs_*" in md and ("14" in md and "37" in md)
    empty = {"id": "selalu kosong", "en": "always empty"}[lang]
    assert (empty in md) is not PROFILES[profile].expression_allowed


def test_the_policy_source_is_named_without_the_servers_path():
    from privacy.dpia import _source

    assert _source("/srv/engagement/conf/retention.toml", "id") == "retention.toml"
    assert _source("defaults", "id") == translate("dpia.doc.policy_defaults", "id") == "bawaan"

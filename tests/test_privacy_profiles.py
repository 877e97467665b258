"""Compliance profiles: eu-ai-act never loads the expression model and stores no expression data."""

from __future__ import annotations

import pytest

from engagement.app import pipeline
from engagement.core.config import AnalysisOptions
from engagement.core.errors import ConfigError
from engagement.core.store import Store
from engagement.vision import expression, stage
from privacy.profiles import get_profile


def test_profiles():
    assert get_profile(None).name == "id-pdp" and get_profile("id-pdp").expression_allowed
    eu = get_profile("EU-AI-Act")
    assert eu.name == "eu-ai-act" and not eu.expression_allowed and not eu.individual_views_allowed
    with pytest.raises(ConfigError, match="unknown compliance profile"):
        get_profile("gdpr")


def test_eu_profile_switches_expression_off():
    eu, pdp = get_profile("eu-ai-act"), get_profile("id-pdp")
    assert eu.analysis_options(AnalysisOptions()).expression is False
    assert pdp.analysis_options(AnalysisOptions()).expression is True


def test_profile_texts_come_from_the_catalogue_in_both_languages():
    for profile in (get_profile("id-pdp"), get_profile("eu-ai-act")):
        for texts in (profile.title, profile.legal_basis):
            assert set(texts) == {"id", "en"} and texts["id"] != texts["en"]
            assert not any(t.startswith("dpia.profile.") for t in texts.values())  # a missing key shows as itself


def test_eu_profile_never_loads_the_expression_model(monkeypatch, isolated_data_dir):
    """Through the lead's pipeline and vision stage: the model loader must not even be reached."""
    def refuse(*args, **kwargs):
        raise AssertionError("the expression model was loaded under eu-ai-act")

    monkeypatch.setattr(expression.ExpressionModel, "load", classmethod(refuse))
    store = Store.open(f"sqlite:///{isolated_data_dir / 't.db'}")
    p = pipeline.AnalysisPipeline(store, AnalysisOptions(expression=True), profile="eu-ai-act")
    assert p.options.expression is False and p.profile.name == "eu-ai-act"
    vision = stage.VisionStage.from_options(p.options)
    try:
        assert vision.expression_model is None
    finally:
        vision.close()
    # And the id-pdp profile does reach the loader (so the check above is not vacuous).
    p2 = pipeline.AnalysisPipeline(store, AnalysisOptions(expression=True), profile="id-pdp")
    with pytest.raises(AssertionError, match="expression model was loaded"):
        stage.VisionStage.from_options(p2.options)
    store.close()

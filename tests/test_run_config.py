"""The run's configuration record covers every setting that changes results, and its hash moves
with each of them."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from engagement.core.config import AnalysisOptions, models_dir, settings_hash
from engagement.temporal import features, stage
from engagement.temporal.run_config import run_models, run_settings, run_settings_hash
from engagement.vision.attention import AttentionOptions

BASE = AnalysisOptions()


def test_the_record_holds_options_temporal_constants_k_and_model_hashes():
    record = run_settings(BASE)
    assert {k: record[k] for k in BASE.to_dict()} == BASE.to_dict()  # old readers of `config` keep working
    assert record["temporal"]["segment_s"] == features.SEGMENT_S and record["temporal"]["hop_s"] == features.HOP_S
    assert record["temporal"]["alerts"]["score"]["min_drop"] > 0
    assert record["k_min"] == 3
    assert set(record["models"]) == set(run_models(BASE)) and all(len(h) == 64 for h in record["models"].values())
    assert json.loads(json.dumps(record)) == record  # stored as JSON without loss
    assert run_settings_hash(BASE) == settings_hash(record) != settings_hash(BASE.to_dict())


@pytest.mark.parametrize("constant", ["SEGMENT_S", "HOP_S", "BASELINE_S", "MIN_PRESENT_S"])
def test_changing_a_temporal_constant_changes_the_hash(monkeypatch, constant):
    before = run_settings_hash(BASE)
    monkeypatch.setattr(features, constant, getattr(features, constant) + 1)
    assert run_settings_hash(BASE) != before


def test_changing_k_the_uncertainty_or_an_attention_threshold_changes_the_hash(monkeypatch):
    before = run_settings_hash(BASE)
    assert run_settings_hash(BASE, k_min=5) != before
    assert run_settings_hash(replace(BASE, attention=AttentionOptions(margin_deg=5.0))) != before
    monkeypatch.setattr(stage, "SHORT_SPAN_UNCERTAINTY", 0.3)
    assert run_settings_hash(BASE) != before


def test_a_different_model_file_changes_the_hash(tmp_path):
    d = tmp_path / "models"
    shutil.copytree(models_dir(), d)
    before = run_settings_hash(BASE, d)
    registry = json.loads((d / "models.json").read_text())
    name = run_models(BASE)[-1]
    registry[name]["sha256"] = "0" * 64
    (d / "models.json").write_text(json.dumps(registry))
    assert run_settings_hash(BASE, d) != before


def test_without_the_expression_stage_its_model_is_not_in_the_record():
    off = replace(BASE, expression=False)
    assert not any(n.startswith("expression") for n in run_settings(off)["models"])
    assert any(n.startswith("expression") for n in run_settings(BASE)["models"])

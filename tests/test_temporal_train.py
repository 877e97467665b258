"""Temporal training/export (needs torch) and the engagewild evaluation on the shared data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import require_shared
from engagement.temporal.features import N_ATTENTION, N_INPUTS


def test_export_streaming_matches_torch_and_registry_merges(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from engagement.training.temporal import Ensemble, TemporalGRU, TrainConfig, check_streaming, export_onnx

    torch.manual_seed(0)
    (tmp_path / "models.json").write_text(json.dumps({"expression-cnn.v1": {"file": "e.onnx", "sha256": "ab"}}))
    members = [TemporalGRU(N_INPUTS, 8, np.full(N_INPUTS, -2.0), np.ones(N_INPUTS)) for _ in range(2)]
    ens = Ensemble(members).eval()
    report = {"norm_mean": [], "norm_std": [], "folds": 2, "fold_mse": [0.0, 0.0], "cv_mse_mean": 0.0,
              "cv_mse_std": 0.0, "seed": 0}
    out = export_onnx(ens, tmp_path, report, TrainConfig(hidden=8))
    assert out["onnx_vs_torch_max_abs_diff"] <= 1e-4
    reg = json.loads((tmp_path / "models.json").read_text())
    assert reg["expression-cnn.v1"] == {"file": "e.onnx", "sha256": "ab"}
    assert reg["engagement-gru.v1"]["sha256"] == out["sha256"]
    # A long sequence with gaps, checked again through the runtime wrapper.
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(0.1, 0.1, (3, 40, N_INPUTS))).astype(np.float32)
    m = (rng.random(x.shape) > 0.2).astype(np.float32)
    m[:, 10:14] = 0
    assert check_streaming(ens, tmp_path / "engagement-gru.v1.onnx", (x, m)) <= 1e-4
    from engagement.temporal.model import TemporalModel

    model = TemporalModel.load(models_dir=tmp_path)
    with torch.no_grad():
        ref = ens(torch.from_numpy(x), torch.from_numpy(m), torch.zeros(2, 3, 8))[0].numpy()
    np.testing.assert_allclose(model.run(x, m).score, ref, atol=1e-4)


def test_engagewild_evaluation_last_line_is_mse():
    npz = require_shared("engagewild/engagewild_train_test.npz")
    from engagement.temporal.evaluate import evaluate_engagewild, format_engagewild_report

    result = evaluate_engagewild(npz, "train")
    lines = format_engagewild_report(result).splitlines()
    assert lines[-1] == f"mse={result['mse']:.4f}"
    assert result["n"] == 146 and result["mse"] < 0.07


def test_engagewild_evaluation_without_labels_is_a_clear_error():
    npz = require_shared("engagewild/engagewild_train_test.npz")
    from engagement.errors import ConfigError
    from engagement.temporal.evaluate import evaluate_engagewild

    with pytest.raises(ConfigError, match="y_test"):
        evaluate_engagewild(npz, "test")


@pytest.mark.slow
def test_training_is_seeded_and_cross_validates(tmp_path):
    pytest.importorskip("torch")
    npz = require_shared("engagewild/engagewild_train_test.npz")
    from engagement.training.temporal import TrainConfig, train_temporal

    cfg = TrainConfig(epochs=5, hidden=4)
    a = train_temporal(npz, None, seed=3, folds=2, config=cfg, log=lambda *_: None)
    b = train_temporal(npz, None, seed=3, folds=2, config=cfg, log=lambda *_: None)
    assert a["fold_mse"] == b["fold_mse"] and len(a["fold_mse"]) == 2
    assert 0 < a["cv_mse_mean"] < 0.2
    assert len(a["ensemble"].members) == 2
    assert not any(m.gru.weight_ih_l0[:, N_ATTENTION:N_INPUTS].abs().sum() for m in a["ensemble"].members)

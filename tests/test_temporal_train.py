"""Temporal training/export (needs torch) and the engagewild evaluation on the shared data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared
from engagement.temporal.features import INPUT_NAMES, N_INPUTS
from engagement.temporal.model import DEFAULT_MODEL, TemporalModel


@pytest.mark.parametrize("kind", ["linear", "gru"])
def test_export_streaming_matches_torch_and_registry_merges(tmp_path, kind):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from engagement.app.training.temporal_export import check_streaming, export_onnx
    from engagement.app.training.temporal_nets import MODEL_NAME, Ensemble, TrainConfig, new_member

    torch.manual_seed(0)
    (tmp_path / "models.json").write_text(json.dumps({"expression-cnn.v1": {"file": "e.onnx", "sha256": "ab"}}))
    cfg = TrainConfig(kind=kind, hidden=3)
    f = len(cfg.inputs)
    members = [new_member(cfg, np.full(f, -2.0), np.ones(f)) for _ in range(2)]
    with torch.no_grad():  # random weights, so the state matters
        for m in members:
            for p in m.parameters():
                p.add_(0.5 * torch.randn_like(p))
    ens = Ensemble(members).eval()
    report = {"norm_mean": [], "norm_std": [], "label_shift_cv": {"model": {"mean": 0.0}}}
    out = export_onnx(ens, tmp_path, report, cfg)
    assert out["onnx_vs_torch_max_abs_diff"] <= 1e-4
    reg = json.loads((tmp_path / "models.json").read_text())
    assert reg["expression-cnn.v1"] == {"file": "e.onnx", "sha256": "ab"}
    assert reg[MODEL_NAME]["sha256"] == out["sha256"]
    # A long sequence with gaps, streamed through ONNX Runtime and through the runtime wrapper.
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(0.1, 0.1, (3, 40, N_INPUTS))).astype(np.float32)
    m = (rng.random(x.shape) > 0.2).astype(np.float32)
    m[:, 10:14] = 0
    cols = [INPUT_NAMES.index(n) for n in cfg.inputs]
    assert check_streaming(ens, tmp_path / f"{MODEL_NAME}.onnx", (x[..., cols], m[..., cols])) <= 1e-4
    model = TemporalModel.load(MODEL_NAME, models_dir=tmp_path)
    assert model.input_names == cfg.inputs
    with torch.no_grad():
        h0 = torch.zeros(2, 3, members[0].hidden)
        ref = ens(torch.from_numpy(x[..., cols]), torch.from_numpy(m[..., cols]), h0)
    np.testing.assert_allclose(model.run(x, m).score, ref[0].numpy(), atol=1e-4)
    # Segments without a face hold the state and the score.
    out_ = model.run(x, m)
    np.testing.assert_allclose(out_.score[:, 10:14], out_.score[:, 9:10].repeat(4, 1), atol=1e-6)


def test_linear_model_is_monotone_in_every_input():
    """The shipped kind's weights are <= 0 on inputs that all grow with inattention."""
    torch = pytest.importorskip("torch")
    from engagement.app.training.temporal_nets import V2_INPUTS, StreamingLinear

    net = StreamingLinear(V2_INPUTS, np.zeros(len(V2_INPUTS)), np.ones(len(V2_INPUTS)), decay=0.9)
    with torch.no_grad():
        net.raw_w.copy_(torch.linspace(-5, 5, len(V2_INPUTS)))
    assert (net.weights() <= 0).all()


def test_label_shift_splits_hold_out_more_extreme_labels():
    pytest.importorskip("torch")
    npz = require_shared("engagewild/engagewild_train_test.npz")
    from engagement.app.training.temporal import label_shift_splits

    y = np.load(npz, allow_pickle=False)["y_train"].astype(np.float64)
    splits = label_shift_splits(y, 3, seed=0)
    for test in splits:
        train = np.setdiff1d(np.arange(len(y)), test)
        extreme = lambda v: np.mean((v == 0) | (v == 1))  # noqa: E731
        assert extreme(y[test]) > 2 * extreme(y[train])
        # Predicting the training mean is as poor there as on the official validation split (~0.095).
        assert np.mean((y[test] - y[train].mean()) ** 2) == pytest.approx(0.095, abs=0.005)
    assert not np.array_equal(splits[0], splits[1])


def test_v2_recipe_beats_the_mean_predictor_on_label_shift_hold_outs():
    """Held-out folds whose labels are more extreme than the training folds' (the shift that sank
    v1 on the validation split): the model must beat predicting the training mean on each, and
    by a clear margin on average."""
    pytest.importorskip("torch")
    npz = require_shared("engagewild/engagewild_train_test.npz")
    from engagement.app.training.temporal import train_temporal

    report = train_temporal(npz, None, seed=1, folds=0, repeats=4, log=lambda *_: None)
    cv = report["label_shift_cv"]
    model, baseline = np.array(cv["model"]["per_split"]), np.array(cv["mean_predictor"]["per_split"])
    assert (model < baseline).all()
    assert model.mean() <= 0.8 * baseline.mean()


def test_shipped_model_card_states_its_cross_validation():
    import onnxruntime as ort

    from engagement.core.config import models_dir
    from engagement.core.registry import resolve_model

    path = resolve_model(DEFAULT_MODEL)
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    cv = json.loads(meta["cv"])["label_shift_cv"]
    assert cv["model"]["mean"] < cv["mean_predictor"]["mean"]
    card = (models_dir() / f"{DEFAULT_MODEL}.MODEL_CARD.md").read_text()
    assert f"{cv['model']['mean']:.4f} ± {cv['model']['std']:.4f}" in card
    assert f"{cv['mean_predictor']['mean']:.4f}" in card
    assert "does not use" in card and "expression" in card


def test_engagewild_evaluation_last_line_is_mse():
    npz = require_shared("engagewild/engagewild_train_test.npz")
    from engagement.temporal.evaluate import evaluate_engagewild, format_engagewild_report

    result = evaluate_engagewild(npz, "train")
    lines = format_engagewild_report(result).splitlines()
    assert lines[-1] == f"mse={result['mse']:.4f}"
    assert result["n"] == 146 and result["model"] == DEFAULT_MODEL
    # The shipped models were trained on these very videos, so their MSE here says nothing of
    # quality: the held-out test below checks that.
    v1 = evaluate_engagewild(npz, "train", model_name="engagement-gru.v1")
    assert v1["model"] == "engagement-gru.v1" and v1["n"] == 146
    assert result["mean_baseline_mse"] == v1["mean_baseline_mse"]


def test_engagewild_evaluation_on_held_out_videos_beats_the_training_mean(tmp_path):
    """Train the shipped recipe on four fifths of the labelled videos, export it, and score it
    with `evaluate_engagewild` on the fifth it never saw: it must beat predicting the training
    mean there (no labelled split is held out from the shipped model, so one is made here)."""
    pytest.importorskip("torch")
    npz = require_shared("engagewild/engagewild_train_test.npz")
    from engagement.app.training.temporal import stratified_folds, train_temporal
    from engagement.app.training.temporal_nets import MODEL_NAME
    from engagement.temporal.evaluate import evaluate_engagewild

    with np.load(npz, allow_pickle=False) as d:
        y = d["y_train"]
        held = stratified_folds(y.astype(np.float64), 5, seed=0)[0]
        seen = np.setdiff1d(np.arange(len(y)), held)
        arrays = {f"of_seg{s}_{part}": d[f"of_seg{s}_train"][rows]
                  for s in (15, 21) for part, rows in (("train", seen), ("heldout", held))}
    split = tmp_path / "split.npz"
    np.savez(split, y_train=y[seen], y_heldout=y[held], **arrays)
    train_temporal(split, tmp_path, seed=0, folds=0, repeats=0, log=lambda *_: None)
    result = evaluate_engagewild(split, "heldout", models_dir=tmp_path, model_name=MODEL_NAME)
    assert result["n"] == len(held) > 20
    training_mean_mse = float(np.mean((y[held].astype(np.float64) - y[seen].mean()) ** 2))
    assert result["mse"] < 0.75 * training_mean_mse, (result["mse"], training_mean_mse)  # measured 0.033 vs 0.062


def test_engagewild_evaluation_without_labels_is_a_clear_error():
    npz = require_shared("engagewild/engagewild_train_test.npz")
    from engagement.core.errors import ConfigError
    from engagement.temporal.evaluate import evaluate_engagewild

    with pytest.raises(ConfigError, match="y_test"):
        evaluate_engagewild(npz, "test")


def test_training_command_rejects_bad_input(tmp_path, capsys):
    pytest.importorskip("torch")
    from engagement.cli.main import main

    assert main(["train", "temporal", "--data", str(tmp_path / "missing.npz")]) == 2
    assert capsys.readouterr().err.startswith("error: training data not found")
    npz = tmp_path / "x.npz"
    npz.write_bytes(b"")
    assert main(["train", "temporal", "--data", str(npz), "--decay", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: decay")
    assert main(["train", "temporal", "--data", str(npz), "--no-export"]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot read {npz}")


def _random_weight_mse(npz, cfg, seeds=(0, 1, 2)) -> float:
    """MSE of untrained members (initial weights shaken by noise, the data's own normaliser) on
    all training videos, averaged over seeds: what the architecture gives before it learns."""
    import torch

    from engagement.app.training.temporal import fit_normaliser, load_engagewild, predict_final, select
    from engagement.app.training.temporal_nets import new_member

    xs, ms, y = load_engagewild(npz)
    xs, ms = select(xs, cfg.inputs), select(ms, cfg.inputs)
    mean, std = fit_normaliser(xs, ms, cfg.inputs)
    errors = []
    for seed in seeds:
        torch.manual_seed(seed)
        net = new_member(cfg, mean, std)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.5 * torch.randn_like(p))
        pred = np.mean([predict_final(net, x, m) for x, m in zip(xs, ms)], axis=0)
        errors.append(float(np.mean((pred - y) ** 2)))
    return float(np.mean(errors))


@pytest.mark.slow
@pytest.mark.parametrize("kind, epochs", [("linear", 5), ("gru", 80)])
def test_training_is_seeded_and_cross_validates(tmp_path, kind, epochs):
    """Seeded, and better than both baselines computed here: the training mean (in the same folds)
    and random weights of the same architecture. The GRU needs more epochs than the linear
    model to get there (measured: 5 epochs left it at the mean predictor's MSE)."""
    pytest.importorskip("torch")
    npz = require_shared("engagewild/engagewild_train_test.npz")
    from engagement.app.training.temporal import train_temporal
    from engagement.app.training.temporal_nets import TrainConfig

    cfg = TrainConfig(kind=kind, epochs=epochs, hidden=4, members=2)
    a = train_temporal(npz, None, seed=3, folds=2, repeats=2, config=cfg, log=lambda *_: None)
    b = train_temporal(npz, None, seed=3, folds=2, repeats=2, config=cfg, log=lambda *_: None)
    assert a["stratified_cv"]["model"]["per_split"] == b["stratified_cv"]["model"]["per_split"]
    assert len(a["label_shift_cv"]["model"]["per_split"]) == 2
    assert len(a["ensemble"].members) == 2
    cv = a["stratified_cv"]
    # Measured: linear 0.045 and GRU 0.054 against 0.062 for the mean predictor and about 0.07
    # for random weights; a model that learned nothing lands at or above the mean predictor.
    assert cv["model"]["mean"] <= 0.92 * cv["mean_predictor"]["mean"]
    assert cv["model"]["mean"] <= 0.92 * _random_weight_mse(npz, cfg)
    assert a["label_shift_cv"]["model"]["mean"] < a["label_shift_cv"]["mean_predictor"]["mean"]

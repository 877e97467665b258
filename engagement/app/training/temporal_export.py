"""Export a trained temporal ensemble to ONNX with its metadata, check that the streamed graph
matches torch, and register it in models.json (training only)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import torch

from engagement.app.training.temporal_nets import (
    CARD_CITATIONS,
    DATA_CITATION,
    LEVEL_VALUES,
    LOG_EPS,
    MODEL_NAME,
    MODEL_VERSION,
    SCREEN_CONE,
    SHARE_EPS,
    SHARE_INPUTS,
    Ensemble,
    TrainConfig,
)
from engagement.core.registry import InputSpec, ModelRecord, register, sha256_file
from engagement.temporal.features import BASELINE_MIN_S, BASELINE_S, ENGAGEWILD_DIMS, HOP_S, MIN_PRESENT_S, SEGMENT_S
from engagement.temporal.model import LEVEL_LABELS


def _metadata(report: dict, cfg: TrainConfig, n_members: int, hidden: int) -> dict[str, str]:
    cv = {k: report[k] for k in ("label_shift_cv", "stratified_cv") if k in report}
    return {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "kind": cfg.kind,
        "input_names": json.dumps(list(cfg.inputs)),
        "trained_inputs": json.dumps(list(cfg.inputs)),
        "uses_expression": "false",
        "engagewild_dims": json.dumps({k: list(v) for k, v in ENGAGEWILD_DIMS.items() if k in cfg.inputs}),
        "normalisation": json.dumps(
            {"in_graph": True, "log_eps": LOG_EPS, "share_eps": SHARE_EPS,
             "share_inputs": [n for n in cfg.inputs if n in SHARE_INPUTS],
             "mean": report.get("norm_mean"), "std": report.get("norm_std"),
             "formula": "inside the graph: z = (log(1 - clip(v,0,1) + share_eps) - mean) / std for share_inputs, "
                        "(log(max(v,0) + log_eps) - mean) / std otherwise; z = 0 where mask = 0. "
                        "Feed raw segment statistics."}
        ),
        "level_values": json.dumps(list(LEVEL_VALUES)),
        "members": str(n_members),
        "hidden": str(hidden),
        "segment_s": str(SEGMENT_S),
        "hop_s": str(HOP_S),
        "min_present_s": str(MIN_PRESENT_S),
        "baseline_s": str(BASELINE_S),
        "baseline_min_s": str(BASELINE_MIN_S),
        "screen_cone_rad": json.dumps(list(SCREEN_CONE)),
        "cv": json.dumps(cv),
        "train_config": json.dumps(asdict(cfg)),
        "data_citation": DATA_CITATION,
    }


def export_onnx(ensemble: Ensemble, out: Path, report: dict, cfg: TrainConfig,
                check_inputs: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Write models/<MODEL_NAME>.onnx with metadata and register it in models.json (merging)."""

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{MODEL_NAME}.onnx"
    m, f, hidden = len(ensemble.members), len(cfg.inputs), ensemble.members[0].hidden
    torch.onnx.export(
        ensemble,
        (torch.zeros(1, 3, f), torch.ones(1, 3, f), torch.zeros(m, 1, hidden)),
        str(path),
        input_names=["x", "mask", "h0"],
        output_names=["score", "levels", "uncertainty", "hN"],
        dynamic_axes={
            "x": {0: "batch", 1: "time"},
            "mask": {0: "batch", 1: "time"},
            "h0": {1: "batch"},
            "score": {0: "batch", 1: "time"},
            "levels": {0: "batch", 1: "time"},
            "uncertainty": {0: "batch", 1: "time"},
            "hN": {1: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(path))
    for key, value in _metadata(report, cfg, m, hidden).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    max_diff = check_streaming(ensemble, path, check_inputs)
    if max_diff > 1e-4:
        raise RuntimeError(f"exported model differs from torch by {max_diff:.2e} (> 1e-4); not registered")
    digest = sha256_file(path)
    register(out, ModelRecord(
        name=MODEL_NAME, version=MODEL_VERSION, kind="temporal", format="onnx", file=path.name, sha256=digest,
        card=f"{MODEL_NAME}.MODEL_CARD.md", labels=LEVEL_LABELS,
        input=InputSpec(("batch", "time", f), "float32", "(batch, time, features) raw per-segment statistics with a "
                        "same-shaped mask; normalisation inside the graph", tuple(cfg.inputs)),
        data_citation=CARD_CITATIONS,
    ))
    return {"onnx": str(path), "sha256": digest, "onnx_vs_torch_max_abs_diff": max_diff}


@torch.no_grad()
def check_streaming(ensemble: Ensemble, path: Path, inputs: tuple[np.ndarray, np.ndarray] | None = None,
                    seed: int = 0) -> float:
    """Largest |ONNX Runtime fed one step at a time (state carried) - torch on whole sequences|
    over score, levels and uncertainty. Uses `inputs` (x, mask) if given, plus random sequences
    with random gaps (whole segments and single inputs missing)."""
    import onnxruntime as ort  # heavy; only this check runs the exported graph

    rng = np.random.default_rng(seed)
    f = ensemble.members[0].n_inputs
    x = np.abs(rng.normal(0.1, 0.1, (8, 21, f))).astype(np.float32)
    m = (rng.random(x.shape) > 0.1).astype(np.float32)
    m[rng.random((8, 21)) < 0.2] = 0.0
    cases = [(x, m)] + ([inputs] if inputs is not None else [])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    members, hidden = len(ensemble.members), ensemble.members[0].hidden
    for cx, cm in cases:
        cx, cm = np.asarray(cx, np.float32), np.asarray(cm, np.float32)
        ref = ensemble(torch.from_numpy(cx), torch.from_numpy(cm), torch.zeros(members, len(cx), hidden))
        h = np.zeros((members, len(cx), hidden), dtype=np.float32)
        for step in range(cx.shape[1]):
            score, levels, unc, h = session.run(None, {"x": cx[:, step : step + 1], "mask": cm[:, step : step + 1], "h0": h})
            for a, b in ((score, ref[0]), (levels, ref[1]), (unc, ref[2])):
                worst = max(worst, float(np.abs(a[:, 0] - b[:, step].numpy()).max()))
    return worst

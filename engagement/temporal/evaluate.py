"""Score the shipped temporal model on Engagement-in-the-Wild arrays (ONNX Runtime only).

`engagement evaluate engagewild NPZ --split SPLIT [--model NAME]` reads of_seg15_<split>,
of_seg21_<split> and y_<split>; each video's prediction is the mean of the final scores over the
seg15 and seg21 sequences (the same rule as the cross-validation in training). The on-screen
share is computed with the screen cone recorded in the model. The report's last line is exactly
`mse=<value>`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engagement.core.errors import ConfigError
from engagement.temporal.features import engagewild_inputs
from engagement.temporal.model import DEFAULT_MODEL, TemporalModel

# Models without a recorded screen cone (engagement-gru.v1) do not read the on-screen share;
# any cone gives them the same inputs.
_NO_CONE = (1.0, 1.0)


def predict_engagewild(model: TemporalModel, arrays: list[np.ndarray]) -> np.ndarray:
    """Per-video score: mean over the given segmentations of the score after the last segment."""
    preds = []
    for arr in arrays:
        x, mask = engagewild_inputs(arr, model.screen_cone or _NO_CONE)
        preds.append(model.run(x, mask).score[:, -1].astype(np.float64))
    return np.mean(preds, axis=0)


def evaluate_engagewild(npz: Path, split: str, models_dir: Path | None = None, model_name: str = DEFAULT_MODEL) -> dict:
    """MSE (and more) of the registered model `model_name` on one split of an engagewild .npz."""
    npz = Path(npz)
    if not npz.is_file():
        raise ConfigError(f"no such file: {npz}")
    with np.load(npz, allow_pickle=False) as d:
        keys = [f"of_seg{s}_{split}" for s in (15, 21) if f"of_seg{s}_{split}" in d.files]
        if not keys:
            raise ConfigError(f"{npz} has no of_seg15_{split} or of_seg21_{split} array")
        if f"y_{split}" not in d.files:
            raise ConfigError(f"{npz} has no labels y_{split}: cannot compute an MSE for split {split!r}")
        arrays = [d[k] for k in keys]
        y = d[f"y_{split}"].astype(np.float64)
    if any(len(a) != len(y) for a in arrays):
        raise ConfigError(f"{npz}: arrays of split {split!r} have different numbers of videos")
    model = TemporalModel.load(model_name, models_dir)
    pred = predict_engagewild(model, arrays)
    err = (pred - y) ** 2
    level_true = np.rint(y * 3).astype(int)
    level_pred = np.clip(np.rint(pred * 3), 0, 3).astype(int)
    return {
        "split": split,
        "n": int(len(y)),
        "inputs": keys,
        "model": model.name,
        "version": model.version,
        "mse": float(err.mean()),
        "mae": float(np.abs(pred - y).mean()),
        "mean_baseline_mse": float(((y - y.mean()) ** 2).mean()),
        "level_accuracy": float((level_true == level_pred).mean()),
    }


def format_engagewild_report(result: dict) -> str:
    """Human-readable lines; the last one is exactly `mse=<value>`."""
    lines = [
        f"model {result['model']} v{result['version']} on split {result['split']!r}: {result['n']} videos "
        f"({', '.join(result['inputs'])})",
        f"mae={result['mae']:.4f} level_accuracy={result['level_accuracy']:.3f} "
        f"(predicting this split's own mean would give mse={result['mean_baseline_mse']:.4f})",
        f"mse={result['mse']:.4f}",
    ]
    return "\n".join(lines)

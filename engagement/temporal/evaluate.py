"""Score the shipped temporal model on Engagement-in-the-Wild arrays (ONNX Runtime only).

`engagement evaluate engagewild NPZ --split SPLIT` reads of_seg15_<split>, of_seg21_<split> and
y_<split>; each video's prediction is the mean of the final scores over the seg15 and seg21
sequences (the same rule as the cross-validation in training). The report's last line is
exactly `mse=<value>`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engagement.errors import ConfigError
from engagement.temporal.features import engagewild_inputs
from engagement.temporal.model import TemporalModel


def predict_engagewild(model: TemporalModel, arrays: list[np.ndarray]) -> np.ndarray:
    """Per-video score: mean over the given segmentations of the score after the last segment."""
    preds = []
    for arr in arrays:
        x, mask = engagewild_inputs(arr)
        mask = model.effective_mask(mask, use_expression=False)
        preds.append(model.run(x, mask).score[:, -1].astype(np.float64))
    return np.mean(preds, axis=0)


def evaluate_engagewild(npz: Path, split: str, models_dir: Path | None = None) -> dict:
    """MSE (and more) of the registered model on one split of an engagewild .npz."""
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
    model = TemporalModel.load(models_dir=models_dir)
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


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m engagement.temporal.evaluate")
    ap.add_argument("npz", type=Path)
    ap.add_argument("--split", default="train")
    ap.add_argument("--models-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    print(format_engagewild_report(evaluate_engagewild(args.npz, args.split, args.models_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Score the shipped expression model on a FER2013-format npz (ONNX Runtime + numpy only).

The npz holds `pixels` (N,48,48) uint8, `usage` (N,) str (official split name per row) and
`fer_label` (N,) int (0 Angry ... 6 Neutral), like ../shared/data/fer2013. The pixels are already
FER2013-framed, so they go to the model as they are (no align_face).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engagement.core.errors import EngagementError
from engagement.vision.expression import DEFAULT_MODEL, ExpressionModel


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int, columns: int | None = None) -> np.ndarray:
    """(k, columns) counts, rows true class, columns predicted (extra columns: outcomes such as
    "no face found" that are no class)."""
    cm = np.zeros((k, columns or k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def class_scores(cm: np.ndarray, labels: tuple[str, ...] | list[str]) -> dict:
    """Per-class recall/precision/F1 and macro-F1 from a (k, k[+extra]) confusion matrix.

    Extra columns count toward a class's support (so they lower its recall) but are no
    prediction of any class (so they never lower precision).
    """
    k = len(labels)
    tp = np.diag(cm[:, :k]).astype(float)
    support = cm.sum(1)
    recall = tp / np.maximum(support, 1)
    precision = tp / np.maximum(cm[:, :k].sum(0), 1)
    denom = precision + recall
    f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    # Macro-F1 over the classes present in the data: an absent class has no defined recall.
    present = support > 0
    return {
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "recall": {lab: float(r) for lab, r, p in zip(labels, recall, present) if p},
        "precision": {lab: float(v) for lab, v in zip(labels, precision)},
        "f1": {lab: float(v) for lab, v, p in zip(labels, f1, present) if p},
        "support": {lab: int(s) for lab, s in zip(labels, support)},
    }


def _read_split(npz: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        z = np.load(npz, allow_pickle=False)
    except FileNotFoundError:
        raise EngagementError(f"npz not found: {npz}") from None
    except (OSError, ValueError) as e:
        raise EngagementError(f"cannot read {npz} as an npz: {e}") from None
    with z:
        missing = {"pixels", "usage", "fer_label"} - set(z.files)
        if missing:
            raise EngagementError(f"{npz} lacks arrays {sorted(missing)} (FER2013 format: pixels, usage, fer_label)")
        usage = z["usage"]  # each array read once: every z[...] access decompresses again
        mask = usage == split
        if not mask.any():
            raise EngagementError(f"split {split!r} has no rows in {npz} (present: {', '.join(sorted(set(usage.tolist())))})")
        pixels = z["pixels"][mask]
        labels = z["fer_label"][mask].astype(np.int64)
    if pixels.ndim != 3 or pixels.dtype != np.uint8:
        raise EngagementError(f"{npz}: pixels must be (N,48,48) uint8, got {pixels.shape} {pixels.dtype}")
    return pixels, labels


def evaluate_fer2013(
    npz: Path,
    split: str = "PublicTest",
    models_dir: Path | None = None,
    name: str = DEFAULT_MODEL,
    threads: int = 1,
) -> dict:
    """Accuracy, macro-F1, per-class recall/precision/F1 and confusion matrix of model `name`."""
    model = ExpressionModel.load(name, models_dir, threads=threads)
    pixels, y = _read_split(Path(npz), split)
    k = len(model.labels)
    if y.min() < 0 or y.max() >= k:
        raise EngagementError(f"{npz}: fer_label must lie in 0..{k - 1}")
    probs = model.predict(pixels, batch_size=256)
    pred = probs.argmax(1)
    cm = confusion(y, pred, k)
    return {
        "model": name,
        "version": model.version,
        "sha256": model.sha256,
        "npz": str(npz),
        "split": split,
        "n": int(len(y)),
        "labels": list(model.labels),
        "accuracy": float(np.trace(cm) / len(y)),
        **class_scores(cm, model.labels),
        "confusion": cm.tolist(),
    }


def class_table(result: dict) -> list[str]:
    """Support/recall/precision/F1 per class present (the `class_scores` fields of `result`)."""
    lines = [f"{'class':<10}{'support':>8}{'recall':>8}{'prec.':>8}{'F1':>8}"]
    for lab in result["labels"]:
        if lab in result["recall"]:
            lines.append(
                f"{lab:<10}{result['support'][lab]:>8}{result['recall'][lab]:>8.4f}"
                f"{result['precision'][lab]:>8.4f}{result['f1'][lab]:>8.4f}"
            )
    return lines


def confusion_lines(labels: list[str], cm: list[list[int]], extra_columns: tuple[str, ...] = ()) -> list[str]:
    heads = [lab[:3] for lab in labels] + list(extra_columns)
    lines = ["confusion (rows true, columns predicted): " + " ".join(heads)]
    for lab, row in zip(labels, cm):
        lines.append(f"  {lab[:3]:<4}" + "".join(f"{v:>6}" for v in row))
    return lines


def model_line(result: dict) -> str:
    """The first line of an expression report: which model file was scored."""
    return f"model {result['model']} (version {result['version']}, sha256 {result['sha256'][:12]}...)"


def figures(result: dict, *keys: str) -> list[str]:
    """`key=value` lines, four decimals: the form scripts read from a report's last lines."""
    return [f"{key}={result[key]:.4f}" for key in keys]


def scores_lines(result: dict, extra_columns: tuple[str, ...] = (), notes: tuple[str, ...] = ()) -> list[str]:
    """Per-class table, confusion matrix (with `extra_columns`), `notes` on it, then macro_f1."""
    return [
        *class_table(result),
        *confusion_lines(result["labels"], result["confusion"], extra_columns),
        *notes,
        *figures(result, "macro_f1"),
    ]


def format_fer2013_report(result: dict) -> str:
    """Human-readable report; the LAST line is exactly `accuracy=<value>` for scripts."""
    return "\n".join([
        model_line(result),
        f"data {result['npz']} split {result['split']}: {result['n']} faces",
        *scores_lines(result),
        *figures(result, "accuracy"),
    ])

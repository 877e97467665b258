"""Angry, Disgust and Fear: what re-weighting the CNN, or adding the landmarker's blendshapes, does
to per-class recall on PublicTest in the product's framing.

    python benchmarks/expression_fusion.py [--train-faces 9000] [--model expression-cnn.v4]

Every face goes through the product's path (x4 upscale, Face Landmarker, `align_face`); a face
the landmarker misses is left out. A seeded sample of `--train-faces` Training faces fits each
classifier; the PublicTest faces the landmarker finds score it (FER2013 PrivateTest is never
read). Rows:
- the CNN alone; the CNN with FER2013's class priors divided out (log p - log prior);
- a multinomial logistic regression on the 51 blendshape scores alone;
- one on [log p of the CNN, blendshapes] (fusion), and, as its control, one on log p alone:
  what fusion gains over the control is what the blendshapes add;
- each regression plain and with class-balanced weights.
The CNN was trained on these Training faces, so its probabilities there are more confident than
on new faces; a regression on them learns too much trust in the CNN, not too little.
Needs torch (the [train] extra) for the regressions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engagement.core.config import shared_data_dir  # noqa: E402
from engagement.vision.expression import DEFAULT_MODEL, ExpressionModel, InputError, align_face  # noqa: E402
from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions  # noqa: E402

SHORT = ("Ang", "Dis", "Fea", "Hap", "Sad", "Sur", "Neu")


def frame_faces(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops (N,48,48) uint8, blendshapes (N,51), found (N,) bool) through the product's path."""
    from engagement.app.training.expression_align import DETECTION_CONFIDENCE, UPSCALE

    options = LandmarkerOptions(max_faces=1, static_images=True, min_detection_confidence=DETECTION_CONFIDENCE)
    crops, shapes, found = np.zeros_like(pixels), np.zeros((len(pixels), 51), np.float32), np.zeros(len(pixels), bool)
    with FaceLandmarker.from_options(options) as landmarker:
        for i, face in enumerate(pixels):
            side = face.shape[0] * UPSCALE
            big = cv2.cvtColor(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
            faces = landmarker.detect_faces(big)
            if not faces or faces[0].blendshapes is None:
                continue
            try:
                crops[i] = align_face(big, faces[0].landmarks)
            except InputError:
                continue
            shapes[i], found[i] = faces[0].blendshapes, True
    return crops, shapes, found


def fit_logistic(x: np.ndarray, y: np.ndarray, balanced: bool, l2: float = 1e-3):
    """A standardised multinomial logistic regression (L-BFGS); returns x -> log-probabilities."""
    import torch

    xt, t = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    mu, sd = xt.mean(0), xt.std(0) + 1e-6
    w = torch.zeros(x.shape[1], 7, requires_grad=True)
    b = torch.zeros(7, requires_grad=True)
    counts = np.bincount(y, minlength=7)
    weight = torch.tensor(len(y) / (7 * np.maximum(counts, 1)), dtype=torch.float32) if balanced else None
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy((xt - mu) / sd @ w + b, t, weight=weight) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda z: torch.log_softmax((torch.tensor(z, dtype=torch.float32) - mu) / sd @ w + b, 1).numpy()


def row(name: str, scores: np.ndarray, y: np.ndarray) -> str:
    pred = scores.argmax(1)
    recall = [float(np.mean(pred[y == k] == k)) for k in range(7)]
    cells = " ".join(f"{r:5.3f}" for r in recall)
    return f"  {name:44s} {np.mean(pred == y):6.4f}  {cells}  {np.mean(recall):6.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "fer2013" / "fer2013_train_publictest.npz")
    ap.add_argument("--train-faces", type=int, default=9000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args(argv)
    with np.load(args.data) as z:
        usage, pixels, labels = z["usage"], z["pixels"], z["fer_label"].astype(np.int64)
    train = np.flatnonzero(usage == "Training")
    train = np.sort(np.random.default_rng(args.seed).choice(train, min(args.train_faces, len(train)), replace=False))
    test = np.flatnonzero(usage == "PublicTest")
    cnn = ExpressionModel.load(args.model, threads=1)
    sets = {}
    for name, idx in (("train", train), ("test", test)):
        crops, shapes, found = frame_faces(pixels[idx])
        probs = cnn.predict(crops[found], batch_size=256)
        sets[name] = (np.log(np.clip(probs, 1e-6, 1.0)), shapes[found], labels[idx][found])
    (lp_tr, bs_tr, y_tr), (lp_te, bs_te, y_te) = sets["train"], sets["test"]
    prior = np.bincount(labels[usage == "Training"], minlength=7) / np.sum(usage == "Training")
    print(f"{args.model}; fitted on {len(y_tr)} Training faces, scored on {len(y_te)} PublicTest faces "
          "(those the landmarker finds, in the product's framing)")
    print(f"  {'':44s} {'acc':>6s}  " + " ".join(f"{s:>5s}" for s in SHORT) + "  macro-recall")
    print(row("CNN", lp_te, y_te))
    print(row("CNN, priors divided out", lp_te - np.log(prior), y_te))
    for balanced in (False, True):
        tag = ", class-balanced" if balanced else ""
        print(row(f"blendshapes alone{tag}", fit_logistic(bs_tr, y_tr, balanced)(bs_te), y_te))
        fused = fit_logistic(np.hstack([lp_tr, bs_tr]), y_tr, balanced)
        print(row(f"fusion [log p, blendshapes]{tag}", fused(np.hstack([lp_te, bs_te])), y_te))
        print(row(f"control [log p] alone{tag}", fit_logistic(lp_tr, y_tr, balanced)(lp_te), y_te))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Soft targets from shipped expression models, for distilling them into one network.

An average of several networks (each with its mirror pass) is more accurate than any of them,
but it costs their sum at run time. Distillation trains one network to give the average's
probabilities: the average's view of each training face (how much of it is sad, how much
neutral) becomes part of the target. The teachers are shipped ONNX files run through the
product's own `ExpressionModel`, so their probabilities are exactly what the product would serve.

Their probabilities on the training faces are computed once per framing and cached in the
run's folder, keyed by the faces and the teachers' files: training never runs a teacher.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from engagement.app.training.expression_align import pixels_digest
from engagement.core.registry import resolve_model, sha256_file
from engagement.vision.expression import ExpressionModel


def teacher_probs(names: tuple[str, ...], pixels: np.ndarray, models_dir: Path | None = None,
                  threads: int = 2) -> np.ndarray:
    """(N, 48, 48) uint8 faces -> (N, 7) float32: the mean probabilities of the named models."""
    if not names:
        raise ValueError("a teacher needs at least one model name")
    total = None
    for name in names:
        t0 = time.time()
        model = ExpressionModel.load(name, models_dir, threads=threads)
        probs = model.predict(pixels, batch_size=256).astype(np.float64)
        total = probs if total is None else total + probs
        print(f"teacher {name}: {len(pixels)} faces in {time.time() - t0:.0f}s", flush=True)
    return (total / len(names)).astype(np.float32)


def teachers_digest(names: tuple[str, ...], pixels: np.ndarray, models_dir: Path | None = None) -> str:
    """sha256 over the faces and each teacher's file: the cache belongs to exactly these."""
    digest = hashlib.sha256(pixels_digest(pixels).encode())
    for name in names:
        digest.update(f"{name}:{sha256_file(resolve_model(name, models_dir))}".encode())
    return digest.hexdigest()


def cached_teacher_probs(names: tuple[str, ...], pixels: np.ndarray, cache: Path,
                         models_dir: Path | None = None) -> np.ndarray:
    """`teacher_probs` of `pixels`, computed once and kept in `cache` (an .npz)."""
    digest = teachers_digest(names, pixels, models_dir)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if "digest" in z.files and str(z["digest"]) == digest:
                return z["probs"]
        print(f"{cache} belongs to other faces or teachers: computing again", flush=True)
    probs = teacher_probs(names, pixels, models_dir)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez_compressed(tmp, probs=probs, digest=np.array(digest))
    tmp.replace(cache)  # a run killed mid-way leaves no half-written cache
    return probs

"""Per-face latency of the shipped expression model in ONNX Runtime on ONE thread.

    python benchmarks/expression_latency.py [--model expression-cnn.v1] [--models-dir models]

Prints milliseconds per face at batch 1 and batch 16 (the median of several timed rounds, so a
busy shared machine skews it less). Goal: <= 1 ms per face at batch 16.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engagement.vision.expression import DEFAULT_MODEL, ExpressionModel  # noqa: E402


def per_face_ms(model: ExpressionModel, batch: int, rounds: int, reps: int, seed: int = 0) -> float:
    crops = np.random.default_rng(seed).integers(0, 256, size=(batch, 48, 48), dtype=np.uint8)
    for _ in range(5):  # warm-up: first runs allocate and pick kernels
        model.predict(crops)
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            model.predict(crops)
        samples.append((time.perf_counter() - t) / reps / batch * 1000)
    return float(np.median(samples))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    model = ExpressionModel.load(args.model, args.models_dir, threads=1)
    size_mb = model.path.stat().st_size / 1e6
    print(f"model {args.model} ({size_mb:.2f} MB, tta={model.metadata.get('tta', '?')}), onnxruntime, 1 thread, "
          f"{os.cpu_count()} CPUs on the machine")
    for batch, reps in ((1, 50), (16, 5)):
        ms = per_face_ms(model, batch, args.rounds, reps)
        print(f"batch {batch:>2}: {ms:.3f} ms per face")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-face latency of expression models in ONNX Runtime on ONE thread, several compared at once.

    python benchmarks/expression_latency.py [--model expression-cnn.v1] [--model path/to/other.onnx ...]

Each --model is a registered name (checked by sha256) or an .onnx file (an experiment, loaded
without the registry). Prints milliseconds per face at batch 1 and batch 16: the median of
several rounds, where every round times each model in turn (in a rotating order), so the load
of a busy shared machine falls on all of them alike. The ratio to the first model is the median
of the per-round ratios. Wall time is what a user waits on an idle machine; the thread's CPU
time leaves out the time other processes held the core, so it stays close to the idle figure
on a busy one (ONNX Runtime with one thread computes in the calling thread). Goal: <= 1 ms per
face at batch 16.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engagement.core.errors import EngagementError  # noqa: E402
from engagement.vision.expression import DEFAULT_MODEL, ExpressionModel  # noqa: E402

BATCHES = ((1, 50), (16, 8))  # (batch size, predict calls per timed sample)


def load(spec: str, models_dir: Path | None) -> ExpressionModel:
    """A registered model by name, or any expression model file by path."""
    if spec.endswith(".onnx") or Path(spec).is_file():
        return ExpressionModel.from_file(Path(spec), threads=1)
    return ExpressionModel.load(spec, models_dir, threads=1)


def time_per_face(model: ExpressionModel, crops: np.ndarray, reps: int) -> tuple[float, float]:
    """Wall and thread-CPU milliseconds per face of `reps` predict calls on `crops`."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(reps):
        model.predict(crops)
    per_face = reps * len(crops) / 1000
    return (time.perf_counter() - wall) / per_face, (time.thread_time() - cpu) / per_face


def compare(models: list[ExpressionModel], batch: int, reps: int, rounds: int, seed: int = 0) -> np.ndarray:
    """(rounds, len(models), 2) wall and CPU ms per face, models interleaved within each round."""
    crops = np.random.default_rng(seed).integers(0, 256, size=(batch, 48, 48), dtype=np.uint8)
    for model in models:
        for _ in range(5):  # warm-up: first runs allocate and pick kernels
            model.predict(crops)
    samples = np.empty((rounds, len(models), 2))
    for r in range(rounds):
        for j in np.roll(np.arange(len(models)), -r):
            samples[r, j] = time_per_face(models[j], crops, reps)
    return samples


def describe(model: ExpressionModel) -> str:
    quant = "int8" if "quantization" in model.metadata else "fp32"
    return f"{model.path.stat().st_size / 1e6:.2f} MB, {quant}, tta={model.metadata.get('tta', '?')}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help=f"registered name or .onnx file (repeatable; default {DEFAULT_MODEL})")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args(argv)
    specs = args.model or [DEFAULT_MODEL]
    try:
        models = [load(spec, args.models_dir) for spec in specs]
    except EngagementError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"onnxruntime, 1 thread, {os.cpu_count()} CPUs on the machine, {args.rounds} interleaved rounds")
    width = max(len(s) for s in specs)
    for spec, model in zip(specs, models):
        print(f"  {spec:<{width}}  {describe(model)}")
    for batch, reps in BATCHES:
        samples = compare(models, batch, reps, args.rounds)
        median = np.median(samples, axis=0)
        ratio = np.median(samples / samples[:, :1], axis=0)
        print(f"batch {batch}: ms per face, wall and CPU (ratio to the first model)")
        for spec, (wall, cpu), (x_wall, x_cpu) in zip(specs, median, ratio):
            print(f"  {spec:<{width}}  wall {wall:7.3f} ({x_wall:.2f}x)  cpu {cpu:7.3f} ({x_cpu:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

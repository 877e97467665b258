"""What running the expression CNN at a per-face rate costs and changes, on a real clip.

    python benchmarks/expression_rate.py [--clip PATH] [--hz 5] [--rounds 3] [--model NAME]

On the same decoded frames, interleaved over rounds (median wall time each):
- MediaPipe alone (the landmarker on every frame): the floor;
- the vision stage with the CNN on every frame;
- the vision stage with the CNN at --hz per face;
and the change in the per-second expression means between the last two (mean and largest
absolute difference over seconds x classes, and how often the top class of a second differs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from clips import read_frames  # noqa: E402
from engagement.core.config import AnalysisOptions, shared_data_dir  # noqa: E402
from engagement.core.records import Frame  # noqa: E402
from engagement.temporal.windows import WindowAggregator  # noqa: E402
from engagement.vision.expression import DEFAULT_MODEL, ExpressionModel  # noqa: E402
from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions  # noqa: E402
from engagement.vision.stage import VisionStage  # noqa: E402


def mediapipe_alone(frames, fps) -> float:
    lm = FaceLandmarker.from_options(LandmarkerOptions(max_faces=8))
    t0 = time.perf_counter()
    for i, img in enumerate(frames):
        lm.detect(img, i * 1000.0 / fps)
    wall = time.perf_counter() - t0
    lm.close()
    return wall


def stage_run(frames, fps, hz, model_name) -> tuple[float, dict]:
    options = AnalysisOptions(expression_hz=hz)
    landmarker = FaceLandmarker.from_options(LandmarkerOptions(max_faces=options.max_faces))
    stage = VisionStage(options, landmarker, ExpressionModel.load(model_name))
    aggregator, windows = WindowAggregator(options.window_ms), []
    t0 = time.perf_counter()
    for i, img in enumerate(frames):
        frame = Frame(i * 1000.0 / fps, i, img)
        windows += aggregator.add(frame.t_ms, stage.measure(frame, stage.observe(frame)))
    windows += aggregator.flush()
    wall = time.perf_counter() - t0
    stage.close()
    return wall, {(w.track_id, w.second): np.asarray(w.expression) for w in windows if w.expression is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=shared_data_dir() / "videos" / "pyfeat" / "WolfgangLanger_Pexels.mp4")
    ap.add_argument("--hz", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args(argv)
    frames, fps = read_frames(args.clip)
    walls: dict[str, list[float]] = {"mediapipe": [], "every frame": [], f"{args.hz:g} Hz": []}
    means = {}
    for _ in range(args.rounds):
        walls["mediapipe"].append(mediapipe_alone(frames, fps))
        for label, hz in (("every frame", None), (f"{args.hz:g} Hz", args.hz)):
            wall, means[label] = stage_run(frames, fps, hz, args.model)
            walls[label].append(wall)
    floor = statistics.median(walls["mediapipe"])
    print(f"{args.clip.name}: {len(frames)} frames at {fps:.0f} fps, model {args.model}, {args.rounds} interleaved rounds")
    for label, w in walls.items():
        m = statistics.median(w)
        print(f"  {label:12s} {m:6.2f} s  {len(frames) / m:6.1f} fps  {m / floor:.2f}x MediaPipe alone")
    full, rated = means["every frame"], means[f"{args.hz:g} Hz"]
    keys = sorted(set(full) & set(rated))
    diff = np.abs(np.stack([full[k] for k in keys]) - np.stack([rated[k] for k in keys]))
    top = np.mean([full[k].argmax() != rated[k].argmax() for k in keys])
    print(f"  per-second expression means, every frame vs {args.hz:g} Hz over {len(keys)} face-seconds: "
          f"mean |diff| {diff.mean():.4f}, max {diff.max():.4f}, top class differs in {top:.1%} of seconds")
    return 0


if __name__ == "__main__":
    sys.exit(main())

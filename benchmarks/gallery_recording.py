"""A 5x5 gallery recording at 1920x1080: `engagement analyze` against its duration, and against
MediaPipe alone on the same tiles.

    python benchmarks/gallery_recording.py [--seconds 20] [--fps 25] [--rounds 3] [--sample-fps N]

A Zoom-like recording of 25 participants (two cameras off) is generated from the shared clips
(tests/meetings.py), 25 fps like a Zoom recording. Each round runs, in a rotating order, two
child processes on it:
- `mediapipe, per tile`: decode the recording at the same sampled rate and run one Face
  Landmarker per tile crop (VIDEO mode), the tiles cut where `analyze` cuts them: the floor;
- `analyze`: `engagement analyze` (layout found by itself, the gallery's default sample rate
  unless --sample-fps), consent recorded, into a throw-away SQLite file.
Printed: median wall time of each, `analyze` against the recording's duration (>= 1x: at least
real time) and against the floor (its ratio per round too). Whole processes, start-up included.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engagement.core.store import Store  # noqa: E402
from engagement.vision.meeting import GALLERY_SAMPLE_FPS  # noqa: E402
from meetings import write_meeting  # noqa: E402
from privacy.consent import attest  # noqa: E402

# The per-tile landmarkers as `analyze` sets them up, on the tiles its layout detector finds.
MEDIAPIPE_PER_TILE = """
import sys
from engagement.core.config import AnalysisOptions
from engagement.core.records import RunningMode
from engagement.vision.landmarks import FaceLandmarker
from engagement.vision.layout import opening_layout
from engagement.vision.sources import VideoFileSource
from engagement.vision.stage import landmarker_options
source = VideoFileSource(sys.argv[1], float(sys.argv[2]))
tiles = opening_layout(source.opening_images()).tiles
assert len(tiles) == 25, len(tiles)
options = landmarker_options(AnalysisOptions(), 1, RunningMode.VIDEO_FILE)
landmarkers = [FaceLandmarker.from_options(options) for _ in tiles]
for frame in source.frames():
    for lm, (x0, y0, x1, y1) in zip(landmarkers, tiles):
        lm.detect_faces(frame.image[y0:y1, x0:x1], frame.t_ms)
"""


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[:4])} ... failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sample-fps", type=float, default=None, help=f"default: the gallery's {GALLERY_SAMPLE_FPS:g}")
    args = ap.parse_args(argv)
    if args.seconds < 2 or args.fps < 1 or args.rounds < 1:
        print("error: --seconds must be >= 2, --fps and --rounds >= 1", file=sys.stderr)
        return 2
    rate = args.sample_fps or GALLERY_SAMPLE_FPS
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "gallery-5x5.mp4"
        write_meeting(video, lambda s: [(p, p not in (7, 18)) for p in range(25)], 25, args.seconds,
                      size=(1920, 1080), fps=args.fps)  # fmt: skip
        db = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        store = Store.open(db)
        attest(store, "bench", facilitator="benchmark", notice_version="bench", language="id", evidence="benchmark")
        store.close()
        analyze = [sys.executable, "-m", "engagement.cli.main", "analyze", str(video), "--session", "bench",
                   "--db", db, "--no-progress"]  # fmt: skip
        if args.sample_fps:
            analyze += ["--sample-fps", f"{args.sample_fps:g}"]
        runs = {"mediapipe, per tile": [sys.executable, "-c", MEDIAPIPE_PER_TILE, str(video), f"{rate:g}"],
                "analyze": analyze}  # fmt: skip
        walls: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for r in range(args.rounds):
            for name in names[r % 2 :] + names[: r % 2]:  # rotate who goes first
                walls[name].append(timed(runs[name]))
    floor = statistics.median(walls["mediapipe, per tile"])
    wall = statistics.median(walls["analyze"])
    paired = sorted(a / m for a, m in zip(walls["analyze"], walls["mediapipe, per tile"]))
    print(f"5x5 gallery 1920x1080, {args.seconds} s at {args.fps} fps, analysed at {rate:g} fps, "
          f"{args.rounds} interleaved rounds (medians, whole processes)")  # fmt: skip
    print(f"  mediapipe, per tile  wall {floor:6.2f} s")
    print(f"  analyze              wall {wall:6.2f} s   {args.seconds / wall:.2f}x real time   "
          f"{wall / floor:.2f}x mediapipe (per round {paired[0]:.2f}-{paired[-1]:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

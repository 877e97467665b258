"""What a whole `engagement analyze` run costs against MediaPipe alone on the same clip.

    python benchmarks/analyze_cost.py [--clip PATH] [--rounds 5] [--loops 1]

Each round runs, in a rotating order, three child processes on the same clip:
- `mediapipe`: decode the clip and run the Face Landmarker on every frame (the floor: what any
  face-based product pays);
- `analyze, no CNN`: `engagement analyze` under the `eu-ai-act` profile (no expression model);
- `analyze`: `engagement analyze` under `id-pdp`, the expression CNN on, at its default rate.
The analyses run on a session with recorded consent (so every face is measured) into a
throw-away SQLite file. Printed: the median wall time and child CPU time of each, their ratios
to the floor, and the range of each round's own wall-time ratio. Whole processes, start-up
included, because that is what a user waits on.
With `--loops N` the clip is first played N times over into one longer file (re-encoded, the
same file for all three): start-up then weighs as little as it does on a class recording of an
hour, and the ratio tends to what each frame costs.
Goal: `analyze` <= 1.25x MediaPipe alone.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engagement.core.config import shared_data_dir  # noqa: E402
from engagement.core.store import Store  # noqa: E402
from clips import write_repeated  # noqa: E402
from privacy.consent import attest  # noqa: E402

# The landmarker set up exactly as `analyze` sets it up, from the same default options.
MEDIAPIPE_ALONE = """
import sys
from engagement.core.config import AnalysisOptions
from engagement.core.records import RunningMode
from engagement.vision.landmarks import FaceLandmarker
from engagement.vision.sources import VideoFileSource
from engagement.vision.stage import landmarker_options
options = AnalysisOptions()
with FaceLandmarker.from_options(landmarker_options(options, options.max_faces, RunningMode.VIDEO_FILE)) as landmarker:
    for frame in VideoFileSource(sys.argv[1]).frames():
        landmarker.detect_faces(frame.image, frame.t_ms)
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one child process; exits if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[:4])} ... failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=shared_data_dir() / "videos" / "pyfeat" / "WolfgangLanger_Pexels.mp4")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loops", type=int, default=1, help="play the clip this many times over (a longer recording)")
    args = ap.parse_args(argv)
    if not args.clip.is_file():
        print(f"error: no clip at {args.clip}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        store = Store.open(db)
        attest(store, "bench", facilitator="benchmark", notice_version="bench", language="id", evidence="benchmark")
        store.close()
        clip = args.clip if args.loops <= 1 else write_repeated(args.clip, args.loops, Path(tmp) / "looped.mp4")
        analyze = [sys.executable, "-m", "engagement.cli.main", "analyze", str(clip), "--session", "bench",
                   "--db", db, "--no-progress"]
        runs = {
            "mediapipe": [sys.executable, "-c", MEDIAPIPE_ALONE, str(clip)],
            "analyze, no CNN": [*analyze, "--profile", "eu-ai-act"],
            "analyze": analyze,
        }
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        names = list(runs)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
                figures[name].append(timed(runs[name]))
    floor_wall = statistics.median(w for w, _ in figures["mediapipe"])
    floor_cpu = statistics.median(c for _, c in figures["mediapipe"])
    played = f" played {args.loops} times over" if args.loops > 1 else ""
    print(f"{args.clip.name}{played}, {args.rounds} interleaved rounds (medians; whole processes, start-up included)")
    for name, values in figures.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        # Each round's own ratio too: a machine that slows down for a while slows both runs of
        # a round, so the spread of these says how far one run's figure can be trusted.
        paired = sorted(w / f for (w, _), (f, _) in zip(values, figures["mediapipe"]))
        spread = f"   per round {paired[0]:.2f}-{paired[-1]:.2f}x" if name != "mediapipe" else ""
        print(f"  {name:16s} wall {wall:6.2f} s ({wall / floor_wall:.2f}x)   cpu {cpu:6.2f} s ({cpu / floor_cpu:.2f}x){spread}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

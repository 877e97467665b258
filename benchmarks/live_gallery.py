"""Live and gallery benchmark (a script, not a timed test). Run on one core:

    taskset -c 0 .venv/bin/python -m benchmarks.live_gallery [--compare] [--minutes 30] [--grid 3x3]

Parts (each prints its figures):
- compare: gallery detection strategies on a 3x3 grid at 1280x720 built from the real clips in
  ../shared/data/videos: per-tile landmarkers (what gallery.py does), one full-frame face mesh,
  and MediaPipe's full-range detector on the full frame; recall per tile-frame and ms per frame.
- fps: a 640x480 single face (VisionStage observe+measure) and a 3x3 gallery at 1280x720
  (GalleryVisionStage observe+measure), frames pre-decoded so decoding is not counted.
- live: the whole live loop (LiveCapture -> AnalysisPipeline, one flush a second -> SQLite) fed
  pre-decoded gallery frames with *synthetic* capture timestamps, faster than real time (the
  loop never waits for a wall clock that is not there). Capture-to-store latency is measured on
  a real-time-paced first minute instead, where capture times are wall-clock and honest.
  Peak RSS is read at 1, 10 and 30 simulated minutes.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

from benchmarks.live_simulated import SimulatedCapture  # noqa: E402
from engagement.app.live.capture import LiveCapture, LiveLoopOptions  # noqa: E402
from engagement.app.live.session import run_live  # noqa: E402
from engagement.core.config import AnalysisOptions, shared_data_dir  # noqa: E402
from engagement.core.records import Frame  # noqa: E402
from engagement.core.store import Store  # noqa: E402
from engagement.vision.gallery import GalleryLayout, GalleryVisionStage, compose_gallery  # noqa: E402
from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions  # noqa: E402
from engagement.vision.sources import FramesSource  # noqa: E402
from engagement.vision.stage import VisionStage  # noqa: E402
from privacy.consent import attest  # noqa: E402
from tests.clips import FACE_CLIPS, read_looped  # noqa: E402

NO_FACE_CLIP = "pyfeat/no_face.mp4"


def gallery_frames(cols: int, rows: int, size: tuple[int, int], n: int, empty_tile: int | None = None):
    """n gallery frames and, per frame, which tiles hold a face (ground truth by construction)."""
    videos = shared_data_dir() / "videos"
    layout = GalleryLayout(cols, rows, *size)
    clips = []
    for t in range(layout.n_tiles):
        if t == empty_tile:
            clips.append(read_looped(videos / NO_FACE_CLIP, n, 2))
        else:
            frames = read_looped(videos / FACE_CLIPS[t % len(FACE_CLIPS)], n + 3 * t, 2)[3 * t :]
            clips.append([cv2.flip(f, 1) for f in frames] if t >= len(FACE_CLIPS) else frames)
    out = [compose_gallery([c[i] for c in clips], layout) for i in range(n)]
    truth = [t != empty_tile for t in range(layout.n_tiles)]
    return layout, out, truth


def rss_mb() -> float:
    """Peak resident set size so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def compare(n: int = 30) -> None:
    layout, frames, truth = gallery_frames(3, 3, (1280, 720), n, empty_tile=4)
    opts = AnalysisOptions(expression=False)
    expected = sum(truth) * n

    stage = GalleryVisionStage(opts, layout)
    hits, t0 = 0, time.perf_counter()
    fp = 0
    for i, img in enumerate(frames):
        faces = stage.observe(Frame(i * 100.0, i, img))
        tiles = {stage.tile_of(f.track_id) for f in faces}
        hits += sum(1 for t in tiles if truth[t])
        fp += sum(1 for t in tiles if not truth[t])
    ms = (time.perf_counter() - t0) * 1000 / n
    stage.close()
    print(f"compare per-tile landmarkers : recall {hits / expected:.3f}  false tiles {fp}  {ms:.1f} ms/frame")

    landmarker = FaceLandmarker(LandmarkerOptions(max_faces=layout.n_tiles))
    hits, t0 = 0, time.perf_counter()
    for i, img in enumerate(frames):
        tiles = {layout.tile_of(*lm[:, :2].mean(axis=0)) for lm in landmarker.detect(img, i * 100.0)}
        hits += sum(1 for t in tiles if t is not None and truth[t])
    ms = (time.perf_counter() - t0) * 1000 / n
    landmarker.close()
    print(f"compare full-frame landmarker: recall {hits / expected:.3f}  {ms:.1f} ms/frame")
    # The full-range detector came inside mediapipe 0.10.21's wheel; the shipped bundle has only
    # the short-range one, which the full-frame landmarker above already runs.


def steady_fps(stage, frames: list[np.ndarray], step_ms: float) -> float:
    """Frames per second of observe+measure after the first frame (which runs the detector: not
    steady state); closes the stage."""
    stage.observe(Frame(0.0, 0, frames[0]))
    t0 = time.perf_counter()
    for i, img in enumerate(frames[1:], 1):
        frame = Frame(i * step_ms, i, img)
        stage.measure(frame, stage.observe(frame))
    rate = (len(frames) - 1) / (time.perf_counter() - t0)
    stage.close()
    return rate


def fps(n: int = 60) -> None:
    clip = read_looped(shared_data_dir() / "videos" / "liveportrait" / "d9.mp4", n)
    frames = [cv2.resize(f, (640, 480)) for f in clip]
    single = steady_fps(VisionStage.from_options(AnalysisOptions(expression=False, max_faces=1)), frames, 33.3)
    print(f"fps single face 640x480      : {single:.1f} fps (observe+measure, attention-only profile)")

    layout, gframes, _ = gallery_frames(3, 3, (1280, 720), n, empty_tile=None)
    gallery = steady_fps(GalleryVisionStage(AnalysisOptions(expression=False), layout), gframes, 100.0)
    print(f"fps gallery 3x3 1280x720     : {gallery:.1f} fps (9 faces, observe+measure)")


def live(minutes: float, grid: str, sim_fps: float) -> None:
    cols, rows = (int(v) for v in grid.split("x"))
    layout, gframes, _ = gallery_frames(cols, rows, (1280, 720), 40, empty_tile=None)
    tmp = Path(tempfile.mkdtemp(prefix="live-bench-"))
    os.environ["ENGAGEMENT_DATA_DIR"] = str(tmp)
    store = Store.open(f"sqlite:///{tmp / 'bench.db'}")
    attest(store, "bench", facilitator="bench", notice_version="v1", language="en", evidence="benchmark", actor="bench")

    # 1) real-time paced: honest capture-to-store latency (wall-clock capture times).
    paced = LiveCapture(FramesSource(gframes, 10.0, 20.0))
    result = run_live(store, paced, "bench", layout=layout, options=LiveLoopOptions(status=False, measure_latency=True))
    lat = np.array(result.latencies_s) if result.latencies_s else np.array([float("nan")])
    print(
        f"live latency (paced, 20 s)   : capture->store p50 {np.percentile(lat, 50):.2f} s  p95 {np.percentile(lat, 95):.2f} s"
        f"  ({len(lat)} frames; analysed {result.effective_fps:.1f} fps per face, dropped {result.dropped})"
    )
    # 2) simulated long run: synthetic timestamps at sim_fps analysed frames per second, no pacing.
    # Every per-second structure (windows, temporal state, rows, track spans) grows with the
    # simulated seconds, whatever the frame rate; the frame rate only sets how long it takes.
    marks = {1: None, 10: None, 30: None}
    marks = {m: None for m in marks if m <= minutes} | {minutes: None}

    def on_second(second: int) -> None:
        for m in marks:
            if marks[m] is None and second >= m * 60:
                marks[m] = (rss_mb(), current_rss_mb())

    sim = SimulatedCapture(gframes, sim_fps, minutes * 60.0)
    t0 = time.perf_counter()
    result = run_live(store, sim, "bench", layout=layout, options=LiveLoopOptions(status=False), on_second=on_second)
    wall = time.perf_counter() - t0
    marks[minutes] = marks[minutes] or (rss_mb(), current_rss_mb())
    figures = "  ".join(f"{m:g} min {v[0]:.0f} MB (now {v[1]:.0f})" for m, v in sorted(marks.items()))
    print(f"live memory (simulated {minutes:g} min, {grid} at {sim_fps:g} fps, {wall:.0f} s wall): peak RSS {figures}")
    print(f"live stored seconds          : {result.summary.seconds}")
    store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", action="store_true", help="only compare gallery detection strategies")
    parser.add_argument("--fps", action="store_true", help="only the fps figures")
    parser.add_argument("--live", action="store_true", help="only the live loop figures")
    parser.add_argument("--minutes", type=float, default=30.0, help="simulated live minutes (default 30)")
    parser.add_argument("--grid", default="3x3", help="gallery grid for the live run (default 3x3)")
    parser.add_argument("--sim-fps", type=float, default=2.0, help="analysed frames per simulated second (default 2)")
    args = parser.parse_args(argv)
    every = not (args.compare or args.fps or args.live)
    print(f"cpu affinity: {sorted(os.sched_getaffinity(0))}", file=sys.stderr)
    if args.compare or every:
        compare()
    if args.fps or every:
        fps()
    if args.live or every:
        live(args.minutes, args.grid, args.sim_fps)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Live loop timing (a script, not a timed test): how fast and how soon, each figure set against
a floor measured in the same run, so a slow or busy machine shows as a ratio, not a failure.

    python -m benchmarks.live_timing [--clip pyfeat/single_face.mp4] [--runs 1]

- floor: the cost of one analysis step (vision + consent gate + windows + store) over the same
  frames, unpaced (`SimulatedCapture`), and the time from `run_live` to the first analysed frame
  (models loading, the first time in the process).
- rate: 30 fps capture, analysis capped at 8 fps; expected min(8, cpu_share / step cost).
  The unit test once asked for 4-9 fps.
- latency: capture -> visible in the store (as a dashboard polls it), p50 and p95; floor: the
  1 s window + one step + the poll interval. The unit test once asked p95 <= 2 s.
- stop: Ctrl-C 2.5 s after `run_live` starts, on a 30 s replay at 10 fps; expected: the seconds
  captured by then (2.5 s less this run's start-up), the open one flushed too. The unit test once
  asked for 2-5 seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.live_simulated import SimulatedCapture
from engagement.app.live.capture import LiveCapture, LiveLoopOptions
from engagement.app.live.latency import percentile
from engagement.app.live.session import run_live
from engagement.core.config import shared_data_dir
from engagement.core.store import Store
from engagement.vision.sources import FramesSource
from privacy.consent import attest

QUIET = LiveLoopOptions(status=False, backoff_s=(0.1, 0.2))
POLL_S = 0.05  # StorePoller's interval


def read_frames(path: Path, n: int = 24) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    if not frames:
        sys.exit(f"no frames in {path}")
    return frames


def fresh_store(tmp: Path, name: str) -> Store:
    store = Store.open(f"sqlite:///{tmp / (name + '.db')}")
    attest(store, "class", facilitator="t", notice_version="v1", language="en", evidence="benchmark", actor="bench")
    return store


def floor(tmp: Path, frames: list[np.ndarray]) -> tuple[float, float]:
    """(seconds per analysis step, seconds from run_live to the first frame) on this machine now."""
    store = fresh_store(tmp, "floor")
    sim = SimulatedCapture(frames, fps=10.0, duration_s=10.0)
    t0 = time.monotonic()
    first = []
    result = run_live(store, sim, "class", options=QUIET, on_second=lambda s: first or first.append(time.monotonic()))
    wall = time.monotonic() - t0
    store.close()
    startup = first[0] - t0 if first else 0.0
    return (wall - startup) / max(1, result.summary.frames_analysed), startup


def rate_and_latency(tmp: Path, frames: list[np.ndarray], step_s: float) -> None:
    store = fresh_store(tmp, "rate")
    options = LiveLoopOptions(status=False, max_fps=8.0, measure_latency=True)
    source = LiveCapture(FramesSource(frames, 30.0, 3.5), options)
    result = run_live(store, source, "class", options=options)
    store.close()
    expected_fps = min(options.max_fps, options.cpu_share / step_s)
    print(f"rate     : {result.effective_fps:5.2f} fps per face; expected {expected_fps:5.2f} "
          f"(ratio {result.effective_fps / expected_fps:.2f}); was asked 4-9: "
          f"{'yes' if 4.0 <= result.effective_fps <= 9.0 else 'NO'}")
    p50, p95 = percentile(result.latencies_s, 50), percentile(result.latencies_s, 95)
    latency_floor = 1.0 + step_s + POLL_S
    print(f"latency  : p50 {p50:.2f} s  p95 {p95:.2f} s over {len(result.latencies_s)} frames; floor {latency_floor:.2f} s "
          f"(p95 ratio {p95 / latency_floor:.2f}); was asked p95 <= 2 s: {'yes' if p95 <= 2.0 else 'NO'}")


def stop_after_ctrl_c(tmp: Path, frames: list[np.ndarray]) -> None:
    store = fresh_store(tmp, "stop")
    source = LiveCapture(FramesSource(frames, 10.0, 30.0), QUIET)
    timer = threading.Timer(2.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    called = time.monotonic()
    timer.start()
    try:
        result = run_live(store, source, "class", options=QUIET)
    finally:
        timer.cancel()
    store.close()
    seconds = result.summary.seconds
    startup_s = source.started_at - called  # models loading: capture (t_ms 0) starts after it
    expected = max(1, math.ceil(2.5 - startup_s))
    print(f"stop     : {seconds} s stored after Ctrl-C at 2.5 s; expected {expected} (start-up {startup_s:.2f} s; "
          f"ratio {seconds / expected:.2f}); was asked 2-5: {'yes' if 2 <= seconds <= 5 else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default="videos/pyfeat/single_face.mp4", help="under the shared data folder")
    parser.add_argument("--runs", type=int, default=1, help="repeat the whole set (figures vary with load)")
    args = parser.parse_args(argv)
    path = shared_data_dir() / args.clip
    if not path.exists():
        sys.exit(f"clip not found: {path} (set ENGAGEMENT_SHARED_DATA or pass --clip)")
    frames = read_frames(path)
    tmp = Path(tempfile.mkdtemp(prefix="live-timing-"))
    os.environ["ENGAGEMENT_DATA_DIR"] = str(tmp)  # cohort keys and receipts of the benchmark stay apart
    print(f"cpu affinity: {sorted(os.sched_getaffinity(0))}", file=sys.stderr)
    for run in range(args.runs):
        where = tmp / f"run{run}"
        where.mkdir()
        step_s, startup_s = floor(where, frames)
        print(f"floor    : {step_s * 1000:.1f} ms per analysis step, {startup_s:.2f} s from run_live to the first frame")
        rate_and_latency(where, frames, step_s)
        stop_after_ctrl_c(where, frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Vision stage cost against its floor (MediaPipe alone on the same frames), and memory over
long inputs. Prints figures and ratios; absolute times on shared machines are noise, ratios
from one run are not.

    python benchmarks/vision_stage.py [--video PATH] [--frames N] [--memory]

Speed: the same decoded frames go through (a) MediaPipe's Face Landmarker alone, (b) the whole vision
stage without the expression CNN, (c) with it (when the model is shipped). Goal: (b)/(a) <= 1.25.

Attention signals: (b) against (b) with the per-participant attention tracker replaced by a stub,
interleaved on the same frames, and the time spent inside the tracker; then the tracker alone at
a full history (300 s of samples), where a refit costs most. Goal: attention adds <= 5 %.

Fatigue signals (also alone with --fatigue): the time inside the yawn detector (lip geometry and
its state) as a share of the rest of the stage, on the same frames; and the per-second fatigue
bookkeeping of the windows (eye counts per face frame, the last minute's figures per second) in
microseconds per face and frame, against the stage's time per frame. Goal: <= 5 % together.

Memory (--memory): the whole `analyze` pipeline on the clip looped to 1 minute and to 20 minutes
(in a child process each, peak RSS from the kernel). Goal: flat (within 10 %) and under 600 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engagement.core.config import AnalysisOptions, shared_data_dir  # noqa: E402
from engagement.core.records import RunningMode  # noqa: E402


def load_frames(video: Path, n: int):
    from engagement.vision.sources import VideoFileSource

    frames = []
    while len(frames) < n:
        for frame in VideoFileSource(video).frames():
            frames.append(frame.image)
            if len(frames) == n:
                break
    return frames


def time_mediapipe_alone(frames) -> float:
    from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions

    landmarker = FaceLandmarker(LandmarkerOptions(max_faces=8))
    landmarker.detect_faces(frames[0], 0.0)  # warm-up
    start = time.perf_counter()
    for i, img in enumerate(frames, start=1):
        landmarker.detect_faces(img, i * 33.3)
    elapsed = time.perf_counter() - start
    landmarker.close()
    return elapsed


class _NoAttention:
    """Stands in for AttentionTracker: the vision stage as it was before attention signals."""

    last_t = float("inf")  # never stale
    shut = ended_closure_ms = open_level = closed_since = None  # what the stage reads after update

    def update(self, t_ms, signals) -> str:
        return "unknown"


class _TimedAttention:
    """AttentionTracker that adds the time spent in `update` to a shared counter."""

    spent = 0.0

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)  # last_t, shut, open_level ...: the real tracker's

    def update(self, t_ms, signals) -> str:
        start = time.perf_counter()
        out = self.inner.update(t_ms, signals)
        _TimedAttention.spent += time.perf_counter() - start
        return out


def _stage(expression: bool, attention: str):
    """A vision stage whose attention tracker is the real one ("on"), a stub ("off") or timed."""
    from engagement.vision.stage import VisionStage

    class Stubbed(VisionStage):
        def _tracker(self, track_id):
            return _NoAttention()

    class Timed(VisionStage):
        def _tracker(self, track_id):
            return _TimedAttention(super()._tracker(track_id))

    cls = {"on": VisionStage, "off": Stubbed, "timed": Timed}[attention]
    return cls.from_options(AnalysisOptions(expression=expression))


def time_stage(frames, expression: bool, attention: str = "on") -> float:
    """Seconds for the stage over `frames`."""
    return _run(_stage(expression, attention), frames)


def _run(stage, frames, on_warm=lambda: None) -> float:
    """Seconds for `stage` over `frames` after one warm-up frame (`on_warm` runs after it); closes it."""
    from engagement.core.records import Frame

    stage.measure(Frame(0.0, 0, frames[0]), stage.observe(Frame(0.0, 0, frames[0])))
    on_warm()
    start = time.perf_counter()
    for i, img in enumerate(frames, start=1):
        frame = Frame(i * 33.3, i, img)
        stage.measure(frame, stage.observe(frame))
    elapsed = time.perf_counter() - start
    stage.close()
    return elapsed


def time_interleaved(frames, a: str, b: str) -> tuple[float, float]:
    """CPU seconds of two stage variants on the same frames, interleaved frame by frame (each frame
    through both back to back, the order alternating). CPU time, not wall time: on a shared
    machine, other programs' load moves wall time by +-10 % between identical stages, CPU time
    by about 1 %."""
    from engagement.core.records import Frame

    stages = (_stage(False, a), _stage(False, b))
    spent = [0.0, 0.0]
    for i, img in enumerate(frames, start=1):
        frame = Frame(i * 33.3, i, img)
        for k in (0, 1) if i % 2 else (1, 0):
            start = time.process_time()
            stages[k].measure(frame, stages[k].observe(frame))
            spent[k] += time.process_time() - start
    for stage in stages:
        stage.close()
    return spent[0], spent[1]


def attention_at_full_history(seconds: float = 600.0, fps: float = 30.0) -> float:
    """Microseconds per frame of one face's AttentionTracker once its 300 s history is full."""
    import numpy as np

    from engagement.vision.attention import AttentionTracker, FaceSignals

    rng = np.random.default_rng(0)
    signals = [
        FaceSignals(g[0], g[1], 0.3 + 0.02 * g[2], 60.0, 300.0, 120.0, (0.0, 0.0, 690.0))
        for g in rng.normal(0, 0.05, (300, 3))
    ]
    tracker = AttentionTracker()
    n = int(seconds * fps)
    for i in range(n // 2):  # fill the history first
        tracker.update(i * 1000.0 / fps, signals[i % 300])
    start = time.perf_counter()
    for i in range(n // 2, n):
        tracker.update(i * 1000.0 / fps, signals[i % 300])
    return (time.perf_counter() - start) / (n - n // 2) * 1e6


def speed(video: Path, n: int, rounds: int = 3) -> None:
    frames = load_frames(video, n)
    h, w = frames[0].shape[:2]
    with_cnn = (ROOT / "models" / "models.json").exists() and "expression-cnn" in (
        ROOT / "models" / "models.json"
    ).read_text()
    print(f"speed: {n} frames of {video.name} ({w}x{h}); variants interleaved, best of {rounds} rounds")
    best = {"mediapipe": float("inf"), "stage": float("inf"), "stage+cnn": float("inf")}
    attention_added, same_stage, attention_share = [], [], []
    for _ in range(rounds):
        # Interleaving makes the ratio robust to other load on a shared machine.
        best["mediapipe"] = min(best["mediapipe"], time_mediapipe_alone(frames))
        best["stage"] = min(best["stage"], time_stage(frames, expression=False))
        on, off = time_interleaved(frames, "on", "off")
        attention_added.append(on / off - 1)
        first, second = time_interleaved(frames, "off", "off")
        same_stage.append(first / second - 1)  # the noise floor: two identical stages
        _TimedAttention.spent = 0.0
        timed = time_stage(frames, expression=False, attention="timed")
        attention_share.append(_TimedAttention.spent / (timed - _TimedAttention.spent))
        if with_cnn:
            best["stage+cnn"] = min(best["stage+cnn"], time_stage(frames, expression=True))
    base = best["mediapipe"]
    print(f"  mediapipe alone         {n / base:7.1f} fps  {1000 * base / n:6.2f} ms/frame")
    stage = best["stage"]
    print(f"  vision stage            {n / stage:7.1f} fps  {1000 * stage / n:6.2f} ms/frame  ratio {stage / base:.2f}x")
    if with_cnn:
        full = best["stage+cnn"]
        print(
            f"  vision stage + CNN      {n / full:7.1f} fps  {1000 * full / n:6.2f} ms/frame  ratio {full / base:.2f}x"
            f"  (CNN share of the frame {(full - stage) / full:.0%})"
        )
    rounds_text = " ".join(f"{a:+.1%}" for a in attention_added)
    floor_text = " ".join(f"{a:+.1%}" for a in same_stage)
    print(f"  attention signals: CPU time of the stage with / without them, frame-interleaved: {rounds_text}"
          f" (rounds; two identical stages: {floor_text});"
          f" time inside the tracker {max(attention_share):.2%} of the rest of the stage (worst round)")
    per_frame = attention_at_full_history()
    print(f"  attention tracker at a full 300 s history: {per_frame:.0f} us per face and frame ="
          f" {per_frame / (1e6 * stage / n):.2%} of the stage's time per frame here (goal <= 5 %)")


def fatigue_in_stage(frames) -> tuple[float, float]:
    """(share of the rest of the stage spent in the yawn detector, stage seconds per frame)."""
    from engagement.vision.stage import VisionStage

    spent = [0.0]

    class Timed(VisionStage):
        def _yawn(self, *args):
            start = time.perf_counter()
            out = super()._yawn(*args)
            spent[0] += time.perf_counter() - start
            return out

    total = _run(Timed.from_options(AnalysisOptions(expression=False)), frames, on_warm=lambda: spent.__setitem__(0, 0.0))
    return spent[0] / (total - spent[0]), total / len(frames)


def fatigue_windows_us(seconds: int = 600, fps: int = 30) -> float:
    """Microseconds per face and frame of the windows' fatigue bookkeeping: counting each frame's
    eye reading and closure, and the last minute's figures once a second."""
    from engagement.core.records import FEATURE_NAMES, FrameFeatures
    from engagement.temporal.fatigue import FatigueHistory
    from engagement.temporal.windows import _Accumulator, _count_eyes

    values = (0.1,) * len(FEATURE_NAMES)
    frames = [
        FrameFeatures(i * 33.3, 0, values, False, eyes_shut=i % 90 < 4, ended_closure_ms=130.0 if i % 90 == 4 else None)
        for i in range(fps)
    ]
    history = FatigueHistory()
    start = time.perf_counter()
    for _ in range(seconds):
        acc = _Accumulator()
        for f in frames:
            _count_eyes(acc, f)
        acc.eyes.present = True
        history.add(acc.eyes)
    return (time.perf_counter() - start) / (seconds * fps) * 1e6


def fatigue_cost(video: Path, n: int, rounds: int = 3) -> None:
    frames = load_frames(video, n)
    shares, per_frame = [], []
    for _ in range(rounds):
        share, frame_s = fatigue_in_stage(frames)
        shares.append(share)
        per_frame.append(frame_s)
    windows_us = fatigue_windows_us()
    frame_us = 1e6 * min(per_frame)
    worst = max(shares)
    print(f"fatigue signals on {n} frames of {video.name}, {rounds} rounds:"
          f" time inside the yawn detector {' '.join(f'{s:.2%}' for s in shares)} of the rest of the stage;"
          f" windows' fatigue bookkeeping {windows_us:.1f} us per face and frame = {windows_us / frame_us:.2%}"
          f" of the stage's {frame_us / 1000:.1f} ms per frame; together {worst + windows_us / frame_us:.2%}"
          " (goal <= 5 %)")


def child_peak_rss(video: Path, minutes: float, sample_fps: float) -> dict:
    code = f"""
import json, resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
from benchmarks.vision_stage import LoopedSource
from engagement.app.pipeline import AnalysisPipeline
from engagement.core.config import AnalysisOptions
from engagement.core.store import Store
from privacy.consent import attest
store = Store.open('sqlite:///' + sys.argv[1])
attest(store, 'bench', facilitator='bench', notice_version='bench', language='en', evidence='benchmark')
src = LoopedSource({str(video)!r}, {minutes} * 60.0, {sample_fps})
t = time.perf_counter()
s = AnalysisPipeline(store, AnalysisOptions(sample_fps={sample_fps}, expression=False)).run(src, 'bench')
print(json.dumps({{'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'frames': s.frames_analysed, 'seconds': s.seconds, 'wall_s': time.perf_counter() - t}}))
"""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, ENGAGEMENT_DATA_DIR=tmp)
        out = subprocess.run(
            [sys.executable, "-c", code, str(Path(tmp) / "bench.db")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


class LoopedSource:
    """A clip played again and again up to `duration_s`, with continuous timestamps (no file)."""

    running_mode = RunningMode.VIDEO_FILE
    finite = True
    warnings: list[str] = []

    def __init__(self, path: str, duration_s: float, sample_fps: float | None):
        from engagement.vision.sources import VideoFileSource

        self.inner = VideoFileSource(path)
        self.duration_s = duration_s
        self.sample_fps = sample_fps
        self.frames_read = 0
        self.name = f"loop:{Path(path).name}"

    def frames(self):
        from engagement.core.records import Frame
        from engagement.vision.realtime import FrameSampler
        from engagement.vision.sources import VideoFileSource

        sampler = FrameSampler(self.sample_fps)
        offset = 0.0
        index = 0
        while True:
            last = 0.0
            for frame in VideoFileSource(self.inner.path).frames():
                t = offset + frame.t_ms
                if t >= self.duration_s * 1000:
                    return
                last = frame.t_ms
                self.frames_read += 1
                index += 1
                if sampler.keep(t):
                    yield Frame(t, index, frame.image)
            offset += last + 1000.0 / (self.inner.fps or 30.0)

    def check_complete(self) -> None:
        return None

    def redact(self, text: str) -> str:
        return text


def memory(video: Path, sample_fps: float) -> None:
    print(f"memory: whole pipeline on {video.name} looped, sampled at {sample_fps} fps, peak RSS of a child process")
    results = {}
    for minutes in (1, 20):
        r = child_peak_rss(video, minutes, sample_fps)
        results[minutes] = r
        print(
            f"  {minutes:2d} min input: peak RSS {r['peak_rss_mb']:6.1f} MB  ({r['frames']} frames, "
            f"{r['seconds']} s of data, {r['wall_s']:.0f} s wall)"
        )
    ratio = results[20]["peak_rss_mb"] / results[1]["peak_rss_mb"]
    print(f"  20 min / 1 min peak RSS ratio: {ratio:.3f}  (goal <= 1.10, both < 600 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=shared_data_dir() / "videos" / "liveportrait" / "d9.mp4")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--memory", action="store_true", help="also run the 1-min / 20-min memory test")
    parser.add_argument("--sample-fps", type=float, default=10.0, help="sampling rate for the memory test")
    parser.add_argument("--fatigue", action="store_true", help="only the fatigue signals' cost")
    args = parser.parse_args()
    if not args.video.exists():
        sys.exit(f"error: video not found: {args.video} (set ENGAGEMENT_SHARED_DATA or pass --video)")
    if args.fatigue:
        fatigue_cost(args.video, args.frames)
        return
    speed(args.video, args.frames)
    fatigue_cost(args.video, args.frames)
    if args.memory:
        memory(args.video, args.sample_fps)
    print(f"(this process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()

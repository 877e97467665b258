"""What a lower frame rate per face does to the per-second attention states, on the shared clips.

    python benchmarks/attention_rate.py [--seconds 30] [--rates 5,3,2]

A class of 25 on two cores is analysed at 3-5 frames a second per face, not at the camera's rate.
Each participant feed of the test meetings (tests/meetings.py: the shared face clips, looped,
12.5 frames a second of content) goes through the vision stage and the window aggregator at its
full rate and at each lower rate (frames picked by time, as the live loop and `--sample-fps` do).
Printed per rate: the share of seconds after the first 5 that are `unknown`, and how often a
second judged at both rates gets the same state as at the full rate (with the disagreements by
pair of states).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engagement.core.config import AnalysisOptions  # noqa: E402
from engagement.core.records import Frame, RunningMode  # noqa: E402
from engagement.temporal.windows import WindowAggregator  # noqa: E402
from engagement.vision.realtime import FrameSampler  # noqa: E402
from engagement.vision.stage import VisionStage  # noqa: E402
from meetings import Feed  # noqa: E402

CONTENT_FPS = 12.5  # a Feed gives every 2nd frame of 25 fps clips
SKIP_S = 5  # the first seconds hold the warm-up at every rate


def states(frames, fps: float | None) -> dict[int, str]:
    """Second -> attention state of the one participant, frames kept at `fps` (None: all)."""
    stage = VisionStage.from_options(AnalysisOptions(expression=False), running_mode=RunningMode.VIDEO_FILE)
    aggregator, sampler, windows = WindowAggregator(1000), FrameSampler(fps), []
    try:
        for i, image in enumerate(frames):
            t_ms = i * 1000.0 / CONTENT_FPS
            if sampler.keep(t_ms):
                frame = Frame(t_ms, i, image)
                windows += aggregator.add(t_ms, stage.measure(frame, stage.observe(frame)))
        windows += aggregator.flush()
    finally:
        stage.close()
    return {w.second: w.attention for w in windows if w.second >= SKIP_S}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--participants", type=int, default=8)
    ap.add_argument("--rates", default="5,3,2")
    args = ap.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    totals = {r: Counter() for r in [None, *rates]}
    pairs = {r: Counter() for r in rates}
    for p in range(args.participants):
        feed = Feed(p)
        frames = [feed.next() for _ in range(int(args.seconds * CONTENT_FPS))]
        feed.cap.release()
        full = states(frames, None)
        totals[None].update(full.values())
        for rate in rates:
            low = states(frames, rate)
            totals[rate].update(low.values())
            for second, state in full.items():
                if state in ("unknown", "absent") or low.get(second, "unknown") in ("unknown", "absent"):
                    continue
                pairs[rate][(state, low[second])] += 1
    print(f"{args.participants} participants x {args.seconds} s (seconds from {SKIP_S} on), full rate {CONTENT_FPS:g} fps")
    for rate in [None, *rates]:
        count = totals[rate]
        seconds = sum(count.values())
        line = f"  {'full' if rate is None else f'{rate:g} fps':>8}: unknown {count['unknown'] / seconds:6.1%} of {seconds} s"
        if rate is not None:
            judged = sum(pairs[rate].values())
            same = sum(n for (a, b), n in pairs[rate].items() if a == b)
            differ = ", ".join(f"{a}->{b} {n}" for (a, b), n in sorted(pairs[rate].items()) if a != b)
            line += f"; same state as full rate in {same}/{judged} judged seconds ({same / judged:.1%}) {differ}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

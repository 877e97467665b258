"""Yawn events and PERCLOS on real clips against labels made by eye (docs/attention.md, "Fatigue").

    python benchmarks/yawn_events.py [--clips DIR] [--labels FILE]

Each clip in the labels file (benchmarks/yawn_labels.json) is read from DIR by its relative path:
DIR is --clips, else $ENGAGEMENT_YAWN_CLIPS, else the shared data's videos/ folder. Clips are never
downloaded and never kept in the repository; a clip that is not in DIR is listed as skipped. Each
clip runs through the vision stage and the window aggregator (expressions off, as under every
profile); a found yawn event is a run of seconds with `yawn` = 1, and it is right when it overlaps
a labelled yawn. Printed: per clip and in total, labelled and found events, precision and recall
(n/a where there is nothing to divide by), false yawns per hour; then the PERCLOS error on the
closure labelled by eye in tests/test_fatigue.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from clips import read_frames  # noqa: E402

from engagement.core.config import shared_data_dir  # noqa: E402

LABELS = Path(__file__).with_name("yawn_labels.json")
# tests/test_fatigue.py: the closure (64 frames) and three blinks (4 frames) labelled by eye over
# the 327 frames the tracker reads in that clip.
LABELLED_PERCLOS = (64 + 4) / 327


@dataclass(frozen=True)
class ClipLabels:
    clip: str
    loop: int
    yawns: tuple[tuple[float, float], ...]


def _span(value, where: str) -> tuple[float, float]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)):
        raise ValueError(f"{where}: a yawn is [start, end] in seconds, got {value!r}")
    start, end = float(value[0]), float(value[1])
    if not (0 <= start < end):
        raise ValueError(f"{where}: a yawn needs 0 <= start < end, got {value!r}")
    return start, end


def load_labels(path: Path) -> list[ClipLabels]:
    """The labelled clips; ValueError (the message says where) on anything malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    entries = data.get("clips") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected an object with a 'clips' list")
    out = []
    for i, entry in enumerate(entries):
        where = f"{path.name} clip {i + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("clip"), str) or not entry["clip"]:
            raise ValueError(f"{where}: each clip needs a 'clip' path")
        loop, yawns = entry.get("loop", 0), entry.get("yawns", [])
        if not isinstance(loop, int) or isinstance(loop, bool) or loop < 0 or not isinstance(yawns, list):
            raise ValueError(f"{where}: 'loop' is a count (0 or more) and 'yawns' a list")
        spans = tuple(_span(y, where) for y in yawns)
        if loop and spans:  # the played time would no longer match the labelled time
            raise ValueError(f"{where}: a clip with labelled yawns cannot loop")
        out.append(ClipLabels(entry["clip"], loop, spans))
    return out


def yawn_events(windows) -> list[tuple[float, float]]:
    """Runs of consecutive seconds with yawn = 1, per track, as (start s, end s)."""
    by_track: dict[int, list[int]] = {}
    for w in windows:
        if w.yawn == 1:
            by_track.setdefault(w.track_id, []).append(w.second)
    events = []
    for seconds in by_track.values():
        seconds.sort()
        start = prev = seconds[0]
        for s in seconds[1:] + [None]:
            if s is not None and s == prev + 1:
                prev = s
                continue
            events.append((float(start), float(prev + 1)))
            if s is not None:
                start = prev = s
    return sorted(events)


def match(found: list[tuple[float, float]], labelled: tuple[tuple[float, float], ...]) -> tuple[int, int, int]:
    """(right, false, missed): a found event is right when it overlaps a labelled yawn not yet
    matched; a labelled yawn no found event overlaps is missed."""
    unmatched = list(labelled)
    right = 0
    for start, end in found:
        hit = next((y for y in unmatched if start < y[1] and y[0] < end), None)
        if hit is not None:
            unmatched.remove(hit)
            right += 1
    return right, len(found) - right, len(unmatched)


def ratio(num: int, den: int) -> str:
    return f"{num / den:.2f} ({num}/{den})" if den else "n/a (0/0)"


def clip_windows(path: Path, loop: int):
    from test_attention import real_windows  # the tests' loop: vision stage + aggregator, expressions off

    frames, fps = read_frames(path)
    if loop:
        frames = (frames + frames[::-1]) * loop
    return real_windows(frames, fps), len(frames) / fps


def evaluate(clips_dir: Path, labels: list[ClipLabels]) -> None:
    totals = [0, 0, 0, 0]  # right, false, missed, labelled
    seconds_run = 0.0
    print(f"{'clip':36} {'s':>6} {'labelled':>8} {'found':>5} {'right':>5} {'false':>5}")
    for entry in labels:
        path = clips_dir / entry.clip
        if not path.is_file():
            print(f"{entry.clip:36} skipped: not in {clips_dir}")
            continue
        windows, seconds = clip_windows(path, entry.loop)
        found = yawn_events(windows)
        right, false, missed = match(found, entry.yawns)
        for i, v in enumerate((right, false, missed, len(entry.yawns))):
            totals[i] += v
        seconds_run += seconds
        print(f"{entry.clip:36} {seconds:6.1f} {len(entry.yawns):8d} {len(found):5d} {right:5d} {false:5d}")
    right, false, missed, labelled = totals
    print(f"\nyawn events: precision {ratio(right, right + false)}, recall {ratio(labelled - missed, labelled)}")
    if seconds_run:
        print(f"false yawns per hour: {false * 3600 / seconds_run:.1f} over {seconds_run / 60:.1f} min of video")


def perclos_error() -> None:
    if not (shared_data_dir() / "videos" / "pyfeat" / "WolfgangLanger_Pexels.mp4").is_file():
        print("PERCLOS: skipped, WolfgangLanger_Pexels.mp4 is not in the shared data")
        return
    from test_attention import closure_clip, real_windows

    frames, fps, _ = closure_clip(0.0)
    measured = real_windows(frames, fps)[-1].perclos
    if measured is None or not math.isfinite(measured):
        print("PERCLOS: no figure (too few readable frames)")
        return
    print(f"PERCLOS (closure clip): measured {measured:.3f}, labelled {LABELLED_PERCLOS:.3f}, "
          f"error {measured - LABELLED_PERCLOS:+.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.environ.get("ENGAGEMENT_YAWN_CLIPS") or str(shared_data_dir() / "videos")
    parser.add_argument("--clips", type=Path, default=Path(default_dir), help="folder the labelled clips are read from")
    parser.add_argument("--labels", type=Path, default=LABELS, help="labels file (JSON)")
    args = parser.parse_args(argv)
    if not args.clips.is_dir():
        print(f"error: clips folder not found: {args.clips}", file=sys.stderr)
        return 2
    try:
        labels = load_labels(args.labels)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    evaluate(args.clips, labels)
    perclos_error()
    return 0


if __name__ == "__main__":
    sys.exit(main())

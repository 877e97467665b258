"""A class live: `engagement live` on gallery recordings of 9, 25 and 49 participants.

    python benchmarks/live_class.py [--grids 3x3@1280x720,5x5@1920x1080,7x7@1920x1080] [--seconds 30]

Each recording is built from the shared clips the way Zoom draws a gallery (tests/meetings.py:
tiles with gaps, 25 fps, two cameras off in classes over 20) and replayed at its own rate through
the live loop (`run_live`: capture thread, newest frame wins, per-tile landmarkers, consent,
windows, one SQLite commit a second), exactly as `live --source FILE --grid CxR` runs it.
Printed per recording:
- analysed frames per second per face, frames captured and dropped;
- the share of present participant-seconds after the first 5 s that are `unknown`, and whether
  every participant was found and every second of every participant reached the store;
- the cost per analysed tile-frame (the loop's wall time over frames x tiles) against MediaPipe
  alone on the same tile crops (one landmarker per tile, one thread, the same frames, in the same
  run): the floor; and the process CPU time per tile-frame against the floor's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import cv2  # noqa: E402
from sqlalchemy import text  # noqa: E402

from engagement.app.live.capture import LiveLoopOptions  # noqa: E402
from engagement.app.live.session import open_live_source, run_live  # noqa: E402
from engagement.core.config import AnalysisOptions  # noqa: E402
from engagement.core.records import RunningMode  # noqa: E402
from engagement.core.store import Store  # noqa: E402
from engagement.vision.gallery import GalleryLayout  # noqa: E402
from engagement.vision.landmarks import FaceLandmarker  # noqa: E402
from engagement.vision.stage import landmarker_options  # noqa: E402
from meetings import write_meeting  # noqa: E402
from privacy.consent import attest  # noqa: E402

SKIP_S = 5


def build(path: Path, cols: int, rows: int, size: tuple[int, int], seconds: int) -> set[int]:
    """The recording; returns the participants whose camera is off."""
    n = cols * rows
    off = {7, 18} if n > 20 else set()
    write_meeting(path, lambda s: [(p, p not in off) for p in range(n)], n, seconds, size=size, fps=25)
    return off


def floor(path: Path, layout: GalleryLayout, times_ms: list[float]) -> tuple[float, float, float]:
    """MediaPipe alone on the tiles of the frames live analysed (by capture time), one thread:
    wall and CPU ms per tile-frame in the landmarkers, and CPU ms per tile-frame with the decoding
    of every frame counted too (as live decodes every frame it captures). `live --grid` cuts the
    frame into the grid's equal cells."""
    options = landmarker_options(AnalysisOptions(), 1, RunningMode.LIVE)
    tiles = layout.tiles()
    landmarkers = [FaceLandmarker.from_options(options) for _ in tiles]
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    wanted = {int(t / 1000.0 * fps) for t in times_ms}
    wall = cpu = 0.0
    count = index = 0
    start_cpu = time.process_time()
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if index in wanted:
            w0, c0 = time.perf_counter(), time.process_time()
            for lm, (x0, y0, x1, y1) in zip(landmarkers, tiles):
                lm.detect_faces(image[y0:y1, x0:x1], index * 1000.0 / fps)
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            count += len(tiles)
        index += 1
    total_cpu = time.process_time() - start_cpu
    cap.release()
    for lm in landmarkers:
        lm.close()
    return 1000.0 * wall / count, 1000.0 * cpu / count, 1000.0 * total_cpu / count


def stored(store: Store, run_id: int) -> dict[int, dict[int, str]]:
    with store.transaction() as conn:
        rows = conn.execute(
            text("SELECT track_id, second, attention FROM window_features WHERE run_id = :run"), {"run": run_id}
        ).fetchall()
    out: dict[int, dict[int, str]] = {}
    for track_id, second, attention in rows:
        out.setdefault(track_id, {})[second] = attention
    return out


def one(spec: str, seconds: int, tmp: Path) -> None:
    grid, size_text = spec.split("@")
    cols, rows = (int(v) for v in grid.split("x"))
    size = tuple(int(v) for v in size_text.split("x"))
    video = tmp / f"class-{grid}.mp4"
    off = build(video, cols, rows, size, seconds)
    store = Store.open(f"sqlite:///{tmp / f'{grid}.sqlite'}")
    attest(store, "bench", facilitator="bench", notice_version="v1", language="en", evidence="benchmark", actor="bench")
    layout = GalleryLayout(cols, rows, *size)
    options = LiveLoopOptions(status=False, measure_latency=True)
    capture = open_live_source(str(video), options)
    c0 = time.process_time()
    # As `engagement live` runs it: the default profile, with the expression CNN.
    result = run_live(store, capture, "bench", layout=layout, analysis=AnalysisOptions(), options=options)
    cpu_s = time.process_time() - c0
    tracks = stored(store, result.summary.run_id)
    store.close()
    n_tiles, faces = cols * rows, cols * rows - len(off)
    present = [s for per in tracks.values() for second, s in per.items() if second >= SKIP_S and s != "absent"]
    unknown = sum(s == "unknown" for s in present) / max(1, len(present))
    last = max((max(per) for per in tracks.values()), default=-1)
    complete = all(len(per) == last + 1 for per in tracks.values())
    tile_frames = capture.analysed * n_tiles
    live_ms = 1000.0 * getattr(result, "analysis_s", float("nan")) / max(1, tile_frames)
    floor_wall, floor_cpu, floor_all = floor(video, layout, capture.frame_times_ms)
    live_cpu = 1000 * cpu_s / max(1, tile_frames)
    print(f"{grid} at {size[0]}x{size[1]}, {seconds} s, {faces} cameras on:")
    print(f"  analysed {result.effective_fps:.2f} frames/s per face; captured {result.captured}, dropped {result.dropped}")
    print(f"  unknown {unknown:.1%} of {len(present)} present participant-seconds after {SKIP_S} s; "
          f"participants found {len(tracks)}/{faces}; every second of every participant stored: {complete}")  # fmt: skip
    print(f"  per tile-frame, wall: live {live_ms:.2f} ms, MediaPipe alone {floor_wall:.2f} ms: "
          f"{live_ms / floor_wall:.2f}x")  # fmt: skip
    print(f"  per tile-frame, CPU with every frame decoded: live {live_cpu:.2f} ms (whole process), MediaPipe "
          f"alone {floor_all:.2f} ms: {live_cpu / floor_all:.2f}x (landmarkers alone {floor_cpu:.2f} ms)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", default="3x3@1280x720,5x5@1920x1080,7x7@1920x1080")
    ap.add_argument("--seconds", type=int, default=30)
    args = ap.parse_args(argv)
    if args.seconds <= SKIP_S:
        print(f"error: --seconds must be more than {SKIP_S}", file=sys.stderr)
        return 2
    print(f"cores usable: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ENGAGEMENT_DATA_DIR"] = tmp
        for spec in args.grids.split(","):
            one(spec, args.seconds, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())

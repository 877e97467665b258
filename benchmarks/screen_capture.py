"""Live capture of a real screen: recall per tile-second and capture-to-store latency. Run:

    .venv/bin/python -m benchmarks.screen_capture [--grid 3x3] [--seconds 30] [--profile id-pdp]

A virtual X display (Xvfb, Debian package `xvfb`) shows a real window, OpenCV's own highgui
window (the Qt build that opencv-contrib-python ships, so nothing else to install), playing a
gallery video tiled from the shared clips in its own process, as a meeting app would. The live
loop grabs the window's screen region with mss (`open_live_source("screen:X,Y,W,H")`), with a
roster tying every face tile to a consenting participant, and stores each second.

Figures printed:
- recall per tile-second: a face tile's second is recalled when its participant's per-second row
  has the face in at least half of that second's analysed frames (seconds without a row count as
  missed); one tile shows a cartoon without a face and must yield nothing;
- capture-to-store latency per analysed frame: from its grab (wall clock) to the moment a reader
  polling the store every 50 ms first sees its second (as in benchmarks/live_gallery.py).

`play VIDEO` is the player; tests/test_screen_capture.py uses these helpers with the real
`engagement live` command.
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from sqlalchemy import select as sql_select

from engagement.app.live.session import LiveLoopOptions, open_live_source, run_live
from engagement.app.pipeline import ConsentOptions
from engagement.core import schema
from engagement.core.config import AnalysisOptions, shared_data_dir
from engagement.core.store import Store
from engagement.vision.gallery import GalleryLayout, compose_gallery
from privacy.pseudonym import KeyRing
from privacy.roster import import_roster, load_roster

FACE_CLIPS = (
    "pyfeat/single_face.mp4",
    "grid/brbk7n.mpg",
    "grid/lbax4n.mpg",
    "grid/lbbc2a.mpg",
    "grid/lwbsza.mpg",
    "grid/sbwe5n.mpg",
    "liveportrait/d9.mp4",
    "pyfeat/WolfgangLanger_Pexels.mp4",
)
NO_FACE_CLIP = "pyfeat/no_face.mp4"
WINDOW = "gallery"
COHORT = "latsar"


# -- a virtual display ----------------------------------------------------------------------------


def start_xvfb(display: str | None = None, size: tuple[int, int] = (1600, 900)):
    """Start Xvfb on `display` (":N") or on a free one it picks; returns (process, display)."""
    read_end, write_end = os.pipe()
    args = ["Xvfb", *([display] if display else []), "-displayfd", str(write_end),
            "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"]
    proc = subprocess.Popen(args, pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        # Xvfb writes its display number, then a newline, once it accepts connections; it fails
        # if the pipe closes in between, so read up to the newline.
        text = b""
        deadline = time.monotonic() + 20.0
        while not text.endswith(b"\n") and select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(read_end, 32)
            if not chunk:
                break
            text += chunk
        number = text.decode().strip() if text.endswith(b"\n") else ""
    finally:
        os.close(read_end)
    if not number:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"Xvfb did not start (exit code {proc.poll()})")
    return proc, f":{number}"


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def virtual_display(size: tuple[int, int] = (1600, 900)) -> Iterator[str]:
    proc, display = start_xvfb(size=size)
    try:
        yield display
    finally:
        stop(proc)


# -- the gallery video and its player -----------------------------------------------------------


class LoopingClip:
    """Every 2nd frame of a clip (15 fps content from 25-30 fps clips), from `skip` on, looping."""

    def __init__(self, path: Path, skip: int = 0):
        self.path = path
        self._cap = cv2.VideoCapture(str(path))
        self._i = 0
        for _ in range(skip):
            self.next()

    def next(self) -> np.ndarray:
        for _ in range(2):
            ok, image = self._cap.read()
            if not ok:
                self._cap.release()
                self._cap = cv2.VideoCapture(str(self.path))
                ok, image = self._cap.read()
                if not ok:
                    raise RuntimeError(f"cannot read {self.path}")
        return image

    def close(self) -> None:
        self._cap.release()


def write_gallery_video(path: Path, cols: int, rows: int, *, size: tuple[int, int] = (1280, 720), fps: int = 10,
                        seconds: int = 12, empty_tile: int | None = None) -> tuple[GalleryLayout, list[int]]:
    """Write a gallery video, frame by frame; returns its layout and the tiles that show a face."""
    videos = shared_data_dir() / "videos"
    layout = GalleryLayout(cols, rows, *size)
    clips, face_tiles = [], []
    for tile in range(layout.n_tiles):
        if tile == empty_tile:
            clips.append(LoopingClip(videos / NO_FACE_CLIP))
            continue
        k = len(face_tiles)
        clips.append(LoopingClip(videos / FACE_CLIPS[k % len(FACE_CLIPS)], skip=3 * k))
        face_tiles.append(tile)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    try:
        for _ in range(fps * seconds):
            writer.write(compose_gallery([clip.next() for clip in clips], layout))
    finally:
        writer.release()
        for clip in clips:
            clip.close()
    return layout, face_tiles


def play(video: Path, at: tuple[int, int]) -> None:
    """Show the video in a window at `at` (screen pixels), looping at its own frame rate, until
    killed; prints `window X,Y,W,H` (the picture's screen region) once it is on screen."""
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    # GUI_NORMAL: no toolbar or status bar, the picture is the whole window.
    cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    cv2.moveWindow(WINDOW, *at)
    due = time.monotonic()
    shown = 0
    while True:
        ok, image = cap.read()
        if not ok:
            cap.release()
            cap = cv2.VideoCapture(str(video))
            continue
        cv2.imshow(WINDOW, image)
        due += 1.0 / fps
        cv2.waitKey(max(1, int((due - time.monotonic()) * 1000)))
        shown += 1
        if shown == 3:  # mapped and painted by now
            x, y, w, h = cv2.getWindowImageRect(WINDOW)
            print(f"window {x},{y},{w},{h}", flush=True)


def start_player(video: Path, display: str, at: tuple[int, int] = (120, 60)):
    """The player in its own process on `display`; returns (process, (x, y, w, h))."""
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.screen_capture", "play", str(video), "--at", f"{at[0]},{at[1]}"],
        cwd=Path(__file__).resolve().parents[1], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    ready, _, _ = select.select([proc.stdout], [], [], 60.0)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("window "):
        stop(proc)
        raise RuntimeError(f"the player showed no window (exit code {proc.poll()})")
    x, y, w, h = (int(v) for v in line.split()[1].split(","))
    return proc, (x, y, w, h)


def write_roster(path: Path, layout: GalleryLayout, face_tiles: list[int]) -> dict[str, int]:
    """A roster giving every face tile its own consenting participant; returns identity -> tile."""
    tiles = {f"p{tile + 1}@example.org": tile for tile in face_tiles}
    lines = [f'cohort = "{COHORT}"', f'grid = "{layout.cols}x{layout.rows}"', 'notice_version = "v1"',
             'language = "en"', 'evidence = "synthetic gallery of public clips"']
    for identity, tile in tiles.items():
        lines += ["", "[[participants]]", f'identity = "{identity}"', f'tile = "{tile // layout.cols + 1},{tile % layout.cols + 1}"']
    path.write_text("\n".join(lines) + "\n")
    return tiles


# -- figures ----------------------------------------------------------------------------------


class TileRecall(NamedTuple):
    recall: float  # over the face tiles x the seconds the live loop stored
    tile_seconds: int
    per_tile: dict[int, float]
    extra_tracks: list[str]  # stored tracks of no face tile (a false tile, a split id)
    seconds_stored: int  # seconds with at least one analysed frame
    seconds_elapsed: int  # from the first second to the last stored one


def tile_second_recall(store, run_id: int, tiles: dict[str, int]) -> TileRecall:
    """Recall per tile-second of a run: a face tile's second is recalled when its participant's
    row has the face in at least half of that second's analysed frames. Seconds in which the loop
    analysed no frame at all (a starved CPU) have no rows: they are counted apart, as coverage."""
    ring = KeyRing(store)
    tile_of = {ring.pseudonym(identity, COHORT): tile for identity, tile in tiles.items()}
    with store.engine.connect() as conn:
        tracks = conn.execute(
            sql_select(schema.tracks.c.id, schema.tracks.c.label, schema.tracks.c.participant)
            .where(schema.tracks.c.run_id == run_id)
        ).all()
        stored = conn.execute(
            sql_select(schema.class_timeline.c.second).where(schema.class_timeline.c.run_id == run_id)
        ).scalars().all()
        rows = conn.execute(
            sql_select(schema.window_features.c.track_id, schema.window_features.c.second, schema.window_features.c.present_ratio)
            .where(schema.window_features.c.run_id == run_id)
        ).all()
    tile_by_track = {t.id: tile_of.get(t.participant) for t in tracks}
    hit = {(tile_by_track[r.track_id], r.second) for r in rows if tile_by_track[r.track_id] is not None and r.present_ratio >= 0.5}
    per_tile = {tile: sum((tile, s) in hit for s in stored) / max(1, len(stored)) for tile in tiles.values()}
    total = len(tiles) * len(stored)
    return TileRecall(
        recall=len(hit) / total if total else 0.0,
        tile_seconds=total,
        per_tile=per_tile,
        extra_tracks=[t.label for t in tracks if tile_by_track[t.id] is None],
        seconds_stored=len(stored),
        seconds_elapsed=max(stored) + 1 if stored else 0,
    )


def run(grid: str, seconds: float, profile: str) -> None:
    with tempfile.TemporaryDirectory(prefix="screen-bench-") as name:
        measure(Path(name), grid, seconds, profile)


def measure(tmp: Path, grid: str, seconds: float, profile: str) -> None:
    cols, rows = (int(v) for v in grid.split("x"))
    os.environ["ENGAGEMENT_DATA_DIR"] = str(tmp)
    empty = (cols * rows) // 2 if cols * rows > 1 else None
    layout, face_tiles = write_gallery_video(tmp / "gallery.mp4", cols, rows, empty_tile=empty)
    with virtual_display() as display:
        os.environ["DISPLAY"] = display
        player, region = start_player(tmp / "gallery.mp4", display)
        try:
            store = Store.open(f"sqlite:///{tmp / 'bench.db'}")
            roster_path = tmp / "roster.toml"
            tiles = write_roster(roster_path, layout, face_tiles)
            import_roster(store, load_roster(roster_path))
            options = LiveLoopOptions(status=False, measure_latency=True, give_up_after_s=20.0)
            source = open_live_source("screen:" + ",".join(map(str, region)), options)

            def on_second(second: int) -> None:
                if second >= seconds:
                    source.stop()

            result = run_live(
                store, source, "screen-bench", layout=layout, analysis=AnalysisOptions(), options=options,
                profile=profile, consent=ConsentOptions(roster=roster_path), cohort=COHORT, on_second=on_second,
            )
        finally:
            stop(player)
    found = tile_second_recall(store, result.summary.run_id, tiles)
    lat = np.array(result.latencies_s or [float("nan")])
    print(f"screen region                : {region[2]}x{region[3]} at {region[0]},{region[1]} on Xvfb {display}, "
          f"{grid} grid, {len(face_tiles)} face tiles + {layout.n_tiles - len(face_tiles)} without a face, profile {profile}")
    print(f"recall per tile-second       : {found.recall:.3f} over {found.tile_seconds} tile-seconds "
          f"(lowest tile {min(found.per_tile.values()):.3f}); tracks outside the face tiles: {len(found.extra_tracks)}")
    print(f"seconds with analysed frames : {found.seconds_stored} of {found.seconds_elapsed}")
    print(f"capture->store latency       : p50 {np.percentile(lat, 50):.2f} s  p95 {np.percentile(lat, 95):.2f} s  "
          f"max {np.max(lat):.2f} s ({len(result.latencies_s)} analysed frames)")
    print(f"live loop                    : analysed {result.effective_fps:.1f} fps per face, captured {result.captured}, "
          f"dropped {result.dropped}, garbage {result.rejected}, reconnects {result.reconnects}, "
          f"stored seconds {result.summary.seconds}")
    for note in result.summary.notes:
        print(f"note                         : {note}")
    store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    player = sub.add_parser("play", help="show a video in a window until killed (the meeting app)")
    player.add_argument("video", type=Path)
    player.add_argument("--at", default="0,0", help="window position X,Y in screen pixels")
    parser.add_argument("--grid", default="3x3", help="gallery grid (default 3x3; the middle tile has no face)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of live capture (default 30)")
    parser.add_argument("--profile", default="id-pdp", help="compliance profile (default id-pdp: expressions at 5 Hz too)")
    args = parser.parse_args(argv)
    if args.command == "play":
        play(args.video, tuple(int(v) for v in args.at.split(",")))
        return 0
    run(args.grid, args.seconds, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The old landmarker (mediapipe 0.10.21 FaceMesh) against the new one (mediapipe 1.x Tasks
FaceLandmarker) on the same decoded frames, interleaved in one run.

    python benchmarks/landmarker_compare.py --old-python OLD_VENV/bin/python --old-code OLD_CHECKOUT
        [--rounds 2] [--single-frames 300] [--gallery-frames 125]

The two releases cannot share a process (different numpy and protobuf), so this script decodes
and composes the frames once into raw files, then runs a worker per backend in a child process,
alternating old/new/new/old per round so drift on a shared machine hits both alike. Each worker
reads one frame at a time from disk (the frames never count in its memory) and reports:
- fps over the timed frames (a warm-up frame first, not timed), median over rounds;
- recall: single face, the share of frames with the face found; gallery, per tile-second (a tile
  holding a face in a second counts as found when the face was found in at least half that
  second's frames), plus faces reported in the empty tile;
- peak memory: the worker's peak RSS (VmHWM) less its RSS before the landmarker was created
  (frames are read one at a time, so this is the landmarkers' own memory).
Scenes: `single` (d9, a real 587-frame clip, letterboxed to 640x480, every frame has the face;
max 8 faces as `analyze` runs it) and `gallery` (eight real clips in a 3x3 grid at 1280x720, one
tile empty; one landmarker per tile as the live gallery view runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from clips import read_frames  # noqa: E402

SINGLE_CLIP = "liveportrait/d9.mp4"
GALLERY_CLIPS = (
    "pyfeat/single_face.mp4",
    "pyfeat/WolfgangLanger_Pexels.mp4",
    "liveportrait/d9.mp4",
    "grid/brbk7n.mpg",
    "grid/lbax4n.mpg",
    "grid/lbbc2a.mpg",
    "grid/lwbsza.mpg",
    "grid/sbwe5n.mpg",
)
EMPTY_TILE = 4  # the centre tile shows no feed
FPS = 25.0


def _clip_frames(path: Path, n: int) -> list[np.ndarray]:
    """n frames of the clip, looped when it is shorter."""
    frames, _ = read_frames(path)
    return [frames[i % len(frames)] for i in range(n)]


def prepare(out: Path, single_frames: int, gallery_frames: int) -> dict:
    """Write the scenes' frames as raw uint8 files; return their shapes and ground truth."""
    from engagement.core.config import shared_data_dir
    from engagement.vision.gallery import GalleryLayout, compose_gallery

    data = shared_data_dir() / "videos"
    scenes = {}
    single = GalleryLayout(1, 1, 640, 480)
    frames = [compose_gallery([img], single, gap=0) for img in _clip_frames(data / SINGLE_CLIP, single_frames)]
    scenes["single"] = {"cols": 1, "rows": 1, "max_faces": 8, "face_tiles": [0]}
    _write(out / "single.raw", frames, scenes["single"])
    layout = GalleryLayout(3, 3, 1280, 720)
    feeds = [_clip_frames(data / clip, gallery_frames) for clip in GALLERY_CLIPS]
    tiles = [i for i in range(layout.n_tiles) if i != EMPTY_TILE]
    frames = []
    for i in range(gallery_frames):
        content: list[np.ndarray | None] = [None] * layout.n_tiles
        for tile, feed in zip(tiles, feeds):
            content[tile] = feed[i]
        frames.append(compose_gallery(content, layout))
    scenes["gallery"] = {"cols": 3, "rows": 3, "max_faces": 1, "face_tiles": tiles}
    _write(out / "gallery.raw", frames, scenes["gallery"])
    return scenes


def _write(path: Path, frames: list[np.ndarray], meta: dict) -> None:
    with open(path, "wb") as fh:
        for img in frames:
            fh.write(np.ascontiguousarray(img).tobytes())
    meta.update(path=str(path), n=len(frames), shape=list(frames[0].shape))


def _memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, from the kernel."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # not Linux: peak only


def worker(backend: str, meta: dict) -> dict:
    """Runs under either release; only what both versions of `landmarks.py` offer is used."""
    from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions

    shape = tuple(meta["shape"])
    size = int(np.prod(shape))
    h, w = shape[0], shape[1]
    cols, rows = meta["cols"], meta["rows"]
    rects = [
        (c * w // cols, r * h // rows, (c + 1) * w // cols, (r + 1) * h // rows) for r in range(rows) for c in range(cols)
    ]
    with open(meta["path"], "rb") as fh:
        first = np.frombuffer(fh.read(size), np.uint8).reshape(shape)
    base = _memory_mb("VmRSS")
    landmarkers = [FaceLandmarker(LandmarkerOptions(max_faces=meta["max_faces"])) for _ in rects]

    def detect(index: int, image: np.ndarray, t_ms: float) -> int:
        lm = landmarkers[index]
        return len(lm.detect(image, t_ms) if backend == "new" else lm.detect(image))

    frame_ms = 1000.0 / FPS
    for i, (x0, y0, x1, y1) in enumerate(rects):  # warm-up: graph start, first detection
        detect(i, first[y0:y1, x0:x1], 0.0)
    found = np.zeros((meta["n"], len(rects)), np.int32)
    elapsed = 0.0
    with open(meta["path"], "rb") as fh:
        for f in range(meta["n"]):
            image = np.frombuffer(fh.read(size), np.uint8).reshape(shape)
            start = time.perf_counter()
            for i, (x0, y0, x1, y1) in enumerate(rects):
                found[f, i] = detect(i, image[y0:y1, x0:x1], (f + 1) * frame_ms)
            elapsed += time.perf_counter() - start
    peak = _memory_mb("VmHWM")
    for lm in landmarkers:
        lm.close()
    face_tiles = meta["face_tiles"]
    seconds = [found[s : s + int(FPS)] for s in range(0, meta["n"], int(FPS))]
    tile_seconds = [(sec[:, t] > 0).mean() >= 0.5 for sec in seconds for t in face_tiles]
    empty = [t for t in range(len(rects)) if t not in face_tiles]
    return {
        "fps": meta["n"] / elapsed,
        "frame_recall": float((found[:, face_tiles] > 0).mean()),
        "tile_second_recall": float(np.mean(tile_seconds)),
        "tile_seconds": len(tile_seconds),
        "empty_tile_faces": int(found[:, empty].sum()) if empty else 0,
        "peak_mb": peak - base,
    }


def run_worker(python: str, code: Path, backend: str, meta: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [python, str(Path(__file__).resolve()), "--worker", backend, "--meta", json.dumps(meta)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{backend} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-python", help="interpreter with mediapipe 0.10.21")
    ap.add_argument("--old-code", type=Path, help="a checkout of the code before the Tasks API")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--single-frames", type=int, default=300)
    ap.add_argument("--gallery-frames", type=int, default=125)
    ap.add_argument("--worker", choices=("old", "new"), help=argparse.SUPPRESS)
    ap.add_argument("--meta", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.meta))))
        return
    if not (args.old_python and args.old_code):
        ap.error("--old-python and --old-code are required")
    backends = {"old": (args.old_python, args.old_code), "new": (sys.executable, ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        scenes = prepare(Path(tmp), args.single_frames, args.gallery_frames)
        results: dict[tuple[str, str], list[dict]] = {}
        for r in range(args.rounds):
            order = ("old", "new") if r % 2 == 0 else ("new", "old")
            for scene, meta in scenes.items():
                for backend in order + order[::-1]:
                    python, code = backends[backend]
                    results.setdefault((scene, backend), []).append(run_worker(python, code, backend, meta))
    print(f"{'scene':8} {'backend':7} {'fps':>7} {'frame recall':>12} {'tile-s recall':>13} {'empty-tile faces':>16} {'peak MB':>8}")
    for (scene, backend), runs in results.items():
        fps = statistics.median(x["fps"] for x in runs)
        last = runs[-1]
        peak = max(x["peak_mb"] for x in runs)
        print(
            f"{scene:8} {backend:7} {fps:7.1f} {last['frame_recall']:12.3f} "
            f"{last['tile_second_recall']:8.3f} ({last['tile_seconds']:3d}) {last['empty_tile_faces']:16d} {peak:8.1f}"
        )
    for scene in scenes:
        old = statistics.median(x["fps"] for x in results[(scene, "old")])
        new = statistics.median(x["fps"] for x in results[(scene, "new")])
        print(f"{scene}: new/old speed {new / old:.2f}")


if __name__ == "__main__":
    main()

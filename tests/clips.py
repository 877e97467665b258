"""Real clips as frames, for tests and benchmarks that need a whole (short) clip in memory or a
longer recording made from one. The product itself streams frames and never does this."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_frames(path, limit: int | None = None) -> tuple[list[np.ndarray], float]:
    """The clip's frames (at most `limit`) and its frame rate."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while limit is None or len(frames) < limit:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames, fps


# Real face clips of the shared data set (under videos/) that gallery tests and benchmarks tile.
FACE_CLIPS = (
    "pyfeat/single_face.mp4",
    "liveportrait/d9.mp4",
    "pyfeat/WolfgangLanger_Pexels.mp4",
    "grid/brbk7n.mpg",
    "grid/lbax4n.mpg",
    "grid/lbbc2a.mpg",
    "grid/lwbsza.mpg",
    "grid/sbwe5n.mpg",
)


def read_looped(path, n: int, step: int = 1) -> list[np.ndarray]:
    """n frames (every `step`-th), looping the clip when it is shorter."""
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    i = 0
    while len(frames) < n:
        ok, img = cap.read()
        if not ok:
            if i == 0:  # not one frame: unreadable, looping would never end
                raise RuntimeError(f"cannot read {path}")
            cap.release()
            cap = cv2.VideoCapture(str(path))
            continue
        if i % step == 0:
            frames.append(img)
        i += 1
    cap.release()
    return frames


def write_repeated(clip, times: int, out: Path) -> Path:
    """`clip` played `times` times in a row, re-encoded (mp4v) at its own size and rate."""
    frames, fps = read_frames(clip)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for _ in range(times):
        for img in frames:
            writer.write(img)
    writer.release()
    return out

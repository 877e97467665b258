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

"""An offline demo session video made from a real, public-domain face image.

The face is scikit-image's `astronaut.png` (NASA portrait of Eileen Collins, public domain),
which ships inside the scikit-image wheel, so the demo needs no download. The clip is a 2x2
meeting gallery labelled DEMO on every frame: four tiles of the same photo (two mirrored) drift
and zoom a little; one participant steps away briefly, another for longer, so the timelines
show presence, absence and return.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engagement.core.config import data_dir

DEMO_SESSION = "demo"
# The demo has a database of its own: its public demo/demo account never sits beside real data.
DEMO_DB = "demo.sqlite"
DEMO_SIZE = (640, 480)  # a 2x2 meeting gallery of 320x240 tiles
DEMO_FPS = 15
DEMO_SECONDS = 30
TILE = (320, 240)
FACE_CROP = (90, 0, 390, 225)  # x0, y0, x1, y1 of the head and shoulders in astronaut.png
# Per tile: when its participant is away from the camera (seconds), and how they move. Four
# participants keep the class timeline above the minimum group size (k = 3) most of the time;
# one steps away briefly (same track on return), one leaves for longer (a new track).
TILE_AWAY: tuple[tuple[float, float], ...] = ((14.0, 16.0), (), (6.0, 12.0), ())
TILE_PHASE = (0.0, 1.7, 3.1, 4.6)


def _face_image() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _tile(face: np.ndarray, t_s: float, index: int) -> np.ndarray:
    w, h = TILE
    tile = np.full((h, w, 3), (58 + 12 * index, 52, 48), np.uint8)
    away = TILE_AWAY[index]
    if away and away[0] <= t_s < away[1]:
        return tile
    phase = TILE_PHASE[index]
    x0, y0, x1, y1 = FACE_CROP
    scale = w / (x1 - x0) * (1.0 + 0.05 * np.sin(2 * np.pi * (t_s + phase) / 9.0))
    dx = 12 * np.sin(2 * np.pi * (t_s + phase) / 7.0)
    dy = 6 * np.sin(2 * np.pi * (t_s + phase) / 5.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    matrix = np.array([[scale, 0, w / 2 - cx * scale + dx], [0, scale, h / 2 - cy * scale + dy]])
    source = face if index % 2 == 0 else cv2.flip(face, 1)
    cv2.warpAffine(source, matrix, (w, h), dst=tile, borderMode=cv2.BORDER_TRANSPARENT)
    return tile


def demo_frame(face: np.ndarray, t_s: float) -> np.ndarray:
    w, h = TILE
    canvas = np.zeros((DEMO_SIZE[1], DEMO_SIZE[0], 3), np.uint8)
    for index in range(4):
        x, y = (index % 2) * w, (index // 2) * h
        canvas[y : y + h, x : x + w] = _tile(face, t_s, index)
    cv2.rectangle(canvas, (0, 0), (DEMO_SIZE[0], 28), (0, 0, 0), -1)
    label = f"DEMO - public-domain image (scikit-image astronaut), 4 tiles  {t_s:5.1f} s"
    cv2.putText(canvas, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def demo_db_url() -> str:
    """SQLAlchemy URL of the demo's own database in the data directory."""
    return f"sqlite:///{data_dir() / DEMO_DB}"


def make_demo_video(path: Path, seconds: int = DEMO_SECONDS) -> Path:
    """Write the demo clip (streamed frame by frame) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), DEMO_FPS, DEMO_SIZE)
    if not writer.isOpened():
        raise OSError(f"cannot write the demo video to {path}")
    face = _face_image()
    try:
        for i in range(seconds * DEMO_FPS):
            writer.write(demo_frame(face, i / DEMO_FPS))
    finally:
        writer.release()
    return path

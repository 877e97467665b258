"""An offline demo session video made from a real, public-domain face image.

The face is scikit-image's `astronaut.png` (NASA portrait of Eileen Collins, public domain),
which ships inside the scikit-image wheel, so the demo needs no download. The clip is labelled
DEMO on every frame; the participant drifts and zooms a little, then steps away for a few
seconds (an empty frame), so the timeline shows presence, absence and return.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

DEMO_SESSION = "demo"
DEMO_SIZE = (640, 480)
DEMO_FPS = 15
DEMO_SECONDS = 24
AWAY = (14.0, 18.0)  # seconds during which the participant is away from the camera


def _face_image() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def demo_frame(face: np.ndarray, t_s: float) -> np.ndarray:
    w, h = DEMO_SIZE
    canvas = np.full((h, w, 3), (58, 52, 48), np.uint8)
    if not (AWAY[0] <= t_s < AWAY[1]):
        scale = 0.78 + 0.05 * np.sin(2 * np.pi * t_s / 9.0)
        dx = 30 * np.sin(2 * np.pi * t_s / 7.0)
        dy = 10 * np.sin(2 * np.pi * t_s / 5.0)
        matrix = np.array([[scale, 0, (w - 512 * scale) / 2 + dx], [0, scale, (h - 512 * scale) / 2 + dy]])
        cv2.warpAffine(face, matrix, (w, h), dst=canvas, borderMode=cv2.BORDER_TRANSPARENT)
    cv2.rectangle(canvas, (0, 0), (w, 28), (0, 0, 0), -1)
    label = f"DEMO - public-domain image (scikit-image astronaut)  {t_s:5.1f} s"
    cv2.putText(canvas, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


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

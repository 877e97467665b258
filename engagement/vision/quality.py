"""Face image quality: how much to trust the numbers measured on a face."""

from __future__ import annotations

import cv2
import numpy as np

# Blur is measured on the face resized to this size, so a big face and a small one are judged
# on the same scale (variance of the Laplacian grows with resolution otherwise).
QUALITY_SIZE = 96


def face_box(landmarks: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """Bounding box of the landmarks, clipped to the image."""
    x0, y0 = np.min(landmarks[:, :2], axis=0)
    x1, y1 = np.max(landmarks[:, :2], axis=0)
    return (
        float(max(0.0, x0)),
        float(max(0.0, y0)),
        float(min(width - 1.0, x1)),
        float(min(height - 1.0, y1)),
    )


def face_quality(gray: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, float]:
    """(blur, brightness): variance of the Laplacian (higher = sharper), mean grey 0-255."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return float("nan"), float("nan")
    crop = gray[y0:y1, x0:x1]
    small = cv2.resize(crop, (QUALITY_SIZE, QUALITY_SIZE), interpolation=cv2.INTER_AREA)
    blur = float(cv2.Laplacian(small, cv2.CV_32F).var())
    return blur, float(small.mean())

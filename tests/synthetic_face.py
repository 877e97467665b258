"""A synthetic face for behaviour tests: MediaPipe-indexed landmarks of a 3D head with a known
head pose, eye rotation and eye openness, projected through the documented camera model, and a
stand-in landmarker that returns them. The right answer of every signal is known by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engagement.vision.geometry import (
    EYE_SCALE_PITCH,
    EYE_SCALE_YAW,
    LEFT_EYE,
    MODEL_POINTS_MM,
    RIGHT_EYE,
    camera_matrix,
    matrix_from_euler,
)
from engagement.vision.landmarks import LandmarkedFace

W, H = 640, 480
OPEN_EAR = 0.30
# Heads turn about the neck, not the nose tip: a pivot this far behind the nose (mm).
PIVOT_MM = np.array([0.0, 0.0, 90.0])


@dataclass(frozen=True)
class Pose:
    """One frame of the synthetic participant. Angles in degrees, signs as in records.FEATURE_NAMES."""

    head_yaw: float = 0.0
    head_pitch: float = 0.0
    eye_yaw: float = 0.0  # eye-in-head rotation
    eye_pitch: float = 0.0
    ear: float = OPEN_EAR
    distance_mm: float = 600.0
    offset_mm: tuple[float, float] = (0.0, 0.0)  # head position left/right, up/down of the optical axis
    camera: tuple[float, float] = (0.0, 0.0)  # camera rotation (yaw, pitch) in degrees: the camera moved


def _outline() -> np.ndarray:
    """Points around the face (mm, head frame) for the landmarks no test reads: they give the box."""
    angles = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    return np.stack([70 * np.cos(angles), 10 + 95 * np.sin(angles), np.full_like(angles, 60.0)], axis=1)


def _eye_points(eye: dict, ear: float, eye_yaw: float, eye_pitch: float) -> dict[int, np.ndarray]:
    outer = np.array(MODEL_POINTS_MM[eye["outer"]])
    inner = np.array(MODEL_POINTS_MM[eye["inner"]])
    width = float(np.linalg.norm(outer - inner))
    # Lid gaps follow sin(pi * fraction) along the eye; the three central pairs average 0.91 of the
    # peak, so the peak is chosen for the requested eye aspect ratio.
    peak = ear * width / (np.sin(np.pi * np.array([2, 3, 4]) / 6).mean())
    points: dict[int, np.ndarray] = {}
    for k, (up, down) in enumerate(eye["lids"], start=1):
        base = outer + (inner - outer) * k / 6
        gap = peak * math.sin(math.pi * k / 6)
        points[up] = base - np.array([0.0, gap / 2, 0.0])
        points[down] = base + np.array([0.0, gap / 2, 0.0])
    # The iris centre, offset in the eye's plane by the eye-in-head angles as the geometry module
    # reads them (EYE_SCALE_* half eye widths per sine of the angle).
    half = width / 2
    ey, ep = math.radians(eye_yaw), math.radians(eye_pitch)
    offset = np.array([-EYE_SCALE_YAW * math.sin(ey) * half, EYE_SCALE_PITCH * math.sin(ep) * half, 0.0])
    points[-1] = (outer + inner) / 2 + offset  # iris centre, index filled in by the caller
    return points


def landmarks(pose: Pose) -> np.ndarray:
    """(478, 3) landmarks in pixels for `pose`."""
    head = {i: np.array(p, dtype=float) for i, p in MODEL_POINTS_MM.items()}
    for eye, iris in ((RIGHT_EYE, 468), (LEFT_EYE, 473)):
        pts = _eye_points(eye, pose.ear, pose.eye_yaw, pose.eye_pitch)
        head[iris] = pts.pop(-1)
        head.update(pts)
    outline = _outline()
    free = [i for i in range(478) if i not in head]
    for n, i in enumerate(free):
        head[i] = outline[n % len(outline)]
    idx = np.array(sorted(head))
    pts = np.stack([head[i] for i in idx])
    rot = matrix_from_euler(math.radians(pose.head_yaw), math.radians(pose.head_pitch), 0.0)
    cam = (rot @ (pts - PIVOT_MM).T).T + PIVOT_MM + np.array([*pose.offset_mm, pose.distance_mm])
    if pose.camera != (0.0, 0.0):
        # A camera turned by R sees every point at R^T p.
        turn = matrix_from_euler(math.radians(pose.camera[0]), math.radians(pose.camera[1]), 0.0)
        cam = (turn.T @ cam.T).T
    uv = (camera_matrix(W, H) @ cam.T).T
    out = np.zeros((478, 3), np.float32)
    out[idx, 0] = uv[:, 0] / uv[:, 2]
    out[idx, 1] = uv[:, 1] / uv[:, 2]
    out[idx, 2] = cam[:, 2] - pose.distance_mm
    return out


def textured_image(seed: int = 0, level: float = 128.0, contrast: float = 60.0) -> np.ndarray:
    """A BGR frame with enough texture and light for the face-quality checks."""
    rng = np.random.default_rng(seed)
    grey = np.clip(level + rng.normal(0, contrast, (H, W)), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


class ScriptedLandmarker:
    """Stands in for FaceLandmarker: the n-th call returns the faces `script(n)` describes."""

    def __init__(self, script: Callable[[int], list[Pose]]):
        self.script = script
        self.calls = 0

    def detect(self, image: np.ndarray, t_ms: float | None = None) -> list[np.ndarray]:
        poses = self.script(self.calls)
        self.calls += 1
        return [landmarks(p) for p in poses]

    def detect_faces(self, image: np.ndarray, t_ms: float | None = None) -> list[LandmarkedFace]:
        return [LandmarkedFace(lm) for lm in self.detect(image, t_ms)]

    def close(self) -> None:
        pass

"""MediaPipe's Face Landmarker (Tasks API) behind one small interface: BGR frame in, faces out.

The mediapipe wheel ships no model, so the project ships Google's bundle in models/
(`face-landmarker` in models.json, sha256 checked at load) and hands its bytes to MediaPipe:
nothing is downloaded at run time. Every face comes with 478 landmarks, 52 blendshape scores and
the facial transformation matrix. Swapping the backend means rewriting this file only.

Running modes: a recording or a live feed runs in VIDEO mode (the landmarker tracks faces from the
previous frame and reruns the detector only when it loses one); stills (`evaluate images`) run in
IMAGE mode. VIDEO mode needs strictly increasing integer timestamps, so each landmarker keeps its
own clock: a gallery's per-tile landmarkers and a replayed source never trip over each other.
LIVE uses VIDEO mode with the frames' capture times rather than LIVE_STREAM, whose results come
back on a callback thread: the live loop already drops frames itself when analysis falls behind.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engagement.core.records import BLENDSHAPE_NAMES, RunningMode
from engagement.core.registry import model_record, resolve_model

# Silence TFLite/absl start-up INFO lines that would interleave with the progress bar.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

N_LANDMARKS = 478  # 468 mesh points + 2 x 5 iris points
MODEL_NAME = "face-landmarker"
# What a run records as the landmarker's version (runs.models_json), with the bundle's sha256.
MODEL_VERSION = "face_landmarker-float16-v1-tasks"
# A frame given without a time is taken to follow the previous one by a 30 fps frame interval.
NOMINAL_FRAME_MS = 33


@dataclass(frozen=True)
class LandmarkerOptions:
    max_faces: int = 8
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    static_images: bool = False  # True: unrelated stills, each detected afresh (IMAGE mode)
    running_mode: RunningMode = RunningMode.VIDEO_FILE


@dataclass(frozen=True)
class LandmarkedFace:
    """One face as the landmarker sees it, in pixels of the image it was found in."""

    landmarks: np.ndarray  # (478, 3) float32: x, y in pixels, z in the same pixel scale
    blendshapes: np.ndarray | None = None  # (52,) float32 scores 0-1 in BLENDSHAPE_NAMES order
    transform: np.ndarray | None = None  # (4, 4) float32: canonical face model -> camera, cm


def load_bundle(models_dir: Path | None = None) -> bytes:
    """The registered bundle's bytes after its sha256 check (ModelError otherwise)."""
    return resolve_model(MODEL_NAME, models_dir).read_bytes()


def bundle_sha256(models_dir: Path | None = None) -> str:
    """The sha256 the bundle was checked against when it loaded (its registry entry's)."""
    return model_record(MODEL_NAME, models_dir).sha256


def _rgb_image(image_bgr: np.ndarray):
    import mediapipe as mp  # heavy import (TFLite runtime), only where frames are analysed

    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)  # 10x faster than a numpy channel flip
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


class FaceLandmarker:
    """Finds faces and their landmarks, blendshapes and head transform."""

    def __init__(self, options: LandmarkerOptions, model: bytes | None = None, *, models_dir: Path | None = None):
        from mediapipe.tasks.python import BaseOptions, vision  # heavy import, done once and only here

        self.options = options
        self.image_mode = options.static_images
        mode = vision.RunningMode.IMAGE if self.image_mode else vision.RunningMode.VIDEO
        self._landmarker = vision.FaceLandmarker.create_from_options(
            vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_buffer=model if model is not None else load_bundle(models_dir)),
                running_mode=mode,
                num_faces=options.max_faces,
                min_face_detection_confidence=options.min_detection_confidence,
                min_face_presence_confidence=options.min_tracking_confidence,
                min_tracking_confidence=options.min_tracking_confidence,
                output_face_blendshapes=True,
                output_facial_transformation_matrixes=True,
            )
        )
        self._last_ts = -1

    @classmethod
    def from_options(cls, options: LandmarkerOptions) -> "FaceLandmarker":
        return cls(options)

    def _timestamp(self, t_ms: float | None) -> int:
        """This landmarker's next VIDEO-mode timestamp: the frame's time, kept strictly increasing."""
        wanted = self._last_ts + NOMINAL_FRAME_MS if t_ms is None or not math.isfinite(t_ms) else int(round(t_ms))
        self._last_ts = max(wanted, self._last_ts + 1)
        return self._last_ts

    def detect_faces(self, image_bgr: np.ndarray, t_ms: float | None = None) -> list[LandmarkedFace]:
        """Every face in the image. `t_ms`: the frame's time (VIDEO mode; ignored for stills)."""
        h, w = image_bgr.shape[:2]
        image = _rgb_image(image_bgr)
        if self.image_mode:
            result = self._landmarker.detect(image)
        else:
            result = self._landmarker.detect_for_video(image, self._timestamp(t_ms))
        faces = []
        for i, face in enumerate(result.face_landmarks):
            pts = np.array([(p.x, p.y, p.z) for p in face], dtype=np.float32)
            # MediaPipe gives normalised x/y and z in units of image width.
            pts[:, 0] *= w
            pts[:, 1] *= h
            pts[:, 2] *= w
            faces.append(
                LandmarkedFace(
                    pts,
                    _blendshapes(result.face_blendshapes[i]) if result.face_blendshapes else None,
                    np.asarray(result.facial_transformation_matrixes[i], np.float32)
                    if result.facial_transformation_matrixes
                    else None,
                )
            )
        return faces

    def detect(self, image_bgr: np.ndarray, t_ms: float | None = None) -> list[np.ndarray]:
        """Landmarks of every face in the image, each an array (478, 3) float32."""
        return [face.landmarks for face in self.detect_faces(image_bgr, t_ms)]

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _blendshapes(categories) -> np.ndarray:
    scores = {c.category_name: c.score for c in categories}
    return np.array([scores.get(name, math.nan) for name in BLENDSHAPE_NAMES], dtype=np.float32)

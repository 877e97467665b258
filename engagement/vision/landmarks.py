"""MediaPipe FaceMesh behind one small interface: BGR frame in, faces with 478 landmarks out.

mediapipe's `solutions` API is deprecated upstream but 0.10.21 is the last release that ships
the face models inside the wheel (no download at run time), so it stays pinned and confined
to this module; swapping the backend means rewriting this file only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

# Silence TFLite/absl start-up INFO lines that would interleave with the progress bar.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

N_LANDMARKS = 478  # 468 mesh points + 2 x 5 iris points (refine_landmarks=True)


@dataclass(frozen=True)
class LandmarkerOptions:
    max_faces: int = 8
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    static_images: bool = False  # True: detect on every frame (unrelated images)


class FaceLandmarker:
    """Finds faces and their 478 landmarks (x, y in pixels, z in the same pixel scale)."""

    def __init__(self, options: LandmarkerOptions):
        import mediapipe as mp  # heavy import, done once and only here

        self.options = options
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=options.static_images,
            max_num_faces=options.max_faces,
            refine_landmarks=True,
            min_detection_confidence=options.min_detection_confidence,
            min_tracking_confidence=options.min_tracking_confidence,
        )

    @classmethod
    def from_options(cls, options: LandmarkerOptions) -> "FaceLandmarker":
        return cls(options)

    def detect(self, image_bgr: np.ndarray) -> list[np.ndarray]:
        """Landmarks of every face in the image, each an array (478, 3) float32."""
        h, w = image_bgr.shape[:2]
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)  # 10x faster than a numpy channel flip
        result = self._mesh.process(rgb)
        faces = []
        for face in result.multi_face_landmarks or ():
            pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            # MediaPipe gives normalised x/y and z in units of image width.
            pts[:, 0] *= w
            pts[:, 1] *= h
            pts[:, 2] *= w
            faces.append(pts)
        return faces

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

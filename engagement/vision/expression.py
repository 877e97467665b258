"""Facial expression probabilities from aligned face crops, on ONNX Runtime only (no torch).

The vision stage calls, per frame:

    crops = np.stack([align_face(frame_bgr, lm) for lm in faces_landmarks])
    probs = model.predict(crops)          # (N, 7) float32, rows sum to 1, order = model.labels

`align_face` reproduces the framing of FER2013 (what the CNN was trained on), so the model sees
faces at the same scale and position as in training. `ExpressionModel.load(name)` resolves the
name in models/models.json and refuses a file whose sha256 differs from the recorded one.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from engagement.core.errors import ModelError
from engagement.core.registry import onnx_session, resolve_model, sha256_file

DEFAULT_MODEL = "expression-cnn.v4"
CROP_SIZE = 48

# Where FER2013 puts facial points in its 48x48 images: medians over 576 FER2013 images on which
# MediaPipe FaceMesh (0.10.21) found a face (images upscaled x4; measured for this project; the
# Tasks Face Landmarker that replaced it gives the same 478 points). Eye centres
# are the mean of the two eye corners, the mouth centre is the mean of the inner lip midpoints.
FER_EYE_DIST = 17.2  # px between the two eye centres
FER_EYE_MOUTH = 19.0  # px from the eyes' midpoint to the mouth centre
FER_FACE_CENTRE = (24.0, 28.2)  # midpoint between the eyes' midpoint and the mouth centre

# MediaPipe FaceMesh indices (same in the 468- and 478-point meshes).
_EYE_A = (33, 133)  # eye corners of the eye on the image's left for an upright face
_EYE_B = (362, 263)
_MOUTH = (13, 14)  # inner upper / lower lip midpoints


class InputError(ModelError, ValueError):
    """Input of the wrong shape or type. Also a ValueError, since it is the caller's bug."""


def _eye_mouth(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 468 or lm.shape[1] < 2:
        raise InputError(f"landmarks must be (478, 3) MediaPipe FaceMesh points in pixels, got shape {lm.shape}")
    pts = lm[:, :2]
    eye_a, eye_b, mouth = pts[list(_EYE_A)].mean(0), pts[list(_EYE_B)].mean(0), pts[list(_MOUTH)].mean(0)
    if not np.isfinite(np.concatenate([eye_a, eye_b, mouth])).all():
        raise InputError("landmarks contain NaN or infinity")
    return eye_a, eye_b, mouth


def face_transform(landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """2x3 similarity matrix that maps frame pixels onto the FER2013-framed `size` crop.

    Rotation levels the eyes. Scale averages two estimates of face size, from the eye distance
    and from the eye-to-mouth distance, each against its FER2013 median: a turned head (yaw)
    shortens the first and a nodding head (pitch) the second, so one alone would zoom in too far.
    """
    eye_a, eye_b, mouth = _eye_mouth(landmarks)
    eye_vec = eye_b - eye_a
    eye_mid = (eye_a + eye_b) / 2
    eye_dist = float(np.hypot(*eye_vec))
    eye_mouth = float(np.hypot(*(mouth - eye_mid)))
    k = size / 48.0
    scale = 0.5 * (k * FER_EYE_DIST / max(eye_dist, 1e-6) + k * FER_EYE_MOUTH / max(eye_mouth, 1e-6))
    if eye_dist < 1e-3 and eye_mouth < 1e-3:
        raise InputError("landmarks are degenerate (eyes and mouth coincide)")
    angle = np.arctan2(eye_vec[1], eye_vec[0])
    cos, sin = np.cos(-angle) * scale, np.sin(-angle) * scale
    centre = (eye_mid + mouth) / 2
    rot = np.array([[cos, -sin], [sin, cos]])
    target = np.array(FER_FACE_CENTRE) * k
    return np.hstack([rot, (target - rot @ centre)[:, None]])


def align_face(frame_bgr: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Crop one face like FER2013: (size, size) uint8 gray, eyes level, FER2013 scale and margin.

    frame_bgr: (H, W, 3) uint8 BGR (a (H, W) gray frame is accepted too).
    landmarks: (478, 3) float MediaPipe FaceMesh points, x and y in pixels of this frame.
    """
    if not isinstance(frame_bgr, np.ndarray) or frame_bgr.dtype != np.uint8:
        raise InputError("frame must be a uint8 numpy array (H, W, 3) BGR")
    if frame_bgr.ndim == 3 and frame_bgr.shape[2] == 3:
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    elif frame_bgr.ndim == 2:
        gray = frame_bgr
    else:
        raise InputError(f"frame must be (H, W, 3) BGR uint8, got shape {frame_bgr.shape}")
    m = face_transform(landmarks, size)
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    if scale < 0.5:
        # Shrinking a big face straight to 48 px with bilinear sampling aliases (FER2013 images
        # are smooth downscales). Downscale the face's neighbourhood with area averaging first.
        inv = cv2.invertAffineTransform(m)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], float) @ inv.T
        x0, y0 = np.floor(corners.min(0)).astype(int) - 2
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
        h, w = gray.shape
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if xb - xa < 2 or yb - ya < 2:
            raise InputError("the face lies outside the frame")
        roi = gray[ya:yb, xa:xb]
        f = 1.0 / (2.0 * scale)  # leave ~2x oversampling for the final warp
        small = cv2.resize(roi, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / roi.shape[1], small.shape[0] / roi.shape[0]
        # frame -> roi (shift) -> small (scale); compose into m.
        to_small = np.array([[fx, 0, -xa * fx], [0, fy, -ya * fy], [0, 0, 1]])
        m = m @ np.linalg.inv(to_small)
        gray = small
    # Replicated borders where the crop leaves the frame, like FER2013's padded web images.
    return cv2.warpAffine(gray, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class ExpressionModel:
    """The expression CNN in an ONNX Runtime session; `predict` takes aligned 48x48 crops."""

    def __init__(self, session, path: Path, metadata: dict[str, str]) -> None:
        self._session = session
        self.path = path
        self.metadata = metadata
        self.name: str = metadata.get("name", "expression-cnn")
        self.version: str = metadata["version"]
        self.sha256: str = sha256_file(path)
        self.labels: tuple[str, ...] = tuple(json.loads(metadata["labels"]))
        self.input_size: int = int(metadata["input_size"])
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name

    @classmethod
    def load(
        cls,
        name: str = DEFAULT_MODEL,
        models_dir: Path | None = None,
        threads: int = 1,
    ) -> "ExpressionModel":
        """Load a registered model by name; `threads` = ONNX Runtime intra-op threads."""
        path = resolve_model(name, models_dir)
        return cls.from_file(path, threads=threads)

    @classmethod
    def from_file(cls, path: Path, threads: int = 1) -> "ExpressionModel":
        """Load without the registry check (tests, experiments); prefer `load`."""
        try:
            session = onnx_session(path, threads=threads, denormal_as_zero=True)
        except Exception as e:  # ORT raises its own exception types, one per failure kind
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"cannot load model {path}: {first}") from None
        meta = dict(session.get_modelmeta().custom_metadata_map)
        missing = {"version", "labels", "input_size"} - meta.keys()
        if missing:
            raise ModelError(f"model {path} lacks metadata {sorted(missing)}; not an expression model")
        try:
            model = cls(session, Path(path), meta)
        except (ValueError, TypeError) as e:
            raise ModelError(f"model {path} has malformed metadata: {e}") from None
        out_shape = session.get_outputs()[0].shape
        if len(out_shape) != 2 or out_shape[1] != len(model.labels):
            raise ModelError(f"model {path} outputs {out_shape}, expected (N, {len(model.labels)})")
        return model

    def predict(self, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, 48, 48) uint8 aligned gray crops -> (N, 7) float32 probabilities (rows sum to 1)."""
        s = self.input_size
        if not isinstance(crops, np.ndarray):
            raise InputError(f"crops must be a numpy array (N, {s}, {s}) uint8, got {type(crops).__name__}")
        if crops.ndim != 3 or crops.shape[1:] != (s, s):
            raise InputError(f"crops must have shape (N, {s}, {s}), got {crops.shape}; use align_face()")
        if crops.dtype != np.uint8:
            raise InputError(f"crops must be uint8 gray pixels, got dtype {crops.dtype}")
        n = crops.shape[0]
        out = np.empty((n, len(self.labels)), dtype=np.float32)
        for i in range(0, n, batch_size):
            x = crops[i : i + batch_size, None].astype(np.float32)
            out[i : i + batch_size] = self._session.run([self._output], {self._input: x})[0]
        return out

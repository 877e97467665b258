"""On-device masking of faces in any image that is shown or saved (previews, debug snapshots).

Pixels never reach the store; this module is for the few images a person may see. Every such
image is masked first (blur, pixelate or solid fill over each face box plus a margin), and a
verify pass re-detects faces on the result: `save_masked` refuses to write while a face remains,
`safe_preview` escalates to solid fills and, failing that, returns a blank frame.

Verification uses MediaPipe face detection (the shipped Face Landmarker bundle's BlazeFace
detector, low confidence 0.3, so it errs towards "a face is still there"), imported lazily so
importing this module costs nothing. The bundle has no full-range model, so "full range" runs the
same detector on overlapping windows of the image too, where a small face is large enough for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from engagement.vision.landmarks import detector_model
from privacy.errors import FaceLeakError

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
Operator = Callable[[np.ndarray], np.ndarray]

# Fraction of the box size added on every side: landmark/detector boxes are tight around the
# features and leave hairline, ears and jaw, which identify a person as well.
DEFAULT_MARGIN = 0.25
VERIFY_CONFIDENCE = 0.3
# On the whole image the bundle's detector scores faces that masking left only a head outline of
# (hair, ears, a solid box) up to 0.46 on the shared clips, unmasked faces 0.90-0.96; the
# windows, where real faces are larger, never scored a masked one. So the whole image asks more.
VERIFY_CONFIDENCE_WHOLE = 0.5

OPERATORS: dict[str, Operator] = {}


def operator(name: str) -> Callable[[Operator], Operator]:
    """Register a masking operator: a function from a BGR region to a masked region of the same shape."""

    def deco(fn: Operator) -> Operator:
        OPERATORS[name] = fn
        return fn

    return deco


@operator("blur")
def _blur(roi: np.ndarray) -> np.ndarray:
    import cv2

    h, w = roi.shape[:2]
    # A kernel about half the face: strong enough that the detector no longer finds a face
    # (a light blur is famously reversible and still detectable).
    k = max(3, (max(h, w) // 2) | 1)
    out = cv2.GaussianBlur(roi, (k, k), 0)
    return cv2.GaussianBlur(out, (k, k), 0)


@operator("pixelate")
def _pixelate(roi: np.ndarray) -> np.ndarray:
    import cv2

    h, w = roi.shape[:2]
    # At most 6 blocks across: too coarse to carry a face's structure.
    blocks = 6
    small = cv2.resize(roi, (max(1, min(blocks, w)), max(1, min(blocks, h))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


@operator("solid")
def _solid(roi: np.ndarray) -> np.ndarray:
    return np.full_like(roi, 128)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("expected a BGR uint8 image of shape (H, W, 3)")


def expand_box(box: Box, size: tuple[int, int], margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """The box grown by `margin` of its size on every side, clipped to the image (w, h)."""
    w, h = size
    x0, y0, x1, y1 = (float(v) for v in box)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    return (
        max(0, int(np.floor(x0 - mx))),
        max(0, int(np.floor(y0 - my))),
        min(w, int(np.ceil(x1 + mx))),
        min(h, int(np.ceil(y1 + my))),
    )


def mask_faces(image_bgr: np.ndarray, boxes: Iterable[Box], method: str = "pixelate", *, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """A copy of the image with every box (plus margin) masked by `method`."""
    _check_image(image_bgr)
    try:
        op = OPERATORS[method]
    except KeyError:
        raise ValueError(f"unknown masking method {method!r}; choose from: {', '.join(sorted(OPERATORS))}") from None
    out = image_bgr.copy()
    h, w = out.shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = expand_box(box, (w, h), margin)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = op(out[y0:y1, x0:x1])
    return out


# -- detection (verify pass) ------------------------------------------------------------------------


def _detector():
    # Imported lazily: mediapipe is heavy, and most users of this module never verify anything.
    from mediapipe.tasks.python import BaseOptions, vision

    # One per verify call, closed by its caller: a detector kept for the process would be
    # finalised after MediaPipe's dispatcher has shut down, which prints a traceback at exit.
    return vision.FaceDetector.create_from_options(
        vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=detector_model()),
            min_detection_confidence=VERIFY_CONFIDENCE,
        )
    )


def _windows(w: int, h: int, model_selection: int) -> list[tuple[int, int, int, int]]:
    """The whole image; for "full range" also 3 x 3 half-size windows overlapping by half."""
    out = [(0, 0, w, h)]
    if model_selection == 1:
        ww, wh = max(1, w // 2), max(1, h // 2)
        out += [(x, y, x + ww, y + wh) for y in (0, h // 4, h - wh) for x in (0, w // 4, w - ww)]
    return out


def detect_faces(image_bgr: np.ndarray, *, model_selection: int = 1) -> list[Box]:
    """Face boxes (pixels) found by MediaPipe face detection at the verify confidence."""
    import cv2
    import mediapipe as mp

    _check_image(image_bgr)
    h, w = image_bgr.shape[:2]
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    boxes = []
    with _detector() as detector:
        results = [
            (x0, y0, x1, y1, detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                      data=np.ascontiguousarray(rgb[y0:y1, x0:x1]))))
            for x0, y0, x1, y1 in _windows(w, h, model_selection)
        ]  # fmt: skip
    for x0, y0, x1, y1, result in results:
        floor = VERIFY_CONFIDENCE_WHOLE if (x0, y0, x1, y1) == (0, 0, w, h) else VERIFY_CONFIDENCE
        for d in result.detections:
            if d.categories and d.categories[0].score < floor:
                continue
            bb = d.bounding_box  # pixels of the crop
            boxes.append((x0 + bb.origin_x, y0 + bb.origin_y, x0 + bb.origin_x + bb.width, y0 + bb.origin_y + bb.height))
    return boxes


def find_remaining_faces(image_bgr: np.ndarray) -> list[Box]:
    """Faces either detector model still finds: full range (model 1, as the contract asks) and
    short range (model 0), which catches large close-up faces the full-range model can miss."""
    return detect_faces(image_bgr, model_selection=1) + detect_faces(image_bgr, model_selection=0)


def verify_no_faces(image_bgr: np.ndarray) -> bool:
    """True when no face can be detected in the image (strict: low confidence, two models)."""
    return not find_remaining_faces(image_bgr)


def save_masked(image: np.ndarray, path: str | Path, boxes: Iterable[Box], method: str = "pixelate") -> Path:
    """Mask the boxes, verify, and write the image. Raises FaceLeakError (nothing is written) if
    a face can still be detected after masking."""
    import cv2

    masked = mask_faces(image, list(boxes), method)
    remaining = find_remaining_faces(masked)
    if remaining:
        raise FaceLeakError(
            f"refusing to save {Path(path).name}: {len(remaining)} face(s) still detectable after "
            f"{method} masking (pass the missing face boxes, or use method 'solid')"
        )
    path = Path(path)
    if not cv2.imwrite(str(path), masked):
        raise FaceLeakError(f"could not write {path} (unsupported extension or unwritable directory)")
    return path


def safe_preview(image: np.ndarray, boxes: Iterable[Box], method: str = "pixelate") -> np.ndarray:
    """An image that is safe to show: masked with `method`; where a face is still found, those
    regions are filled solid too; if one still remains, a blank frame."""
    boxes = list(boxes)
    masked = mask_faces(image, boxes, method)
    for _ in range(2):
        remaining = find_remaining_faces(masked)
        if not remaining:
            return masked
        masked = mask_faces(masked, remaining, "solid", margin=0.5)
    return np.full_like(image, 128)

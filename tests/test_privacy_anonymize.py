"""Masked previews on the shared real face videos pass the verify pass; unmasked ones do not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import require_shared
from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions
from privacy.anonymize import OPERATORS, mask_faces, safe_preview, save_masked, verify_no_faces
from privacy.errors import FaceLeakError

pytestmark = [pytest.mark.slow, pytest.mark.data]

VIDEOS = ["pyfeat/single_face.mp4", "pyfeat/WolfgangLanger_Pexels.mp4", "liveportrait/d9.mp4", "grid/brbk7n.mpg"]


def frames(relative: str, n: int = 3) -> list[np.ndarray]:
    """n frames spread over the video (read by seeking, never the whole video)."""
    cap = cv2.VideoCapture(str(require_shared(f"videos/{relative}")))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    out = []
    for i in range(n):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i * total // n)
        ok, img = cap.read()
        if ok:
            out.append(img)
    cap.release()
    assert out, relative
    return out


def face_boxes(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Boxes the way the pipeline has them: from the 478-landmark face mesh (tight around the
    features), which is what a preview of the vision stage would mask."""
    with FaceLandmarker(LandmarkerOptions(max_faces=4, static_images=True)) as landmarker:
        faces = landmarker.detect(image)
    return [(*lm[:, :2].min(axis=0), *lm[:, :2].max(axis=0)) for lm in faces]


@pytest.mark.parametrize("video", VIDEOS)
def test_masked_previews_pass_verify(video, tmp_path):
    for k, image in enumerate(frames(video)):
        boxes = face_boxes(image)
        assert boxes, f"no face found in {video} frame {k}"
        assert not verify_no_faces(image), "the verify pass must see the unmasked face"
        for method in OPERATORS:
            masked = mask_faces(image, boxes, method)
            assert verify_no_faces(masked), f"{method} left a face in {video} frame {k}"
            assert masked.shape == image.shape and not np.shares_memory(masked, image)
        path = save_masked(image, tmp_path / f"{k}.png", boxes, "pixelate")
        assert path.exists() and verify_no_faces(cv2.imread(str(path)))


def test_save_refuses_when_a_face_remains(tmp_path):
    image = frames("pyfeat/single_face.mp4", 1)[0]
    target = tmp_path / "leak.png"
    with pytest.raises(FaceLeakError, match="refusing to save"):
        save_masked(image, target, [], "blur")
    # A box that misses the face does not help either.
    with pytest.raises(FaceLeakError):
        save_masked(image, target, [(0, 0, 20, 20)], "solid")
    assert not target.exists()
    # A preview falls back to solid fills on what the detector still finds.
    assert verify_no_faces(safe_preview(image, [], "blur"))


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown masking method"):
        mask_faces(np.zeros((10, 10, 3), np.uint8), [], "swirl")

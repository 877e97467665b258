"""FER2013 faces re-framed the way the product frames a face, for training on what it serves.

In the product a face reaches the CNN through the Face Landmarker and `align_face`; in
FER2013 it arrives as the data set's own 48x48 crop. The two framings differ a little (the crop
is resampled, levelled and scaled by our landmarks), and that can cost accuracy: on the 3,309
PublicTest faces the landmarker finds, v2 scored 0.699 on FER2013's crops and 0.688 on the same
faces in the product's framing (v1: 0.693 and 0.692; v3, trained on both: 0.701 and 0.703).
This module runs each FER2013 image through that path once (upscaled x4 so the landmarker
sees a face of webcam size) and caches the crops, so training can show the net both framings.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import cv2
import numpy as np

from engagement.vision.expression_images import largest_face_crop
from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions

UPSCALE = 4
# Lower than the product's 0.6: these images are known to hold one face, and a low-contrast
# FER2013 face that the detector half-doubts is still worth its crop.
DETECTION_CONFIDENCE = 0.3


def product_crops(pixels: np.ndarray, progress_every: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(N, 48, 48) uint8 FER2013 faces -> (crops (N, 48, 48) uint8, found (N,) bool).

    A face the landmarker misses keeps a zero crop and found=False (about 7% of FER2013).
    """
    options = LandmarkerOptions(max_faces=1, static_images=True, min_detection_confidence=DETECTION_CONFIDENCE)
    crops = np.zeros_like(pixels)
    found = np.zeros(len(pixels), dtype=bool)
    t0 = time.time()
    with FaceLandmarker.from_options(options) as landmarker:
        for i, face in enumerate(pixels):
            side = face.shape[0] * UPSCALE
            big = cv2.cvtColor(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
            crop, _ = largest_face_crop(landmarker, big)
            if crop is not None:
                crops[i], found[i] = crop, True
            if progress_every and (i + 1) % progress_every == 0:
                print(f"framed {i + 1}/{len(pixels)} faces, {found[: i + 1].mean():.3f} found, "
                      f"{time.time() - t0:.0f}s", flush=True)
    return crops, found


def pixels_digest(pixels: np.ndarray) -> str:
    """sha256 of the faces' bytes and shape: a cache of their framing belongs to exactly them."""
    digest = hashlib.sha256(repr(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def cached_product_crops(arrays: dict[str, np.ndarray], cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """`product_crops` of every row of the FER2013 arrays, computed once and kept in `cache`."""
    digest = pixels_digest(arrays["pixels"])
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if "pixels_sha256" in z.files and str(z["pixels_sha256"]) == digest:
                return z["crops"], z["found"]
        print(f"{cache} was framed from other faces: framing again", flush=True)
    crops, found = product_crops(arrays["pixels"])
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez_compressed(tmp, crops=crops, found=found, pixels_sha256=np.array(digest))
    tmp.replace(cache)  # a run killed while framing leaves no half-written cache behind
    return crops, found

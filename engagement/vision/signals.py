"""The per-frame numbers of one face: what the vision stage measures from the landmarks, and what
a participant's browser measures itself and sends (engagement/vision/browser.py). Numbers only.

Units as in `engagement.core.records.FEATURE_NAMES`: angles in radians (camera frame, the signs
of `engagement.vision.geometry`), distances in mm, face size in pixels, sharpness as the variance
of the Laplacian of the face resized to 96x96, brightness as its mean grey level 0-255.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaceNumbers:
    yaw: float
    pitch: float
    roll: float
    tz: float  # nose tip's distance from the camera, mm
    gaze_yaw: float  # head + eye-in-head
    gaze_pitch: float
    ear_left: float  # eye aspect ratio, the participant's own left eye
    ear_right: float
    lids_left: tuple[float, ...]  # five lid gaps / inter-ocular distance
    lids_right: tuple[float, ...]
    iod: float  # inter-ocular distance, pixels: the face's size
    blur: float
    brightness: float
    pivot: tuple[float, float, float]  # the head's turning point, mm in the camera frame

    def values(self) -> tuple[float, ...]:
        """The numbers in FEATURE_NAMES order."""
        return (
            self.yaw, self.pitch, self.roll, self.tz, self.gaze_yaw, self.gaze_pitch,
            self.ear_left, self.ear_right, *self.lids_left, *self.lids_right, self.iod, self.blur, self.brightness,
        )  # fmt: skip

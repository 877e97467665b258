"""The vision stage of a participant measuring themself: their browser ran the Face Landmarker
and computed the per-frame numbers (`FaceNumbers`); here they are judged by the very same code as
frames measured in Python (`VisionStage.judge`: blinks, attention against the participant's own
screen direction), so there is one implementation of the attention logic.

A `NumbersFrame` stands where a `Frame` would: its time, and the face's numbers or None when the
browser found no face. There is one face, the participant's own (track 1): their consent is their
own, given on the join page, and the run's consent gate ties the track to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engagement.core.config import AnalysisOptions
from engagement.core.records import FaceObservation
from engagement.vision.landmarks import MODEL_NAME as LANDMARKER
from engagement.vision.landmarks import MODEL_VERSION
from engagement.vision.signals import FaceNumbers
from engagement.vision.stage import VisionStage

TRACK_ID = 1
# No landmarks leave the browser: the observation carries an empty set.
_NO_LANDMARKS = np.zeros((0, 3), np.float32)


@dataclass(frozen=True)
class NumbersFrame:
    t_ms: float  # from the start of the participant's stream
    index: int
    numbers: FaceNumbers | None  # None: no face in this frame
    size: tuple[int, int] = (0, 0)  # the camera's frame size, as the browser reported it


class BrowserVisionStage(VisionStage):
    """Judges numbers measured in a browser; `runtime` names what measured them, for the run record."""

    def __init__(self, options: AnalysisOptions, *, runtime: str, landmarker_sha256: str | None = None):
        super().__init__(options, landmarker=None, expression_model=None, landmarker_sha256=landmarker_sha256)
        self.runtime = runtime
        self._box = (0.0, 0.0, 0.0, 0.0)
        self._faceless = False

    def model_versions(self) -> dict[str, dict[str, str]]:
        models = super().model_versions()
        models[LANDMARKER] = {**models.get(LANDMARKER, {"version": MODEL_VERSION}), "runtime": self.runtime}
        return models

    def observe(self, frame: NumbersFrame) -> list[FaceObservation]:
        self._advance_clock(frame)
        self._box = (0.0, 0.0, float(frame.size[0]), float(frame.size[1]))
        self._faceless = frame.numbers is None
        return [] if self._faceless else [FaceObservation(TRACK_ID, self._box, _NO_LANDMARKS)]

    def faceless_tracks(self) -> list[tuple[int, tuple[float, float, float, float]]]:
        """The participant is there while their stream runs: a frame without their face makes
        their second `absent`, as a gallery tile with the camera off does."""
        return [(TRACK_ID, self._box)] if self._faceless else []

    def measure(self, frame: NumbersFrame, faces: list[FaceObservation]):
        out = [self.judge(frame.t_ms, face.track_id, frame.numbers) for face in faces if frame.numbers is not None]
        self._forget_stale(frame.t_ms)
        return out

    def close(self) -> None:
        return None  # no landmarker here: it ran in the browser

"""The vision stage: frames in, per-face numbers out. Pixels never leave this package.

Two steps, so the consent gate can sit between them: `observe` finds and tracks faces (needed to
know who is there at all), `measure` computes the numbers for the faces the gate let through.
A face the gate refuses is never measured. `measure` also judges each face's attention against
its own screen direction (vision/attention.py), one tracker per track, the same live and on files.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from engagement.core.config import AnalysisOptions
from engagement.core.records import BLENDSHAPE_NAMES, EYE_BLENDSHAPES, FaceObservation, Frame, FrameFeatures, RunningMode
from engagement.vision.attention import AttentionTracker, FaceSignals
from engagement.vision.expression import ExpressionModel, align_face
from engagement.vision.fatigue import YawnDetector, mouth_ratio
from engagement.vision.geometry import BlinkDetector, eye_features, matrix_pose, solve_head
from engagement.vision.landmarks import MODEL_NAME as LANDMARKER
from engagement.vision.landmarks import MODEL_VERSION, FaceLandmarker, LandmarkerOptions, bundle_sha256, load_bundle
from engagement.vision.quality import face_box, face_quality
from engagement.vision.signals import FaceNumbers
from engagement.vision.tracking import FaceTracker


def landmarker_options(options: AnalysisOptions, max_faces: int, running_mode: RunningMode) -> LandmarkerOptions:
    return LandmarkerOptions(
        max_faces=max_faces,
        min_detection_confidence=options.min_detection_confidence,
        min_tracking_confidence=options.min_tracking_confidence,
        running_mode=running_mode,
    )


def expression_model_for(options: AnalysisOptions, models_dir: Path | None) -> ExpressionModel | None:
    """The expression CNN where the profile allows expressions, else None: under `eu-ai-act` the
    model file is never opened."""
    return ExpressionModel.load(models_dir=models_dir) if options.expression else None


# Which blendshapes pass, with expressions allowed (True) or not (False): eye ones always.
_KEPT_BLENDSHAPES = {
    allowed: tuple(allowed or name in EYE_BLENDSHAPES for name in BLENDSHAPE_NAMES) for allowed in (False, True)
}


_JAW_OPEN = BLENDSHAPE_NAMES.index("jawOpen")
_SMILE = (BLENDSHAPE_NAMES.index("mouthSmileLeft"), BLENDSHAPE_NAMES.index("mouthSmileRight"))


def face_numbers(face: FaceObservation, gray: np.ndarray, width: int, height: int) -> FaceNumbers:
    """The per-frame numbers of one face from its landmarks: head pose (the landmarker's
    transform where it gave one), eye-in-head gaze, eye openness, face size and quality."""
    yaw, pitch, roll, tz, pivot = solve_head(face.landmarks, width, height)
    if face.transform is not None and math.isfinite(yaw):
        yaw, pitch, roll = matrix_pose(face.transform)
    eyes = eye_features(face.landmarks)
    blur, brightness = face_quality(gray, face.bbox)
    return FaceNumbers(
        yaw=yaw, pitch=pitch, roll=roll, tz=tz,
        gaze_yaw=yaw + eyes["eye_yaw"], gaze_pitch=pitch + eyes["eye_pitch"],
        ear_left=eyes["ear_left"], ear_right=eyes["ear_right"],
        lids_left=tuple(eyes["lids_left"]), lids_right=tuple(eyes["lids_right"]),
        iod=eyes["iod"], blur=blur, brightness=brightness, pivot=tuple(float(v) for v in pivot),
    )  # fmt: skip


class VisionStage:
    def __init__(
        self,
        options: AnalysisOptions,
        landmarker: FaceLandmarker,
        expression_model=None,
        *,
        landmarker_sha256: str | None = None,
    ):
        self.options = options
        self.landmarker = landmarker
        self.landmarker_sha256 = landmarker_sha256  # of the bundle the landmarker was made from
        self.tracker = FaceTracker(lost_ms=options.lost_track_s * 1000.0)
        self.expression_model = expression_model
        self._blinks: dict[int, BlinkDetector] = {}
        self._attention: dict[int, AttentionTracker] = {}
        self._yawns: dict[int, YawnDetector] = {}
        self._expression_at: dict[int, float] = {}  # track -> when the CNN last ran on it (ms)
        self._last_ms = -math.inf

    @classmethod
    def from_options(
        cls,
        options: AnalysisOptions,
        models_dir: Path | None = None,
        *,
        running_mode: RunningMode = RunningMode.VIDEO_FILE,
    ) -> "VisionStage":
        bundle = load_bundle(models_dir)
        landmarker = FaceLandmarker(landmarker_options(options, options.max_faces, running_mode), bundle)
        return cls(
            options,
            landmarker,
            expression_model_for(options, models_dir),
            landmarker_sha256=bundle_sha256(models_dir),
        )

    def model_versions(self) -> dict[str, dict[str, str]]:
        landmarker = {"version": MODEL_VERSION}
        if self.landmarker_sha256 is not None:
            landmarker["sha256"] = self.landmarker_sha256
        models = {LANDMARKER: landmarker}
        if self.expression_model is not None:
            models[self.expression_model.name] = {
                "version": str(self.expression_model.version),
                "sha256": self.expression_model.sha256,
            }
        return models

    def _advance_clock(self, frame: Frame) -> None:
        """Frames must come in time order: the landmarker tracks faces from frame to frame."""
        if frame.t_ms <= self._last_ms:
            raise ValueError(f"frame times must increase: {frame.t_ms} ms after {self._last_ms} ms")
        self._last_ms = frame.t_ms

    def observe(self, frame: Frame) -> list[FaceObservation]:
        self._advance_clock(frame)
        width, height = frame.size
        faces = self.landmarker.detect_faces(frame.image, frame.t_ms)
        boxes = [face_box(f.landmarks, width, height) for f in faces]
        ids = self.tracker.update(boxes, frame.t_ms)
        return [
            FaceObservation(i, b, f.landmarks, f.blendshapes, f.transform) for i, b, f in zip(ids, boxes, faces)
        ]

    def consent_box(self, face: FaceObservation) -> tuple[float, float, float, float]:
        """The box the consent gate places on the roster; subclasses (gallery view) may anchor it."""
        return face.bbox

    def faceless_tracks(self) -> list[tuple[int, tuple[float, float, float, float]]]:
        """(track id, consent box) of participants known to be there without a face found in the
        last frame: a gallery tile with its camera off. One camera shows none such."""
        return []

    def unmeasurable_tracks(self) -> set[int]:
        """Faceless tracks of the last frame whose face could not have been seen (a tile too
        small for the landmarker): their seconds are `unknown`, not `absent`."""
        return set()

    def name_key(self, track_id: int) -> str | None:
        """The keyed pseudonym of the name label shown with this track (None: none read). One
        camera shows no label; a gallery reads them (engagement/vision/name_ids.py)."""
        return None

    def read_names(self, name_key, reader=None) -> None:
        """Read tiles' name labels (galleries only; one camera has none)."""

    def shared_name_frames(self) -> int:
        """Frames in which two tiles showed one name (a participant joined twice)."""
        return 0

    def layout_changes(self) -> list[tuple[float, str]]:
        """(media ms, layout) each time the meeting layout was (re)found; empty: not watched."""
        return []

    def measure(self, frame: Frame, faces: list[FaceObservation]) -> list[FrameFeatures]:
        if not faces:
            return []
        width, height = frame.size
        gray = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        expressions: list[tuple[float, ...] | None] = [None] * len(faces)
        due = [i for i, face in enumerate(faces) if self._expression_due(face.track_id, frame.t_ms)]
        if due:
            # The grey frame, converted once above for the quality figures, serves every crop.
            crops = np.stack([align_face(gray, faces[i].landmarks) for i in due])
            for i, row in zip(due, self.expression_model.predict(crops)):
                expressions[i] = tuple(float(p) for p in row)
        out = []
        for face, expression in zip(faces, expressions):
            numbers = face_numbers(face, gray, width, height)
            out.append(self.judge(frame.t_ms, face.track_id, numbers, expression=expression,
                                  blendshapes=self._allowed_blendshapes(face.blendshapes), face=face))
        self._forget_stale(frame.t_ms)
        return out

    def judge(self, t_ms: float, track_id: int, n: FaceNumbers, *, expression: tuple[float, ...] | None = None,
              blendshapes: tuple[float | None, ...] | None = None, face: FaceObservation | None = None) -> FrameFeatures:
        """One face's frame verdict and record from its numbers: blinks, attention against the
        track's own screen direction, fatigue. The one place these are judged, whether the
        numbers were measured here or in a participant's browser (vision/signals.py)."""
        ear = (n.ear_left + n.ear_right) / 2.0
        blink = self._blinks.setdefault(track_id, BlinkDetector()).update(ear, t_ms)
        tracker = self._tracker(track_id)
        attention = tracker.update(
            t_ms, FaceSignals(n.gaze_yaw, n.gaze_pitch, ear, n.iod, n.blur, n.brightness, tuple(n.pivot))
        )
        return FrameFeatures(
            t_ms=t_ms,
            track_id=track_id,
            values=n.values(),
            blink=blink,
            expression=expression,
            attention=attention,
            blendshapes=blendshapes,
            closed_since_ms=tracker.closed_since if attention == "eyes_closed" else None,
            eyes_shut=tracker.shut,
            ended_closure_ms=tracker.ended_closure_ms,
            # A browser sends no mouth geometry (a few numbers per frame): no yawns from there.
            yawn=self._yawn(t_ms, face, ear, tracker) if face is not None else False,
        )

    def _yawn(self, t_ms: float, face: FaceObservation, ear: float, tracker: AttentionTracker) -> bool:
        """Whether a yawn is in progress (vision/fatigue.py). It reads the jaw and smile
        blendshapes under every profile, as geometry: only the yes/no leaves this package."""
        scores = face.blendshapes
        jaw = smile = None
        if scores is not None:
            jaw = float(scores[_JAW_OPEN])
            smile = float((scores[_SMILE[0]] + scores[_SMILE[1]]) / 2.0)
        level = tracker.open_level
        eye_ratio = ear / level if level and tracker.shut is not None else None
        detector = self._yawns.setdefault(face.track_id, YawnDetector())
        return detector.update(t_ms, mouth_ratio(face.landmarks), jaw, smile, eye_ratio)

    def _allowed_blendshapes(self, scores: np.ndarray | None) -> tuple[float | None, ...] | None:
        """The face's blendshape scores, less the expression ones where the profile forbids
        expressions: eye closure and eye direction are physical states, kept everywhere."""
        if scores is None:
            return None
        return tuple(float(v) if keep else None for keep, v in zip(_KEPT_BLENDSHAPES[self.options.expression], scores))

    def _expression_due(self, track_id: int, t_ms: float) -> bool:
        """Whether the CNN runs on this face in this frame (at most `expression_hz` times a second)."""
        if self.expression_model is None:
            return False
        hz = self.options.expression_hz
        last = self._expression_at.get(track_id)
        # 1 % slack: frame times are rounded, so 6 frames at 30 fps may land 199.99 ms apart.
        if hz is not None and last is not None and t_ms - last < 0.99 * 1000.0 / hz:
            return False
        self._expression_at[track_id] = t_ms
        return True

    def _tracker(self, track_id: int) -> AttentionTracker:
        tracker = self._attention.get(track_id)
        if tracker is None:
            tracker = self._attention[track_id] = AttentionTracker(self.options.attention)
        return tracker

    def _forget_stale(self, t_ms: float) -> None:
        """Drop per-track state unseen for longer than the attention history: a screen direction
        that old no longer holds, and a long run must not grow with every face it ever saw."""
        horizon = t_ms - self.options.attention.history_s * 1000.0
        for track_id in [k for k, v in self._attention.items() if v.last_t < horizon]:
            del self._attention[track_id]
            self._blinks.pop(track_id, None)
            self._yawns.pop(track_id, None)
            self._expression_at.pop(track_id, None)

    def close(self) -> None:
        self.landmarker.close()

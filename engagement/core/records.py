"""Typed records that flow between stages, in one direction: source -> vision -> windows -> store.

Pixels exist only in `Frame` and `FaceObservation`, which never leave `engagement.vision`;
everything from `FrameFeatures` on is numbers only, so nothing downstream can leak an image.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class RunningMode(enum.Enum):
    """How frames arrive, as MediaPipe Tasks name it.

    VIDEO_FILE: a recording, decoded as fast as the machine allows; every frame is analysed and
    the run is complete only when the file ends. LIVE: a camera or screen; frames come in real
    time, the oldest are dropped when analysis falls behind, and the run ends on a stop signal.
    """

    VIDEO_FILE = "file"
    LIVE = "live"

# Per-frame numbers measured for each face, in a fixed order. Units:
#   head_yaw/pitch/roll: radians, camera frame (x right, y down, z away from the camera);
#                        0,0,0 is a face looking straight into the camera. yaw > 0: the face
#                        turns towards the image's left; pitch > 0: chin down; roll > 0: the
#                        head tilts clockwise in the image.
#   head_tz: distance from the camera to the nose tip in mm under the documented camera model.
#   gaze_yaw/pitch: radians, eye direction in the camera frame (head pose + eye-in-head),
#                   same signs as the head angles; 0,0 = looking into the camera.
#   eye_open_left/right: eye aspect ratio (lid gap / eye width), ~0.25-0.35 open, < 0.12 closed.
#                        left/right are the participant's own.
#   lid_l1..5, lid_r1..5: five vertical lid gaps per eye divided by the inter-ocular distance
#                         (scale-free, so their coefficient of variation matches OpenFace's).
#   face_size: inter-ocular distance in pixels; blur: variance of the Laplacian of the face
#   region (higher = sharper); brightness: mean grey level of the face region, 0-255.
FEATURE_NAMES: tuple[str, ...] = (
    "head_yaw",
    "head_pitch",
    "head_roll",
    "head_tz",
    "gaze_yaw",
    "gaze_pitch",
    "eye_open_left",
    "eye_open_right",
    *(f"lid_l{i}" for i in range(1, 6)),
    *(f"lid_r{i}" for i in range(1, 6)),
    "face_size",
    "blur",
    "brightness",
)

# MediaPipe Face Landmarker's blendshape scores (0-1), in the model's order less `_neutral`. The
# eye ones are physical states (closure, where the eyes look) and are kept under every profile;
# the brow, cheek, jaw, mouth and nose ones describe expressions and are only measured where the
# profile allows expressions (NULL under `eu-ai-act`).
EYE_BLENDSHAPES: tuple[str, ...] = tuple(
    f"eye{what}{side}" for what in ("Blink", "LookDown", "LookIn", "LookOut", "LookUp", "Squint", "Wide")
    for side in ("Left", "Right")
)
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    *EYE_BLENDSHAPES,
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)  # fmt: skip
EXPRESSION_BLENDSHAPES: tuple[str, ...] = tuple(n for n in BLENDSHAPE_NAMES if n not in EYE_BLENDSHAPES)

EXPRESSION_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Per-second attention state of one participant (physical states, not emotions; see
# docs/attention.md): gaze inside the screen cone, gaze outside it, eyes closed longer than a
# blink, no face, or a face that could not be judged (too small, blurred, dark, occluded, or the
# participant's screen direction is still being learned).
ATTENTION_STATES: tuple[str, ...] = ("on_screen", "looking_away", "eyes_closed", "absent", "unknown")
# A frame's verdict: the same, less `absent` (a frame without the face has no verdict).
FRAME_ATTENTION_STATES: tuple[str, ...] = ("on_screen", "looking_away", "eyes_closed", "unknown")


def blendshape_columns(scores: tuple[float | None, ...] | None) -> dict[str, float | None]:
    """`bs_<name>` -> score for a record's dict and table row (None throughout when unmeasured)."""
    return {f"bs_{name}": v for name, v in zip(BLENDSHAPE_NAMES, scores or (None,) * len(BLENDSHAPE_NAMES))}


def _check_blendshapes(scores: tuple[float | None, ...] | None) -> None:
    if scores is not None and len(scores) != len(BLENDSHAPE_NAMES):
        raise ValueError(f"expected {len(BLENDSHAPE_NAMES)} blendshape scores, got {len(scores)}")


@dataclass(frozen=True)
class Frame:
    """One decoded image and when it was captured, in ms from the start of the source."""

    t_ms: float
    index: int
    image: np.ndarray  # BGR uint8, HxWx3

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True)
class FaceObservation:
    """A face found in a frame (vision-internal: holds landmarks in pixels of that frame)."""

    track_id: int
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    landmarks: np.ndarray  # (478, 3) float32: x, y in pixels, z in the same pixel scale
    blendshapes: np.ndarray | None = None  # (51,) scores in BLENDSHAPE_NAMES order, if measured
    transform: np.ndarray | None = None  # (4, 4) canonical face -> camera (cm), if measured


@dataclass(frozen=True)
class FrameFeatures:
    """Numbers measured for one tracked face in one frame. No pixels."""

    t_ms: float
    track_id: int
    values: tuple[float, ...]  # in FEATURE_NAMES order
    blink: bool  # a blink ended at this frame
    expression: tuple[float, ...] | None = None  # EXPRESSION_LABELS order; None when not computed
    # The frame's attention verdict (on_screen | looking_away | eyes_closed | unknown), judged
    # against this participant's own screen direction; None when not judged (counts as unknown).
    attention: str | None = None
    # BLENDSHAPE_NAMES order; None for the whole face when the landmarker gave none, None for
    # one score the profile does not allow (expression blendshapes under `eu-ai-act`).
    blendshapes: tuple[float | None, ...] | None = None
    # On an `eyes_closed` frame: when the closure began. Its first frames kept the verdict from
    # before them (they could still have been a blink); now that it is a closure, the window
    # counts them closed too.
    closed_since_ms: float | None = None
    # Fatigue (docs/attention.md): whether the eyes were below the closed level at this frame
    # (None: not read), how long a closure this frame ended lasted (ms; blinks included), and
    # whether a yawn was in progress (confirmed 1.5 s into it).
    eyes_shut: bool | None = None
    ended_closure_ms: float | None = None
    yawn: bool = False

    def __post_init__(self) -> None:
        if len(self.values) != len(FEATURE_NAMES):
            raise ValueError(f"expected {len(FEATURE_NAMES)} feature values, got {len(self.values)}")
        _check_blendshapes(self.blendshapes)
        if self.attention is not None and self.attention not in FRAME_ATTENTION_STATES:
            raise ValueError(f"a frame's attention must be one of {FRAME_ATTENTION_STATES}, got {self.attention!r}")
        if self.closed_since_ms is not None and (self.attention != "eyes_closed" or self.closed_since_ms > self.t_ms):
            raise ValueError("closed_since_ms belongs to an eyes_closed frame and cannot be later than it")

    def to_dict(self) -> dict[str, float | int | bool | None]:
        out: dict[str, float | int | bool | None] = {"t_ms": self.t_ms, "track_id": self.track_id}
        out.update(zip(FEATURE_NAMES, self.values))
        out["blink"] = self.blink
        for label, p in zip(EXPRESSION_LABELS, self.expression or (None,) * len(EXPRESSION_LABELS)):
            out[f"expr_{label}"] = p
        out["attention"] = self.attention
        out.update(blendshape_columns(self.blendshapes))
        return out


@dataclass(frozen=True)
class WindowFeatures:
    """Statistics of one track over one window (1 s by default): the temporal model's input.

    `n_frames` frames were analysed in the window, the face was found in `n_face` of them.
    When `n_face == 0` every mean/std is None: missing, never zero.

    Attention: `on_screen_ratio` and `eyes_closed_ratio` are shares of the window's judged
    frames (face measurable, screen direction known); None unless at least half the face frames
    were judged (then `attention` is `unknown`). `attention` is the window's state, one of
    ATTENTION_STATES; a window without a face is `absent` by default, or `unknown` when said so
    (a gallery tile too small for a face to be seen: not finding one says nothing).
    """

    track_id: int
    second: int  # window index = floor(t_ms / window_ms)
    n_frames: int
    n_face: int
    blinks: int
    mean: tuple[float | None, ...]  # FEATURE_NAMES order
    std: tuple[float | None, ...]
    expression: tuple[float, ...] | None = None  # mean probabilities; None when not computed
    on_screen_ratio: float | None = None
    eyes_closed_ratio: float | None = None
    attention: str = None  # type: ignore[assignment]  # None: `absent` without a face, else `unknown`
    blendshapes: tuple[float | None, ...] | None = None  # per-second means, BLENDSHAPE_NAMES order
    # Fatigue, physical states (docs/attention.md; None where not measured): a yawn in progress
    # this second (0/1), the share of the last minute's read frames with the eyes below the
    # closed level (PERCLOS), closures of 0.5-3 s that ended this second, blinks per minute and
    # mean blink duration (ms) over the last minute. `smile` (0/1) is an expression: None
    # wherever the profile forbids expressions.
    yawn: int | None = None
    perclos: float | None = None
    long_closures: int = 0
    blink_rate: float | None = None
    blink_ms: float | None = None
    smile: int | None = None

    def __post_init__(self) -> None:
        _check_blendshapes(self.blendshapes)
        if self.attention is None:
            object.__setattr__(self, "attention", "absent" if self.n_face == 0 else "unknown")
        if self.attention not in ATTENTION_STATES:
            raise ValueError(f"attention must be one of {ATTENTION_STATES}, got {self.attention!r}")
        if self.n_face == 0 and self.attention not in ("absent", "unknown"):
            raise ValueError(f"a window without a face cannot be {self.attention!r}")
        for name in ("on_screen_ratio", "eyes_closed_ratio", "perclos"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")

    @property
    def present_ratio(self) -> float:
        return self.n_face / self.n_frames if self.n_frames else 0.0

    @property
    def present(self) -> bool:
        return self.n_face > 0

    def to_dict(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {
            "second": self.second,
            "n_frames": self.n_frames,
            "n_face": self.n_face,
            "present_ratio": self.present_ratio,
            "blinks": self.blinks,
        }
        for name, m, s in zip(FEATURE_NAMES, self.mean, self.std):
            out[f"{name}_mean"] = m
            out[f"{name}_std"] = s
        for label, p in zip(EXPRESSION_LABELS, self.expression or (None,) * len(EXPRESSION_LABELS)):
            out[f"expr_{label}"] = p
        out["on_screen_ratio"] = self.on_screen_ratio
        out["eyes_closed_ratio"] = self.eyes_closed_ratio
        out["attention"] = self.attention
        out.update(blendshape_columns(self.blendshapes))
        out.update({name: getattr(self, name) for name in FATIGUE_COLUMNS})
        return out


# WindowFeatures' fatigue fields, as stored and exported.
FATIGUE_COLUMNS: tuple[str, ...] = ("yawn", "perclos", "long_closures", "blink_rate", "blink_ms", "smile")


@dataclass
class RunSummary:
    """What one analysis run produced, for the CLI's closing summary."""

    session: str
    run_id: int
    frames_read: int = 0
    frames_analysed: int = 0
    seconds: int = 0
    tracks: int = 0
    face_present_share: float = 0.0
    wall_s: float = 0.0
    track_spans: dict[str, tuple[float, float]] = field(default_factory=dict)  # label -> first/last ms seen
    notes: list[str] = field(default_factory=list)
    layouts: list[tuple[float, str]] = field(default_factory=list)  # (media ms, meeting layout) as read

    @property
    def speed_fps(self) -> float:
        return self.frames_analysed / self.wall_s if self.wall_s > 0 else 0.0

"""The temporal model's input: one vector of segment statistics per segment, plus its mask.

Models are trained on EmotiW Engagement-in-the-Wild per-segment OpenFace statistics (`of_seg15_*`,
`of_seg21_*`, 60 dims, see FEATURES.md beside the data). Every input below is computed from those
dims on the training side and from the per-second `WindowFeatures` of one track live, in the same
units. A model declares which of them it reads (its `input_names` metadata); this module
computes them all.

| input           | engagewild (per segment)                         | live (one track, one segment)          |
|-----------------|--------------------------------------------------|----------------------------------------|
| on_screen_share | share of a 2D Gaussian with the segment's gaze   | mean of on_screen_ratio over the       |
|                 | mean offset (12-13 minus the video's median) and | seconds the vision stage judged,       |
|                 | std (14-15) inside the screen cone               | weighted by frames with a face         |
| gaze_offset     | |mean gaze angle (12-13) - the video's median|   | |segment mean gaze - running median|   |
| head_offset     | |mean pose_Rx, pose_Ry (51-52) - video median|   | |segment mean head pitch/yaw - median| |
| gaze_yaw_std    | 14  std gaze_angle_x  (rad)                      | std of gaze_yaw                        |
| gaze_pitch_std  | 15  std gaze_angle_y  (rad)                      | std of gaze_pitch                      |
| eyelid_cv       | mean of 16-25, CV of 10 lid gaps                 | mean over lid_l1..5, lid_r1..5 of CV   |
| head_dist_cv    | 46  CV of eye-camera distance                    | std/mean of head_tz                    |
| head_pitch_std  | 57  std pose_Rx (rad)                            | std of head_pitch                      |
| head_yaw_std    | 58  std pose_Ry (rad)                            | std of head_yaw                        |
| head_roll_std   | 59  std pose_Rz (rad)                            | std of head_roll                       |

Offsets are angles (rad) between the segment's mean direction and the participant's own usual
direction, the Euclidean norm over (pitch, yaw): a webcam above or beside the screen shifts every
raw angle by a constant, which the offset removes, and a norm does not depend on the sign
conventions of OpenFace or of this project. The usual direction is, on engagewild, the median
over the video's segments (the whole ~5 min video, looking ahead); live, a running median of the
track's per-second means over its last BASELINE_S seconds with a face (causal), ready after
BASELINE_MIN_S such seconds: before that the offsets are masked. Seconds the vision stage judged
`looking_away` or `eyes_closed` do not enter the live median, so a long look away cannot become
the participant's usual direction (the vision stage guards its screen direction the same way).

On-screen share: live, the vision stage judges each frame against the participant's own screen
direction and an elliptical screen cone (engagement/vision/attention.py); its verdicts are
exclusive, so a frame with closed eyes is not on screen. On engagewild there are no per-frame
values: the share is approximated by assuming the segment's gaze angles are Gaussian around the
mean offset with the segment's std per axis, and taking the probability mass inside the same
elliptical cone (half-angles given by the caller: the vision stage's defaults when training, the
model's recorded ones when evaluating). Eye closure cannot be seen in these statistics (OpenFace's
eye-closure action unit is not among them), so on engagewild the share reflects gaze only; live,
closed eyes lower it. That is the one input whose live meaning is wider than its training meaning.

Stds and CVs (the variability inputs of engagement-gru.v1) are sign-free and camera-free. Means
of raw angles are not used: they depend on where the camera sits. The ten eyelid CVs are averaged
because OpenFace's eye and lid-pair order need not match MediaPipe's. Dim 47 (min/max distance
ratio) needs per-frame extremes that per-second records do not keep.

No input is an expression: the shipped models do not use the expression CNN's output (there are
no labelled engagement videos with faces to learn that from here).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from engagement.core.records import FEATURE_NAMES, WindowFeatures

INPUT_NAMES: tuple[str, ...] = (
    "on_screen_share",
    "gaze_offset",
    "head_offset",
    "gaze_yaw_std",
    "gaze_pitch_std",
    "eyelid_cv",
    "head_dist_cv",
    "head_pitch_std",
    "head_yaw_std",
    "head_roll_std",
)
N_INPUTS = len(INPUT_NAMES)

# engagewild dims behind each variability input (a tuple is averaged).
ENGAGEWILD_DIMS: dict[str, tuple[int, ...]] = {
    "gaze_yaw_std": (14,),
    "gaze_pitch_std": (15,),
    "eyelid_cv": tuple(range(16, 26)),
    "head_dist_cv": (46,),
    "head_pitch_std": (57,),
    "head_yaw_std": (58,),
    "head_roll_std": (59,),
}
ENGAGEWILD_GAZE_MEAN = (12, 13)  # gaze_angle_x, gaze_angle_y (rad)
ENGAGEWILD_GAZE_STD = (14, 15)
ENGAGEWILD_HEAD_MEAN = (51, 52)  # pose_Rx (pitch), pose_Ry (yaw) (rad)

# Live segments: engagewild segments are 1/8 (15 per video) or 1/11 (21 per video) of a ~5 min
# video with 50 % overlap, i.e. about 37 s or 27 s long. Live segments of 30 s every 15 s sit in
# that range, so the per-segment stds see the same time scale of movement as in training.
SEGMENT_S = 30
HOP_S = 15
# Fewest seconds with a face before a (provisional, shorter) segment is scored: a 3 s clip still
# gets a score. Stds over a few seconds are smaller than over 30 s, which reads as steadier,
# so scores from short spans carry a larger uncertainty (see stage.py).
MIN_PRESENT_S = 2
# The participant's usual direction live: median of the last BASELINE_S seconds with a face
# (10 min: longer than an engagewild video, short enough to follow a webcam that was moved),
# used once BASELINE_MIN_S seconds are in.
BASELINE_S = 600
BASELINE_MIN_S = 10

_IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}
_LIDS = [f"lid_l{i}" for i in range(1, 6)] + [f"lid_r{i}" for i in range(1, 6)]
_DIRECTIONS = ("gaze_pitch", "gaze_yaw", "head_pitch", "head_yaw")
# Standard normal quantiles (equal-probability cells) over which the Gaussian on-screen share
# integrates the pitch axis; the yaw axis is integrated exactly with erf.
_GRID = np.array([NormalDist().inv_cdf((k + 0.5) / 201) for k in range(201)])
_ERF = np.frompyfunc(math.erf, 1, 1)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _ERF(z / math.sqrt(2.0)).astype(np.float64))


def gaussian_cone_share(offset: np.ndarray, std: np.ndarray, cone: tuple[float, float]) -> np.ndarray:
    """Probability that a 2D Gaussian (mean `offset`, per-axis `std`, both (..., 2) as (yaw, pitch)
    in rad) lies inside the elliptical cone with half-angles `cone` = (yaw, pitch) around the
    origin: the engagewild approximation of the on-screen share."""
    offset = np.asarray(offset, dtype=np.float64)
    std = np.maximum(np.asarray(std, dtype=np.float64), 0.0)
    pitch = offset[..., 1, None] + std[..., 1, None] * _GRID  # (..., K)
    # Half-width of the ellipse in yaw at each pitch (0 outside it), then the yaw mass within.
    half = cone[0] * np.sqrt(np.clip(1.0 - (pitch / cone[1]) ** 2, 0.0, None))
    ox, sx = offset[..., 0, None], std[..., 0, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        mass = _normal_cdf((half - ox) / sx) - _normal_cdf((-half - ox) / sx)
    mass = np.where(sx > 0, mass, (np.abs(ox) <= half).astype(np.float64))
    return np.clip(mass, 0.0, 1.0).mean(axis=-1)


def engagewild_inputs(of_seg: np.ndarray, cone: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(x, mask) of shape (N, S, N_INPUTS) from engagewild `of_seg*` arrays (N, S, 60).

    Offsets and the on-screen share use each video's own median over its segments as the
    participant's usual direction; `cone` is the screen cone's (yaw, pitch) half-angles in rad.
    Non-finite values are masked.
    """
    arr = np.asarray(of_seg, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != 60:
        raise ValueError(f"expected engagewild OpenFace segments (N, S, 60), got {arr.shape}")
    n, s, _ = arr.shape
    cols: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore"):
        gaze = arr[:, :, ENGAGEWILD_GAZE_MEAN]
        gaze_off = gaze - np.nanmedian(gaze, axis=1, keepdims=True)
        head = arr[:, :, ENGAGEWILD_HEAD_MEAN]
        head_off = head - np.nanmedian(head, axis=1, keepdims=True)
    cols["on_screen_share"] = np.where(
        np.isfinite(gaze_off).all(-1) & np.isfinite(arr[:, :, ENGAGEWILD_GAZE_STD]).all(-1),
        gaussian_cone_share(np.nan_to_num(gaze_off), np.nan_to_num(arr[:, :, ENGAGEWILD_GAZE_STD]), cone),
        np.nan,
    )
    cols["gaze_offset"] = np.linalg.norm(gaze_off, axis=-1)
    cols["head_offset"] = np.linalg.norm(head_off, axis=-1)
    for name, dims in ENGAGEWILD_DIMS.items():
        cols[name] = arr[:, :, list(dims)].mean(axis=2)
    x = np.zeros((n, s, N_INPUTS), dtype=np.float32)
    mask = np.zeros((n, s, N_INPUTS), dtype=np.float32)
    for j, name in enumerate(INPUT_NAMES):
        ok = np.isfinite(cols[name])
        x[:, :, j] = np.where(ok, cols[name], 0.0)
        mask[:, :, j] = ok
    return x, mask


class Baseline:
    """A track's usual gaze and head direction: running medians of its per-second means over the
    last BASELINE_S seconds with a face, leaving out seconds judged looking away or eyes closed.
    Bounded memory; `add` once per second in order."""

    def __init__(self, size: int = BASELINE_S, min_seconds: int = BASELINE_MIN_S) -> None:
        self.min_seconds = min_seconds
        self._rows: deque[tuple[float, ...]] = deque(maxlen=size)

    def add(self, window: WindowFeatures) -> None:
        if window.n_face <= 0 or window.attention in ("looking_away", "eyes_closed"):
            return
        row = tuple(window.mean[_IDX[name]] for name in _DIRECTIONS)
        if all(v is not None and math.isfinite(v) for v in row):
            self._rows.append(row)  # type: ignore[arg-type]

    def median(self) -> dict[str, float] | None:
        """Median per direction, or None until `min_seconds` seconds are in."""
        if len(self._rows) < self.min_seconds:
            return None
        return dict(zip(_DIRECTIONS, np.median(np.asarray(self._rows), axis=0).tolist()))


def _pool(windows: Sequence[WindowFeatures], feature: str) -> tuple[float, float] | None:
    """Exact mean and population std over all frames of the windows, from per-second mean/std/n."""
    j = _IDX[feature]
    n = m1 = m2 = 0.0
    for w in windows:
        mean, std = w.mean[j], w.std[j]
        if w.n_face <= 0 or mean is None or std is None or not (math.isfinite(mean) and math.isfinite(std)):
            continue
        c = float(w.n_face)
        n += c
        m1 += c * mean
        m2 += c * (std * std + mean * mean)
    if n == 0:
        return None
    mu = m1 / n
    return mu, math.sqrt(max(0.0, m2 / n - mu * mu))


def _on_screen_share(windows: Sequence[WindowFeatures]) -> float | None:
    """Mean of on_screen_ratio over the judged seconds, weighted by frames with a face."""
    total = weight = 0.0
    for w in windows:
        if w.n_face <= 0 or w.on_screen_ratio is None:
            continue
        total += w.n_face * w.on_screen_ratio
        weight += w.n_face
    return total / weight if weight else None


def segment_inputs(
    windows: Sequence[WindowFeatures], baseline: dict[str, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(x, mask), each (N_INPUTS,), from the per-second windows of one track in one segment.

    `baseline` is the participant's usual direction (`Baseline.median()`); without it the
    offsets are masked. Windows without a face contribute nothing; an input is masked when
    nothing measured it.
    """
    x = np.zeros(N_INPUTS, dtype=np.float32)
    mask = np.zeros(N_INPUTS, dtype=np.float32)
    present = [w for w in windows if w.n_face > 0]
    if not present:
        return x, mask

    def put(name: str, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            j = INPUT_NAMES.index(name)
            x[j], mask[j] = value, 1.0

    pooled = {f: _pool(present, f) for f in (*_DIRECTIONS, "head_roll", "head_tz", *_LIDS)}

    def std_of(feature: str) -> float | None:
        p = pooled[feature]
        return None if p is None else p[1]

    def cv_of(feature: str) -> float | None:
        p = pooled[feature]
        return None if p is None or p[0] <= 0 else p[1] / p[0]

    def offset(pitch: str, yaw: str) -> float | None:
        if baseline is None or pooled[pitch] is None or pooled[yaw] is None:
            return None
        return math.hypot(pooled[pitch][0] - baseline[pitch], pooled[yaw][0] - baseline[yaw])

    put("on_screen_share", _on_screen_share(present))
    put("gaze_offset", offset("gaze_pitch", "gaze_yaw"))
    put("head_offset", offset("head_pitch", "head_yaw"))
    put("gaze_yaw_std", std_of("gaze_yaw"))
    put("gaze_pitch_std", std_of("gaze_pitch"))
    cvs = [c for c in (cv_of(lid) for lid in _LIDS) if c is not None]
    put("eyelid_cv", float(np.mean(cvs)) if cvs else None)
    put("head_dist_cv", cv_of("head_tz"))
    put("head_pitch_std", std_of("head_pitch"))
    put("head_yaw_std", std_of("head_yaw"))
    put("head_roll_std", std_of("head_roll"))
    return x, mask

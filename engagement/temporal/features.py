"""The temporal model's input: one vector of segment statistics per segment, plus its mask.

The shipped model was trained on EmotiW Engagement-in-the-Wild per-segment OpenFace statistics
(`of_seg15_*`, `of_seg21_*`, 60 dims, see FEATURES.md beside the data). It uses only dims that
this project's own extractor reproduces in the same units, and of those only ones that do not
depend on sign conventions or on where the camera sits (a std, or a scale-free ratio), so a
yaw sign flip or a webcam mounted above the screen cannot move the input:

| input              | engagewild dim(s)                 | live: pooled over the segment's seconds |
|--------------------|-----------------------------------|-----------------------------------------|
| gaze_yaw_std       | 14  std gaze_angle_x  (rad)       | std of gaze_yaw                         |
| gaze_pitch_std     | 15  std gaze_angle_y  (rad)       | std of gaze_pitch                       |
| eyelid_cv          | mean of 16-25, CV of 10 lid gaps  | mean over lid_l1..5, lid_r1..5 of std/mean |
| head_dist_cv       | 46  CV of eye-camera distance     | std/mean of head_tz                     |
| head_pitch_std     | 57  std pose_Rx (rad)             | std of head_pitch                       |
| head_yaw_std       | 58  std pose_Ry (rad)             | std of head_yaw                         |
| head_roll_std      | 59  std pose_Rz (rad)             | std of head_roll                        |

The ten eyelid CVs are averaged because OpenFace's eye order (eye0/eye1) and lid-pair order
need not match MediaPipe's; their mean is order-free and cost no accuracy in cross-validation.
Means of angles (dims 12-13, 51-53) were left out: they depend on sign conventions and camera
placement and did not improve cross-validated MSE. Dim 47 (min/max distance ratio) needs per-frame
extremes that per-second records do not keep.

After the 7 attention inputs come 7 expression probabilities (EXPRESSION_LABELS order, segment
mean): an input channel of the architecture, masked when the model was trained without them
(the shipped one) or when the compliance profile disables expressions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engagement.records import EXPRESSION_LABELS, FEATURE_NAMES, WindowFeatures

ATTENTION_INPUTS: tuple[str, ...] = (
    "gaze_yaw_std",
    "gaze_pitch_std",
    "eyelid_cv",
    "head_dist_cv",
    "head_pitch_std",
    "head_yaw_std",
    "head_roll_std",
)
EXPRESSION_INPUTS: tuple[str, ...] = tuple(f"expr_{label}" for label in EXPRESSION_LABELS)
INPUT_NAMES: tuple[str, ...] = ATTENTION_INPUTS + EXPRESSION_INPUTS
N_ATTENTION = len(ATTENTION_INPUTS)
N_INPUTS = len(INPUT_NAMES)

# engagewild dims behind each attention input (a tuple is averaged).
ENGAGEWILD_DIMS: dict[str, tuple[int, ...]] = {
    "gaze_yaw_std": (14,),
    "gaze_pitch_std": (15,),
    "eyelid_cv": tuple(range(16, 26)),
    "head_dist_cv": (46,),
    "head_pitch_std": (57,),
    "head_yaw_std": (58,),
    "head_roll_std": (59,),
}

# Live segments: engagewild segments are 1/8 (15 per video) or 1/11 (21 per video) of a ~5 min
# video with 50 % overlap, i.e. about 37 s or 27 s long. Live segments of 30 s every 15 s sit in
# that range, so the per-segment stds see the same time scale of movement as in training.
SEGMENT_S = 30
HOP_S = 15
# Fewest seconds with a face before a (provisional, shorter) segment is scored: a 3 s clip still
# gets a score. Stds over a few seconds are smaller than over 30 s, which reads as steadier,
# so scores from short spans carry a larger uncertainty (see stage.py).
MIN_PRESENT_S = 2

_IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}
_LIDS = [f"lid_l{i}" for i in range(1, 6)] + [f"lid_r{i}" for i in range(1, 6)]


def engagewild_inputs(of_seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, mask) of shape (N, S, N_INPUTS) from engagewild `of_seg*` arrays (N, S, 60).

    Expression inputs are masked (the data set has none). Non-finite values are masked too.
    """
    arr = np.asarray(of_seg, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != 60:
        raise ValueError(f"expected engagewild OpenFace segments (N, S, 60), got {arr.shape}")
    n, s, _ = arr.shape
    x = np.zeros((n, s, N_INPUTS), dtype=np.float32)
    mask = np.zeros((n, s, N_INPUTS), dtype=np.float32)
    for j, name in enumerate(ATTENTION_INPUTS):
        col = arr[:, :, list(ENGAGEWILD_DIMS[name])].mean(axis=2)
        ok = np.isfinite(col)
        x[:, :, j] = np.where(ok, col, 0.0)
        mask[:, :, j] = ok
    return x, mask


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


def segment_inputs(
    windows: Sequence[WindowFeatures], use_expression: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(x, mask), each (N_INPUTS,), from the per-second windows of one track in one segment.

    Windows without a face contribute nothing; an input is masked when nothing measured it.
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

    def std_of(feature: str) -> float | None:
        pooled = _pool(present, feature)
        return None if pooled is None else pooled[1]

    def cv_of(feature: str) -> float | None:
        pooled = _pool(present, feature)
        if pooled is None or pooled[0] <= 0:
            return None
        return pooled[1] / pooled[0]

    put("gaze_yaw_std", std_of("gaze_yaw"))
    put("gaze_pitch_std", std_of("gaze_pitch"))
    cvs = [c for c in (cv_of(lid) for lid in _LIDS) if c is not None]
    put("eyelid_cv", float(np.mean(cvs)) if cvs else None)
    put("head_dist_cv", cv_of("head_tz"))
    put("head_pitch_std", std_of("head_pitch"))
    put("head_yaw_std", std_of("head_yaw"))
    put("head_roll_std", std_of("head_roll"))
    if use_expression:
        rows = [(w.expression, w.n_face) for w in present if w.expression is not None]
        if rows:
            weights = np.array([n for _, n in rows], dtype=np.float64)
            probs = np.array([e for e, _ in rows], dtype=np.float64)
            mean = (probs * weights[:, None]).sum(0) / weights.sum()
            x[N_ATTENTION:] = mean
            mask[N_ATTENTION:] = 1.0
    return x, mask
